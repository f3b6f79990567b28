"""The subscription REST API as a blueprint: users manage their own subscriptions in JSON,
read their delivery attempts, redeliver failed ones, ping and re-enable a subscription."""

from __future__ import annotations

import json
import uuid
from typing import Any

import flask
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from thorn_core.ed25519 import public_key
from thorn_core.endpoints import health_by_key, subscription_health
from thorn_core.exceptions import InvalidRotation
from thorn_core.health import EndpointStatus
from thorn_core.log import AttemptRecord
from thorn_core.ping import ping
from thorn_core.redelivery import (
    API_REDELIVERY_LIMIT,
    RedeliveryError,
    delivery_summary,
    redeliver,
    redeliver_failed,
    redelivery_summary,
)
from thorn_core.rotation import grace_from
from thorn_core.subscriptions import (
    REQUIRED_FIELDS,
    WRITABLE_FIELDS,
    SubscriptionInvalid,
    body_limit,
    body_too_large,
    check_object,
    check_subscription,
    read_since,
    unmask_url,
)
from thorn_core.validators import display_url

from .catalog import add_catalog_routes
from .extension import ThornState, get_state
from .models import SubscriberMixin

__all__ = ["create_blueprint", "serialize", "serialize_attempt", "serialize_delivery"]

#: Answers worded as Django REST Framework words them, so both APIs read alike.
NOT_FOUND = "Not found."
NOT_AUTHENTICATED = "Authentication credentials were not provided."
UNSUPPORTED_MEDIA_TYPE = 'Unsupported media type "{media_type}" in request.'
JSON_PARSE_ERROR = "JSON parse error - {problem}"

Answer = tuple[Any, int]


def serialize(
    row: SubscriberMixin,
    *,
    with_secret: bool = False,
    health: dict[str, EndpointStatus] | None = None,
) -> dict[str, Any]:
    """The JSON of a subscription, its URL's password masked; the secret only when asked
    (in the answer to the request that set it). ``health`` (read-only) is its endpoint's,
    from ``health`` (a list's statuses, read at once) or else read for this row."""
    data: dict[str, Any] = {
        "uuid": str(row.uuid),
        "id": str(row.uuid),
        "subscription": flask.url_for(".detail", id=str(row.uuid), _external=True),
        "event": row.event,
        "url": display_url(row.url),
        "content_type": row.content_type,
        "hmac_digest": row.hmac_digest,
        "active": row.active,
        "filter": row.filter,
        "version": row.version,
        "rate_limit": row.rate_limit,
        "max_in_flight": row.max_in_flight,
        "endpoint": row.endpoint,
        "health": subscription_health(get_state().core, row, health),
        "public_key": public_key(row.hmac_secret),
        "user": getattr(row, "user_id", None),
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
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


def _strict_constant(value: str) -> float:
    raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")


def _json_body() -> Any:
    """The JSON request body (``{}`` when there is none), parsed as strictly as Django REST
    Framework parses it; a 415 or 400 answer (a tuple) when it cannot be read."""
    request = flask.request
    raw = request.get_data(cache=True)  # over the limit: RequestEntityTooLarge, a JSON 413
    if not raw:
        return {}
    if not request.is_json:
        return {"detail": UNSUPPORTED_MEDIA_TYPE.format(media_type=request.content_type)}, 415
    try:
        return json.loads(raw, parse_constant=_strict_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        return {"detail": JSON_PARSE_ERROR.format(problem=exc)}, 400


def _submitted(state: ThornState, *, required: bool, stored: SubscriberMixin | None = None) -> Any:
    """The checked JSON body of a creation or update, or a 4xx answer (a tuple): the core's
    :func:`~thorn_core.subscriptions.check_subscription` gives the messages by field. The URL
    sent back masked stays the ``stored`` one."""
    data = _json_body()
    if isinstance(data, tuple):
        return data
    if isinstance(data, dict) and stored is not None and "url" in data:
        data["url"] = unmask_url(data["url"], stored.url)
    errors = check_subscription(
        state.core,
        data,
        required=REQUIRED_FIELDS if required else (),
        stored_event=None if stored is None else stored.event,
    )
    if errors:
        return errors, 400
    return {k: v for k, v in data.items() if k in WRITABLE_FIELDS}


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


def _limit() -> int:
    """The largest body the blueprint reads: the core's cap, or the app's
    ``MAX_CONTENT_LENGTH`` when it is smaller."""
    return body_limit(flask.current_app.config.get("MAX_CONTENT_LENGTH"))


def create_blueprint(name: str = "thorn", import_name: str = __name__) -> flask.Blueprint:
    """A blueprint with the subscription API; register it with a ``url_prefix``.

    ``GET /`` lists the user's subscriptions, ``POST /`` creates one (answering its
    ``hmac_secret``, shown this once, and its URL in ``Location``), ``GET``/``PUT``/
    ``PATCH``/``DELETE /<id>`` work on one. Invalid input gets 400 with messages by field,
    a body over the limit 413, an anonymous user 401, and another user's subscription 404;
    every answer is JSON. URLs are shown with their password masked.

    Delivery endpoints, the Django API's paths: ``GET /<id>/deliveries/`` (the
    subscription's logged attempts, newest first), ``POST /<id>/redeliver/`` (its failed
    deliveries, optionally ``{"since": ISO}``), ``POST /deliveries/<delivery id>/redeliver/``,
    ``POST /<id>/enable/`` (re-enable), ``POST /<id>/ping/`` (a test event, now) and
    ``POST /<id>/rotate-secret/`` (a new secret, answered once; the old one signs for
    ``{"grace": seconds}``, a day by default).

    The event catalog: ``GET /event-types/``, ``GET /event-types/<name>`` and
    ``GET /asyncapi.json`` (see :func:`~thorn_flask.catalog.add_catalog_routes`).
    """
    blueprint = flask.Blueprint(name, import_name)

    @blueprint.before_request
    def authenticate() -> Answer | None:
        """Refuse a body over the limit (413) before anything reads it, then nobody (401)."""
        limit = _limit()
        flask.request.max_content_length = limit  # bodies without a Content-Length too
        if (flask.request.content_length or 0) > limit:
            return {"detail": body_too_large(limit)}, 413
        if get_state().user_id() is None:
            return {"detail": NOT_AUTHENTICATED}, 401
        return None

    @blueprint.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: RequestEntityTooLarge) -> Answer:
        return {"detail": body_too_large(_limit())}, 413

    @blueprint.get("/")
    def index() -> Any:
        state = get_state()
        with state.session() as session:
            rows = list(session.scalars(state.model.owned_by(state.user_id())))  # type: ignore[union-attr]
            health = health_by_key(state.core, rows)  # one call to the store for the list
            return [serialize(row, health=health) for row in rows]

    @blueprint.post("/")
    def create() -> Any:
        state = get_state()
        values = _submitted(state, required=True)
        if isinstance(values, tuple):
            return values
        assert state.model is not None
        owner = state.model.owner_value(state.user_id())
        row = state.model(user_id=owner, **values)  # type: ignore[call-arg]
        with state.session() as session, session.begin():
            session.add(row)
            session.flush()
            body = serialize(row, with_secret=True)
        return body, 201, {"Location": body["subscription"]}

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
        with state.session() as session, session.begin():
            row = _find(session, state, state.user_id(), id)
            if row is None:
                return {"detail": NOT_FOUND}, 404
            values = _submitted(state, required=flask.request.method == "PUT", stored=row)
            if isinstance(values, tuple):
                return values
            was_active = row.active
            for field, value in values.items():
                setattr(row, field, value)
            session.flush()
            body = serialize(row, with_secret="hmac_secret" in values)
            subscriber = row.to_subscriber()
        if subscriber.active and not was_active:
            # Switched back on: as /enable/ does, through the core (the streak starts over).
            state.core.reactivate_subscriber(subscriber)
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
        row = _owned_subscription(state, id)
        if row is None:
            return {"detail": NOT_FOUND}, 404
        data = _json_body()
        if isinstance(data, tuple):
            return data
        problems = check_object(data)
        if problems:
            return problems, 400
        try:
            since = read_since(data.get("since"))
        except SubscriptionInvalid as exc:
            return exc.errors, 400
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

    @blueprint.post("/<id>/ping/")
    def ping_subscription(id: str) -> Any:
        state = get_state()
        row = _owned_subscription(state, id)
        if row is None:
            return {"detail": NOT_FOUND}, 404
        return serialize_delivery(ping(state.core, row.to_subscriber()))

    @blueprint.post("/<id>/rotate-secret/")
    def rotate_subscription_secret(id: str) -> Any:
        state = get_state()
        row = _owned_subscription(state, id)
        if row is None or state.source is None:
            return {"detail": NOT_FOUND}, 404
        data = _json_body()
        if isinstance(data, tuple):
            return data
        problems = check_object(data)
        if problems:
            return problems, 400
        try:
            rotated = state.source.rotate(row.uuid, grace_from(data.get("grace")))
        except InvalidRotation as exc:
            return {"grace": [str(exc)]}, 400
        with state.session() as session:
            fresh = _find(session, state, state.user_id(), id)
            assert fresh is not None
            body = serialize(fresh, with_secret=True)
        expiries = [s.expires_at for s in rotated.previous_secrets if s.expires_at]
        body["previous_secret_expires_at"] = max(expiries).isoformat() if expiries else None
        return body

    add_catalog_routes(blueprint)
    return blueprint
