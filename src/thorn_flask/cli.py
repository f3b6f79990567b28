"""``flask thorn``: list, add and remove stored subscribers, and ping one with a test event."""

from __future__ import annotations

import uuid
from typing import Any

import click
from flask.cli import AppGroup

from thorn_core.codecs import JSON_CONTENT_TYPE
from thorn_core.ping import PING_EVENT, ping
from thorn_core.subscriptions import check_subscription

from .extension import ThornState, get_state
from .models import SubscriberMixin, coerce_user

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
    column = model.__table__.c.user_id  # type: ignore[attr-defined]
    row = model(user_id=coerce_user(column.type, user), **values)  # type: ignore[call-arg]
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
