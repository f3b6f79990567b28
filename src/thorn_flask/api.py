"""The subscription REST API as a blueprint: users manage their own subscriptions in JSON,
read their delivery attempts, redeliver failed ones and re-enable a deactivated subscription."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

import flask
from sqlalchemy.orm import Session

from thorn_core.log import AttemptRecord, parse_since
from thorn_core.redelivery import (
    API_REDELIVERY_LIMIT,
    RedeliveryError,
    delivery_summary,
    redeliver,
    redeliver_failed,
    redelivery_summary,
)
from thorn_core.subscriptions import check_subscription

from .extension import ThornState, get_state
from .models import SubscriberMixin

__all__ = ["create_blueprint", "serialize", "serialize_attempt", "serialize_delivery"]

#: The fields a user may write; the rest (id, user, secret, dates) are read-only.
WRITABLE = ("event", "url", "content_type", "hmac_digest", "active")
REQUIRED = ("event", "url")
#: Answers worded as Django REST Framework words them, so both APIs read alike.
REQUIRED_MESSAGE = "This field is required."
NOT_A_STRING = "Not a valid string."
NOT_A_BOOLEAN = "Must be a valid boolean."
NOT_FOUND = "Not found."
NOT_AUTHENTICATED = "Authentication credentials were not provided."
BAD_DATETIME = "Datetime has wrong format. Use ISO 8601."

Answer = tuple[Any, int]


def serialize(row: SubscriberMixin, *, with_secret: bool = False) -> dict[str, Any]:
    """The JSON of a subscription; the secret only when asked (at creation)."""
    data: dict[str, Any] = {
        "id": str(row.uuid),
        "event": row.event,
        "url": row.url,
        "content_type": row.content_type,
        "hmac_digest": row.hmac_digest,
        "active": row.active,
        "user": getattr(row, "user_id", None),
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
        "subscription": flask.url_for(".detail", id=str(row.uuid), _external=True),
    }
    if with_secret:
        data["hmac_secret"] = row.hmac_secret
    return data


def serialize_attempt(record: AttemptRecord) -> dict[str, Any]:
    """The JSON of one logged attempt (not the body or headers sent), as the Django API's."""
    return {
        "delivery_id": record.delivery_id,
        "event": record.event,
        "url": record.url,
        "attempt": record.attempt,
        "ok": record.ok,
        "retryable": record.retryable,
        "status_code": record.status_code,
        "error": record.error,
        "duration": record.duration,
        "response_excerpt": record.response_excerpt,
        "next_retry_at": record.next_retry_at.isoformat() if record.next_retry_at else None,
        "at": record.at.isoformat(),
    }


#: The JSON of the outcome of one redelivery (the core's shape, as the Django API's).
serialize_delivery = delivery_summary


def _errors(state: ThornState, data: Mapping[str, Any], *, partial: bool) -> dict[str, list[str]]:
    """Messages by field for submitted ``data``: types first, then the core's checks."""
    errors: dict[str, list[str]] = {}
    if not partial:
        for field in REQUIRED:
            if field not in data:
                errors[field] = [REQUIRED_MESSAGE]
    for field in ("event", "url", "content_type", "hmac_digest"):
        if field in data and not isinstance(data[field], str):
            errors[field] = [NOT_A_STRING]
    if "active" in data and not isinstance(data["active"], bool):
        errors["active"] = [NOT_A_BOOLEAN]
    checked = {k: v for k, v in data.items() if k in WRITABLE and k not in errors}
    for field, messages in check_subscription(state.core, checked).items():
        errors.setdefault(field, []).extend(messages)
    return errors


def _json_body() -> Mapping[str, Any] | Answer:
    data = flask.request.get_json(silent=True)
    if not isinstance(data, dict):
        if data is None:
            return {"detail": "JSON parse error: send a JSON object."}, 400
        return {
            "non_field_errors": [
                f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
            ]
        }, 400
    return data


def _find(session: Session, state: ThornState, owner: Any, key: str) -> SubscriberMixin | None:
    """The subscription ``key`` if ``owner`` (the user's id, converted for the column by the
    query) owns it: others' are not found, never forbidden."""
    try:
        wanted = uuid.UUID(key)
    except ValueError:
        return None
    model = state.model
    assert model is not None
    row = session.scalars(model.owned_by(owner).where(model.uuid == wanted)).first()
    return row


def _owned_subscription(state: ThornState, key: str) -> SubscriberMixin | None:
    """The current user's subscription ``key``, detached, or None."""
    with state.session() as session:
        row = _find(session, state, state.user_id(), key)
        if row is not None:
            session.expunge(row)
        return row


def _since(data: Mapping[str, Any]) -> datetime.datetime | Answer | None:
    """The optional ``since`` of a redelivery request, aware; or a 400 answer."""
    value = data.get("since")
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise TypeError(value)
        return parse_since(value)
    except (TypeError, ValueError):
        return {"since": [BAD_DATETIME]}, 400


def create_blueprint(name: str = "thorn", import_name: str = __name__) -> flask.Blueprint:
    """A blueprint with the subscription API; register it with a ``url_prefix``.

    ``GET /`` lists the user's subscriptions, ``POST /`` creates one (answering its
    ``hmac_secret``, shown this once), ``GET``/``PUT``/``PATCH``/``DELETE /<id>`` work on
    one. Invalid input gets 400 with messages by field, an anonymous user 401, and another
    user's subscription 404.

    Delivery endpoints, the Django API's paths: ``GET /<id>/deliveries/`` (the
    subscription's logged attempts, newest first), ``POST /<id>/redeliver/`` (its failed
    deliveries, optionally ``{"since": ISO}``), ``POST /deliveries/<delivery id>/redeliver/``
    and ``POST /<id>/enable/`` (re-enable).
    """
    blueprint = flask.Blueprint(name, import_name)

    @blueprint.before_request
    def authenticate() -> Answer | None:
        if get_state().user_id() is None:
            return {"detail": NOT_AUTHENTICATED}, 401
        return None

    @blueprint.get("/")
    def index() -> Any:
        state = get_state()
        with state.session() as session:
            rows = session.scalars(state.model.owned_by(state.user_id()))  # type: ignore[union-attr]
            return [serialize(row) for row in rows]

    @blueprint.post("/")
    def create() -> Any:
        state = get_state()
        data = _json_body()
        if isinstance(data, tuple):
            return data
        errors = _errors(state, data, partial=False)
        if errors:
            return errors, 400
        assert state.model is not None
        values = {k: v for k, v in data.items() if k in WRITABLE}
        owner = state.model.owner_value(state.user_id())
        row = state.model(user_id=owner, **values)  # type: ignore[call-arg]
        with state.session() as session, session.begin():
            session.add(row)
            session.flush()
            body = serialize(row, with_secret=True)
        return body, 201

    @blueprint.get("/<id>")
    def detail(id: str) -> Any:
        state = get_state()
        with state.session() as session:
            row = _find(session, state, state.user_id(), id)
            if row is None:
                return {"detail": NOT_FOUND}, 404
            return serialize(row)

    @blueprint.route("/<id>", methods=["PUT", "PATCH"])
    def update(id: str) -> Any:
        state = get_state()
        data = _json_body()
        if isinstance(data, tuple):
            return data
        with state.session() as session, session.begin():
            row = _find(session, state, state.user_id(), id)
            if row is None:
                return {"detail": NOT_FOUND}, 404
            errors = _errors(state, data, partial=flask.request.method == "PATCH")
            if errors:
                return errors, 400
            for field in WRITABLE:
                if field in data:
                    setattr(row, field, data[field])
            session.flush()
            body = serialize(row)
        return body

    @blueprint.delete("/<id>")
    def delete(id: str) -> Any:
        state = get_state()
        with state.session() as session, session.begin():
            row = _find(session, state, state.user_id(), id)
            if row is None:
                return {"detail": NOT_FOUND}, 404
            session.delete(row)
        return "", 204

    @blueprint.get("/<id>/deliveries/")
    def deliveries(id: str) -> Any:
        state = get_state()
        row = _owned_subscription(state, id)
        if row is None:
            return {"detail": NOT_FOUND}, 404
        listing = getattr(state.core.delivery_log, "for_subscriber", None)
        if listing is None:
            return {"detail": "The delivery log of this app cannot list attempts."}, 501
        try:
            limit = min(max(int(flask.request.args.get("limit", 50)), 1), 500)
        except ValueError:
            return {"limit": ["A number."]}, 400
        failed_only = flask.request.args.get("failed") in ("1", "true")
        found = listing(str(row.uuid), limit=limit, failed_only=failed_only)
        return [serialize_attempt(record) for record in found]

    @blueprint.post("/<id>/redeliver/")
    def redeliver_subscription(id: str) -> Any:
        state = get_state()
        data = flask.request.get_json(silent=True) or {}
        if not isinstance(data, dict):
            return {"non_field_errors": ["Invalid data. Expected a dictionary."]}, 400
        since = _since(data)
        if isinstance(since, tuple):
            return since
        row = _owned_subscription(state, id)
        if row is None:
            return {"detail": NOT_FOUND}, 404
        try:
            done = redeliver_failed(state.core, str(row.uuid), since, limit=API_REDELIVERY_LIMIT)
        except RedeliveryError as exc:
            return {"detail": str(exc)}, 409
        return redelivery_summary(done)

    @blueprint.post("/deliveries/<delivery_id>/redeliver/")
    def redeliver_one(delivery_id: str) -> Any:
        state = get_state()
        record = state.core.delivery_log.latest(delivery_id)
        if record is None or _owned_subscription(state, record.subscriber_uuid) is None:
            return {"detail": NOT_FOUND}, 404
        try:
            delivery = redeliver(state.core, delivery_id)
        except RedeliveryError as exc:
            return {"detail": str(exc)}, 409
        return serialize_delivery(delivery)

    @blueprint.post("/<id>/enable/")
    def enable(id: str) -> Any:
        state = get_state()
        row = _owned_subscription(state, id)
        if row is None:
            return {"detail": NOT_FOUND}, 404
        state.core.reactivate_subscriber(row.to_subscriber())
        with state.session() as session:
            fresh = _find(session, state, state.user_id(), id)
            assert fresh is not None
            return serialize(fresh)

    return blueprint
