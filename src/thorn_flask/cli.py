"""``flask thorn``: manage stored subscribers, ping, redeliver, re-enable, prune and relay."""

from __future__ import annotations

import datetime
import time
import uuid
from typing import Any

import click
from flask.cli import AppGroup

from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.delivery import Delivery
from thorn_core.log import parse_since, retention_cutoff
from thorn_core.outbox import drain
from thorn_core.ping import PING_EVENT, ping
from thorn_core.redelivery import RedeliveryError, redeliver, redeliver_failed
from thorn_core.subscriptions import check_subscription

from .extension import ThornState, get_state
from .models import SubscriberMixin

__all__ = ["thorn_cli"]

thorn_cli = AppGroup("thorn", help="Manage Thorn webhook subscribers.")


def _model(state: ThornState) -> type[SubscriberMixin]:
    if state.model is None:
        raise click.ClickException("Thorn has no subscriber model: pass db= to Thorn(app)")
    return state.model


def _find(state: ThornState, key: str) -> SubscriberMixin:
    model = _model(state)
    try:
        wanted = uuid.UUID(key)
    except ValueError:
        raise click.BadParameter(f"{key!r} is not a subscriber id (a UUID)") from None
    with state.session() as session:
        row = session.scalars(model.ordered().where(model.uuid == wanted)).first()
        if row is None:
            raise click.ClickException(f"No subscriber {key}")
        session.expunge(row)
        found: SubscriberMixin = row
        return found


@thorn_cli.command("list")
@click.option("--event", "event", default=None, help="Only subscribers receiving this event.")
@click.option("--user", "user", default=None, help="Only this user's subscribers.")
def list_command(event: str | None, user: str | None) -> None:
    """List stored subscribers: id, event pattern, URL, owner and state."""
    state = get_state()
    model = _model(state)
    with state.session() as session:
        query: Any
        if event is not None:
            query = model.matching(event, user)
        elif user is not None:
            query = model.owned_by(user)
        else:
            query = model.ordered()
        for row in session.scalars(query):
            owner = f" user={row.user_id}" if row.user_id is not None else ""
            status = "" if row.active else " (inactive)"
            click.echo(f"{row.uuid}  {row.event}  {row.url}{owner}{status}")


@thorn_cli.command("add")
@click.argument("url")
@click.option("--event", "event", required=True, help="The event pattern (user.*, *, ...).")
@click.option("--user", "user", default=None, help="The owner's id.")
@click.option("--content-type", default=JSON_CONTENT_TYPE, show_default=True)
@click.option("--digest", "hmac_digest", default="sha256", show_default=True)
def add_command(
    url: str, event: str, user: str | None, content_type: str, hmac_digest: str
) -> None:
    """Subscribe URL to an event pattern; prints the id and the signing secret."""
    state = get_state()
    model = _model(state)
    values = {"event": event, "url": url, "content_type": content_type, "hmac_digest": hmac_digest}
    errors = check_subscription(state.core, values)
    if errors:
        lines = [f"{field}: {message}" for field, msgs in errors.items() for message in msgs]
        raise click.ClickException("\n".join(lines))
    row = model(user_id=model.owner_value(user), **values)  # type: ignore[call-arg]
    with state.session() as session, session.begin():
        session.add(row)
        session.flush()
        click.echo(f"Added subscriber {row.uuid}: {row.event} -> {row.url}")
        click.echo(f"Secret (shown once): {row.hmac_secret}")


@thorn_cli.command("remove")
@click.argument("subscriber_id")
def remove_command(subscriber_id: str) -> None:
    """Delete the subscriber with this id."""
    state = get_state()
    row = _find(state, subscriber_id)
    with state.session() as session, session.begin():
        session.delete(session.merge(row, load=False))
    click.echo(f"Removed subscriber {subscriber_id}")


@thorn_cli.command("ping")
@click.argument("subscriber_id")
@click.option("--event", "event", default=PING_EVENT, show_default=True)
def ping_command(subscriber_id: str, event: str) -> None:
    """Send a test event to one subscriber now and print the outcome."""
    state = get_state()
    row = _find(state, subscriber_id)
    delivery = ping(state.core, row.to_subscriber(), event=event)
    if not delivery.ok:
        reason = delivery.error or f"HTTP {delivery.status_code}"
        raise click.ClickException(f"{event} to {row.url} failed: {reason}")
    click.echo(f"Delivered {event} to {row.url}: HTTP {delivery.status_code} ({delivery.id})")


def _when(value: str | None) -> datetime.datetime | None:
    """An ISO 8601 date or time as an aware datetime (naive ones are UTC)."""
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _outcome(delivery: Delivery) -> str:
    if delivery.ok:
        return f"HTTP {delivery.status_code}"
    return f"failed: {delivery.error or f'HTTP {delivery.status_code}'}"


@thorn_cli.command("redeliver")
@click.option("--delivery", "delivery_id", default=None, help="Send this one delivery again.")
@click.option(
    "--subscriber", "subscriber_id", default=None, help="Send this subscriber's failed deliveries."
)
@click.option("--since", default=None, help="With --subscriber: only those attempted since (ISO).")
def redeliver_command(
    delivery_id: str | None, subscriber_id: str | None, since: str | None
) -> None:
    """Send failed deliveries again from the delivery log, under their ids."""
    if (delivery_id is None) == (subscriber_id is None):
        raise click.UsageError("give either --delivery ID or --subscriber UUID")
    if since is not None and subscriber_id is None:
        raise click.UsageError("--since goes with --subscriber")
    core = get_state().core
    try:
        if delivery_id is not None:
            delivery = redeliver(core, delivery_id)
            click.echo(f"{delivery.id} attempt {delivery.attempts}: {_outcome(delivery)}")
            if not delivery.ok:
                raise click.exceptions.Exit(1)
            return

        def progress(done: int, total: int, delivery: Delivery) -> None:
            click.echo(f"[{done}/{total}] {delivery.id} {delivery.event}: {_outcome(delivery)}")

        assert subscriber_id is not None
        deliveries = redeliver_failed(core, subscriber_id, _when(since), progress=progress)
    except RedeliveryError as exc:
        raise click.ClickException(str(exc)) from None
    failed = sum(not d.ok for d in deliveries)
    click.echo(f"Redelivered {len(deliveries)} deliveries, {failed} failed again")
    if failed:
        raise click.exceptions.Exit(1)


@thorn_cli.command("enable")
@click.argument("subscriber_id")
def enable_command(subscriber_id: str) -> None:
    """Re-enable a deactivated subscriber and forget its failures."""
    state = get_state()
    row = _find(state, subscriber_id)
    state.core.reactivate_subscriber(row.to_subscriber())
    click.echo(f"Enabled subscriber {subscriber_id}")


@thorn_cli.command("prune")
@click.option(
    "--before",
    default=None,
    help="Remove what is older than this (ISO); default: THORN_DELIVERY_LOG_RETENTION ago.",
)
def prune_command(before: str | None) -> None:
    """Remove old delivery attempts (never the latest of a failed delivery) and relayed
    outbox events."""
    state = get_state()
    cutoff = _when(before) or retention_cutoff(state.core.settings.delivery_log_retention)
    removed = state.core.delivery_log.prune(cutoff)
    click.echo(f"Removed {removed} delivery attempts from before {cutoff.isoformat()}")
    if state.outbox is not None:
        relayed = state.outbox.prune(cutoff)
        click.echo(f"Removed {relayed} relayed outbox events")


@thorn_cli.command("relay")
@click.option("--loop", is_flag=True, help="Keep relaying until interrupted.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between rounds.")
@click.option("--limit", default=100, show_default=True, help="Events claimed per batch.")
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
