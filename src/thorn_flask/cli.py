"""``flask thorn``: manage stored subscribers, ping, redeliver, re-enable, prune, relay, and
show the health of their endpoints.

Every expected error ends the command with one ``Error:`` line and a non-zero exit: bad
values at parse time (the core command line's parameter types), the core's refusals, and
database errors, a missing table named with the call that creates it.
"""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

import click
import flask
import sqlalchemy
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy.exc import DBAPIError

from thorn_core.cli import (
    ENDPOINT,
    EVENT_NAME,
    GRACE,
    ISO_TIME,
    JSON_VALUE,
    LIMIT,
    SECONDS,
    SUBSCRIBER_ID,
    endpoints_output,
)
from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.delivery import Delivery
from thorn_core.ed25519 import public_key
from thorn_core.exceptions import ThornError
from thorn_core.log import retention_cutoff
from thorn_core.outbox import drain, prune
from thorn_core.ping import PING_EVENT, ping
from thorn_core.redelivery import redeliver, redeliver_failed
from thorn_core.rotation import grace_from
from thorn_core.subscriptions import ensure_subscription
from thorn_core.validators import display_url

from .catalog import catalog_command
from .extension import ThornState, get_state
from .models import Base, SubscriberMixin

__all__ = ["thorn_cli"]


def _creator(table: sqlalchemy.Table) -> str:
    """The call that creates ``table``: ``db.create_all()`` when Flask-SQLAlchemy's metadata
    holds it (``Thorn(app, db=db)`` puts every Thorn table there), else its base's."""
    flask_sqlalchemy = flask.current_app.extensions.get("sqlalchemy")
    metadatas = getattr(flask_sqlalchemy, "metadatas", {})
    if any(table.name in metadata.tables for metadata in metadatas.values()):
        return "db.create_all()"
    if table.metadata is Base.metadata:
        return "thorn_flask.Base.metadata.create_all(engine)"
    return "metadata.create_all(engine) of its declarative base"


def _missing_tables(state: ThornState) -> str | None:
    """Which of this app's Thorn tables do not exist and the calls that create them, or None
    when they all exist."""
    models: list[Any] = [state.model]
    if state.delivery_log is not None:
        models.append(state.delivery_log.model)
    if state.outbox is not None:
        models.append(state.outbox.model)
    missing: list[str] = []
    creates: list[str] = []
    with state.session() as session:
        for model in filter(None, models):
            table = model.__table__
            inspector = sqlalchemy.inspect(session.connection(bind_arguments={"mapper": model}))
            if inspector.has_table(table.name, schema=table.schema):
                continue
            missing.append(table.name)
            create = _creator(table)
            if create not in creates:
                creates.append(create)
    if not missing:
        return None
    if len(missing) == 1:
        tables = f"the table {missing[0]} does not exist yet: create it"
    else:
        tables = f"the tables {', '.join(missing)} do not exist yet: create them"
    return f"{tables} with {' and '.join(creates)}, or a migration"


def _database_problem(state: ThornState, exc: DBAPIError) -> str:
    """One line about a database error: the table to create, or the driver's first line."""
    try:
        missing = _missing_tables(state)
    except DBAPIError:
        missing = None
    if missing is not None:
        return missing
    first = str(exc.orig).strip().splitlines()
    return f"database error: {first[0] if first else type(exc.orig).__name__}"


class _ThornGroup(AppGroup):
    """The ``flask thorn`` group: the core's refusals and database errors become one line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a :class:`ThornError` or a database error is a ClickException."""
        try:
            return super().invoke(ctx)
        except ThornError as exc:
            raise click.ClickException(str(exc)) from None
        except DBAPIError as exc:
            app = ctx.ensure_object(ScriptInfo).load_app()
            with app.app_context():
                message = _database_problem(get_state(app), exc)
            raise click.ClickException(message) from None


thorn_cli = _ThornGroup("thorn", help="Manage Thorn webhook subscribers.")


def _model(state: ThornState) -> type[SubscriberMixin]:
    if state.model is None:
        raise click.ClickException("Thorn has no subscriber model: pass db= to Thorn(app)")
    return state.model


def _owner(state: ThornState, user: str | None) -> Any:
    """``--user`` converted for the model's ``user_id`` column; when that column is a foreign
    key, the user must exist.

    Raises:
        click.BadParameter: the value does not fit the column, or names no user.
    """
    if user is None:
        return None
    if not user.strip():
        raise click.BadParameter("a user id cannot be empty", param_hint="--user")
    model = _model(state)
    column = model.__table__.c.user_id  # type: ignore[attr-defined]
    try:
        key = model.owner_value(user)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(f"{user!r} is not a user id: {exc}", param_hint="--user") from None
    if isinstance(key, int) and not -(2**63) <= key < 2**63:
        raise click.BadParameter(f"{user!r} is not a user id: out of range", param_hint="--user")
    length = getattr(column.type, "length", None)
    if isinstance(key, str) and length is not None and len(key) > length:
        raise click.BadParameter(
            f"a user id has at most {length} characters (this one has {len(key)})",
            param_hint="--user",
        )
    with state.session() as session:
        for foreign_key in column.foreign_keys:
            target = foreign_key.column
            found = session.execute(sqlalchemy.select(target).where(target == key)).first()
            if found is None:
                raise click.BadParameter(
                    f"no user {user!r} ({target.table.name}.{target.name})", param_hint="--user"
                )
    return key


def _find(state: ThornState, key: uuid.UUID) -> SubscriberMixin:
    model = _model(state)
    with state.session() as session:
        row = session.scalars(model.ordered().where(model.uuid == key)).first()
        if row is None:
            raise click.ClickException(f"No subscriber {key}")
        session.expunge(row)
        found: SubscriberMixin = row
        return found


@thorn_cli.command("list")
@click.option("--event", type=EVENT_NAME, help="Only subscribers receiving this event.")
@click.option("--user", help="Only this user's subscribers (the owner's id).")
def list_command(event: str | None, user: str | None) -> None:
    """List stored subscribers: id, event pattern, URL (password masked), owner and state."""
    state = get_state()
    model = _model(state)
    owner = _owner(state, user)
    with state.session() as session:
        query: Any
        if event is not None:
            query = model.matching(event, owner)
        elif owner is not None:
            query = model.owned_by(owner)
        else:
            query = model.ordered()
        for row in session.scalars(query):
            shown = f" user={row.user_id}" if row.user_id is not None else ""
            status = "" if row.active else " (inactive)"
            click.echo(f"{row.uuid}  {row.event}  {display_url(row.url)}{shown}{status}")


@thorn_cli.command("add")
@click.argument("url")
@click.option("--event", required=True, help="The event pattern (user.*, *, ...).")
@click.option("--user", help="The owner's id: the subscription receives only their events.")
@click.option("--content-type", default=JSON_CONTENT_TYPE, show_default=True)
@click.option("--digest", "hmac_digest", default="sha256", show_default=True)
@click.option(
    "--filter",
    "payload_filter",
    type=JSON_VALUE,
    help='A payload filter as JSON: {"amount": {"$gte": 100}}.',
)
@click.option("--event-version", help="Pin a version of the event type: only its sends.")
def add_command(
    url: str,
    event: str,
    user: str | None,
    content_type: str,
    hmac_digest: str,
    payload_filter: Any,
    event_version: str | None,
) -> None:
    """Subscribe URL to an event pattern; prints the id and the signing secret."""
    state = get_state()
    model = _model(state)
    values = {
        "event": event,
        "url": url,
        "content_type": content_type,
        "hmac_digest": hmac_digest,
        "filter": payload_filter,
        "version": event_version,
    }
    ensure_subscription(state.core, values)  # SubscriptionInvalid: one line (the group)
    row = model(user_id=_owner(state, user), **values)  # type: ignore[call-arg]
    with state.session() as session, session.begin():
        session.add(row)
        session.flush()
        click.echo(f"Added subscriber {row.uuid}: {row.event} -> {display_url(row.url)}")
        click.echo(f"Secret (shown once): {row.hmac_secret}")
        _echo_public_key(row.hmac_secret)


def _echo_public_key(secret: str) -> None:
    """Print the ``whpk_`` key of an ed25519 secret, for the subscriber's receiver."""
    found = public_key(secret)
    if found is not None:
        click.echo(f"Public key (for its receiver): {found}")


@thorn_cli.command("remove")
@click.argument("subscriber_id", type=SUBSCRIBER_ID)
def remove_command(subscriber_id: uuid.UUID) -> None:
    """Delete the subscriber with this id."""
    state = get_state()
    row = _find(state, subscriber_id)
    with state.session() as session, session.begin():
        session.delete(session.merge(row, load=False))
    click.echo(f"Removed subscriber {subscriber_id}")


@thorn_cli.command("ping")
@click.argument("subscriber_id", type=SUBSCRIBER_ID)
@click.option("--event", type=EVENT_NAME, default=PING_EVENT, show_default=True)
def ping_command(subscriber_id: uuid.UUID, event: str) -> None:
    """Send a test event to one subscriber now and print the outcome."""
    state = get_state()
    row = _find(state, subscriber_id)
    delivery = ping(state.core, row.to_subscriber(), event=event)
    shown = display_url(row.url)
    if not delivery.ok:
        reason = delivery.error or f"HTTP {delivery.status_code}"
        raise click.ClickException(f"{event} to {shown} failed: {reason}")
    click.echo(f"Delivered {event} to {shown}: HTTP {delivery.status_code} ({delivery.id})")


def _outcome(delivery: Delivery) -> str:
    if delivery.ok:
        return f"HTTP {delivery.status_code}"
    return f"failed: {delivery.error or f'HTTP {delivery.status_code}'}"


@thorn_cli.command("redeliver")
@click.option("--delivery", "delivery_id", help="Send this one delivery again.")
@click.option(
    "--subscriber",
    "subscriber_id",
    type=SUBSCRIBER_ID,
    help="Send this subscriber's failed deliveries.",
)
@click.option(
    "--since", type=ISO_TIME, help="With --subscriber: only those attempted since (ISO 8601)."
)
def redeliver_command(
    delivery_id: str | None, subscriber_id: uuid.UUID | None, since: datetime.datetime | None
) -> None:
    """Send failed deliveries again from the delivery log, under their ids."""
    if (delivery_id is None) == (subscriber_id is None):
        raise click.UsageError("give either --delivery ID or --subscriber UUID")
    if since is not None and subscriber_id is None:
        raise click.UsageError("--since goes with --subscriber")
    core = get_state().core
    if delivery_id is not None:
        delivery = redeliver(core, delivery_id)
        click.echo(f"{delivery.id} attempt {delivery.attempts}: {_outcome(delivery)}")
        if not delivery.ok:
            raise click.exceptions.Exit(1)
        return

    def progress(done: int, total: int, delivery: Delivery) -> None:
        click.echo(f"[{done}/{total}] {delivery.id} {delivery.event}: {_outcome(delivery)}")

    deliveries = redeliver_failed(core, str(subscriber_id), since, progress=progress)
    failed = sum(not d.ok for d in deliveries)
    click.echo(f"Redelivered {len(deliveries)} deliveries, {failed} failed again")
    if failed:
        raise click.exceptions.Exit(1)


@thorn_cli.command("enable")
@click.argument("subscriber_id", type=SUBSCRIBER_ID)
def enable_command(subscriber_id: uuid.UUID) -> None:
    """Re-enable a deactivated subscriber and forget its failures."""
    state = get_state()
    row = _find(state, subscriber_id)
    state.core.reactivate_subscriber(row.to_subscriber())
    click.echo(f"Enabled subscriber {subscriber_id}")


@thorn_cli.command("rotate-secret")
@click.argument("subscriber_id", type=SUBSCRIBER_ID)
@click.option(
    "--grace",
    type=GRACE,
    default=None,
    help="Seconds the old secret keeps signing (default 86400, at most 2592000).",
)
def rotate_secret_command(subscriber_id: uuid.UUID, grace: datetime.timedelta | None) -> None:
    """Give a subscriber a new secret, printed once; the old one signs until the grace ends."""
    state = get_state()
    _find(state, subscriber_id)
    assert state.source is not None
    rotated = state.source.rotate(subscriber_id, grace_from(grace))
    click.echo(f"Rotated the secret of subscriber {subscriber_id}")
    for old in rotated.previous_secrets:
        when = old.expires_at.isoformat() if old.expires_at else "never"
        click.echo(f"An older secret keeps signing until {when}")
    click.echo(f"Secret (shown once): {rotated.hmac_secret}")
    _echo_public_key(rotated.hmac_secret)


@thorn_cli.command("reencrypt")
def reencrypt_command() -> None:
    """Rewrite every stored secret with the newest key of THORN_SECRET_KEYS."""
    state = get_state()
    _model(state)
    assert state.source is not None
    done, unreadable = state.source.reencrypt()
    how = "with the newest key" if state.core.settings.secret_keys else "in clear"
    click.echo(f"Rewrote the secrets of {done} subscriber(s) {how}.")
    if unreadable:
        raise click.ClickException(
            f"{len(unreadable)} subscriber(s) have a secret no key of THORN_SECRET_KEYS "
            f"decrypts, left as stored: {', '.join(unreadable)}"
        )


@thorn_cli.command("prune")
@click.option(
    "--before",
    type=ISO_TIME,
    help="Remove what is older than this (ISO 8601); default: THORN_DELIVERY_LOG_RETENTION ago.",
)
def prune_command(before: datetime.datetime | None) -> None:
    """Remove old delivery attempts (never the latest of a failed delivery) and relayed
    outbox events."""
    state = get_state()
    cutoff = before or retention_cutoff(state.core.settings.delivery_log_retention)
    pruned = prune(state.core, cutoff)
    click.echo(f"Removed {pruned.attempts} delivery attempts from before {cutoff.isoformat()}")
    if state.outbox is not None:
        click.echo(f"Removed {pruned.outbox_events} relayed outbox events")


@thorn_cli.command("relay")
@click.option("--loop", is_flag=True, help="Keep relaying until interrupted.")
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=SECONDS,
    help="Seconds between rounds (above 0, at most a day).",
)
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=LIMIT,
    help="Events claimed per batch (1 to 10000).",
)
def relay_command(loop: bool, interval: float, limit: int) -> None:
    """Dispatch the events stored in the outbox (THORN_OUTBOX), then mark them done."""
    core = get_state().core
    if core.outbox is None:
        raise click.ClickException("this app has no outbox: set THORN_OUTBOX = True")
    while True:
        total = drain(core, limit=limit)
        if total or not loop:
            click.echo(f"Relayed {total} events")
        if not loop:
            return
        time.sleep(interval)


@thorn_cli.command("endpoints")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.argument("targets", nargs=-1, type=ENDPOINT, metavar="[URL_OR_ENDPOINT]...")
def endpoints_command(as_json: bool, targets: tuple[str, ...]) -> None:
    """Show the health of the endpoints of stored and static subscribers: circuit state,
    failure rate, requests in the window and the next probe (as `thorn endpoints`)."""
    state = get_state()
    model = state.model
    if model is None:
        click.echo(endpoints_output(state.core, (), targets, as_json=as_json))
        return
    with state.session() as session:
        # Only the two columns the endpoint key needs, streamed: a site may hold many rows.
        rows = session.execute(sqlalchemy.select(model.url, model.endpoint)).yield_per(1000)
        click.echo(endpoints_output(state.core, rows, targets, as_json=as_json))


thorn_cli.add_command(catalog_command)
