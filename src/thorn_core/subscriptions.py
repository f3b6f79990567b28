"""Checking a subscription that a user submits (API, admin, CLI), with per-field messages.

Adapters call :func:`check_subscription` so that the Django and Flask APIs refuse the same
input with the same messages, and never store a URL that delivery would refuse. The column
lengths of the adapters' subscriber models are the constants of this module, so every door
(the APIs, the Django admin, the CLIs) refuses a value the database could not hold.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .exceptions import (
    InvalidPattern,
    InvalidURL,
    RecipientRefused,
    ResolutionTimeout,
    ThornError,
)
from .log import parse_since
from .patterns import validate_pattern
from .payload_filters import filter_problem
from .subscribers import digest_problem, secret_problem
from .targeting import MAX_VERSION_LENGTH, catalog_problems
from .validators import display_url

if TYPE_CHECKING:
    from .app import Thorn

__all__ = [
    "MAX_BODY_SIZE",
    "MAX_CONTENT_TYPE_LENGTH",
    "MAX_DIGEST_LENGTH",
    "MAX_ENDPOINT_LENGTH",
    "MAX_ENDPOINT_LIMIT",
    "MAX_EVENT_LENGTH",
    "MAX_LENGTHS",
    "MAX_SECRET_LENGTH",
    "MAX_URL_LENGTH",
    "MIN_SECRET_LENGTH",
    "NON_FIELD_ERRORS",
    "NULLABLE_FIELDS",
    "REQUIRED_FIELDS",
    "WRITABLE_FIELDS",
    "SubscriptionInvalid",
    "body_limit",
    "body_too_large",
    "check_object",
    "check_subscription",
    "ensure_subscription",
    "read_since",
    "unmask_url",
]

#: Longest event pattern a subscription holds (the ``event`` column).
MAX_EVENT_LENGTH = 200
#: Longest subscriber URL (the ``url`` column).
MAX_URL_LENGTH = 2048
#: Longest content type (the ``content_type`` column).
MAX_CONTENT_TYPE_LENGTH = 100
#: Longest digest name (Django's ``hmac_digest`` column; Flask's holds 20).
MAX_DIGEST_LENGTH = 16
#: Longest HMAC secret (the ``hmac_secret`` column).
MAX_SECRET_LENGTH = 255
#: Longest endpoint name, the key override of endpoint health (the ``endpoint`` column).
MAX_ENDPOINT_LENGTH = 255
#: Largest ``rate_limit`` (deliveries per second) and ``max_in_flight`` a subscription
#: takes: far above what one receiver takes, and within every database's column.
MAX_ENDPOINT_LIMIT = 1_000_000
#: Shortest HMAC secret a user may choose (generated ones are 38 characters).
MIN_SECRET_LENGTH = 16
#: Largest request body the subscription APIs read (a subscription is under 3 KiB); the
#: framework's own limit applies when it is smaller (see :func:`body_limit`).
MAX_BODY_SIZE = 64 * 1024

#: The fields a user may write through an API; the others (ids, owner, dates) are read-only.
WRITABLE_FIELDS = (
    "event",
    "url",
    "content_type",
    "hmac_digest",
    "hmac_secret",
    "active",
    "rate_limit",
    "max_in_flight",
    "endpoint",
    "filter",
    "version",
)
#: The writable fields that take null (the site default: ``THORN_RATE_LIMIT``,
#: ``THORN_MAX_IN_FLIGHT``, the URL's origin as the endpoint).
NULLABLE_FIELDS = ("rate_limit", "max_in_flight", "endpoint")
#: The fields a creation (and a full update) must carry.
REQUIRED_FIELDS = ("event", "url")
#: The key of messages about the body as a whole (Django REST Framework's).
NON_FIELD_ERRORS = "non_field_errors"

#: The longest value of each text field, by field name (the constants above).
MAX_LENGTHS = {
    "event": MAX_EVENT_LENGTH,
    "url": MAX_URL_LENGTH,
    "content_type": MAX_CONTENT_TYPE_LENGTH,
    "hmac_digest": MAX_DIGEST_LENGTH,
    "hmac_secret": MAX_SECRET_LENGTH,
    "version": MAX_VERSION_LENGTH,
}

# Worded as Django REST Framework words them, so that both APIs read alike.
_REQUIRED = "This field is required."
_NULL = "This field may not be null."
_NOT_A_STRING = "Not a valid string."
_NOT_A_BOOLEAN = "Must be a valid boolean."
_NOT_A_FILTER = "A filter is a JSON object or null, not {kind}."
_NOT_A_NUMBER = "A valid number is required."
_NOT_AN_INTEGER = "A valid integer is required."
_NOT_POSITIVE = "Ensure this value is greater than 0."
_BELOW_ONE = "Ensure this value is greater than or equal to 1."
_TOO_HIGH = "Ensure this value is less than or equal to {limit}."
_BLANK = "This field may not be blank."
_NO_SPACES = "Use a name without spaces."
_TOO_LONG = "Ensure this field has no more than {limit} characters."
_TOO_SHORT = "Ensure this field has at least {limit} characters."
_NOT_AN_OBJECT = "Invalid data. Expected a dictionary, but got {kind}."
_SECRET_CHARSET = "Use printable ASCII characters only, without spaces."  # noqa: S105  # a message

_SECRET_CHARS = re.compile(r"[\x21-\x7e]+")
_JSON_KINDS = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}


class SubscriptionInvalid(ThornError, ValueError):
    """A submitted subscription has invalid fields; ``errors`` maps each field to messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in self.errors.items())
        super().__init__(f"Invalid subscription: {summary}")


def _kind(value: object) -> str:
    """The JSON name of ``value``'s type (``array``, ``null``...), else its Python name."""
    if value is None:
        return "null"
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _shape_problem(field: str, value: object) -> str | None:
    """Why ``value`` cannot be the ``field`` of a subscription at all (type, length)."""
    if field in ("filter", "version") and value is None:
        return None  # no filter, no version pin
    if field == "filter":
        return None if isinstance(value, Mapping) else _NOT_A_FILTER.format(kind=_kind(value))
    if value is None:
        return None if field in NULLABLE_FIELDS else _NULL
    if field == "active":
        return None if isinstance(value, bool) else _NOT_A_BOOLEAN
    if field in ("rate_limit", "max_in_flight"):
        return _limit_problem(field, value)
    if not isinstance(value, str):
        return _NOT_A_STRING
    limit = MAX_ENDPOINT_LENGTH if field == "endpoint" else MAX_LENGTHS[field]
    if len(value) > limit:
        return _TOO_LONG.format(limit=limit)
    if field == "endpoint":
        if not value:
            return _BLANK
        if any(c.isspace() for c in value):
            return _NO_SPACES
    return None


def _limit_problem(field: str, value: object) -> str | None:
    """Why ``value`` is no ``rate_limit`` (a finite number above 0) or ``max_in_flight``
    (a whole number from 1), each at most :data:`MAX_ENDPOINT_LIMIT`; JSON booleans and
    strings are refused, never converted."""
    if field == "max_in_flight":
        if isinstance(value, bool) or not isinstance(value, int):
            return _NOT_AN_INTEGER
        if value < 1:
            return _BELOW_ONE
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _NOT_A_NUMBER
        if isinstance(value, float) and not math.isfinite(value):
            return _NOT_A_NUMBER
        if not value > 0:
            return _NOT_POSITIVE
    return _TOO_HIGH.format(limit=MAX_ENDPOINT_LIMIT) if value > MAX_ENDPOINT_LIMIT else None


def _secret_problem(secret: str) -> str | None:
    """Why a secret a user chose is unusable: too short, outside printable ASCII, or not
    what :func:`~thorn_core.subscribers.secret_problem` accepts."""
    if len(secret) < MIN_SECRET_LENGTH:
        return _TOO_SHORT.format(limit=MIN_SECRET_LENGTH)
    if not _SECRET_CHARS.fullmatch(secret):
        return _SECRET_CHARSET
    return secret_problem(secret)


def check_object(data: object) -> dict[str, list[str]]:
    """A message under :data:`NON_FIELD_ERRORS` when a request body ``data`` is not a JSON
    object (a mapping); else nothing."""
    if isinstance(data, Mapping):
        return {}
    return {NON_FIELD_ERRORS: [_NOT_AN_OBJECT.format(kind=_kind(data))]}


def check_subscription(
    app: Thorn, data: object, *, required: Iterable[str] = (), stored_event: str | None = None
) -> dict[str, list[str]]:
    """Check the fields present in ``data``; return messages by field (empty when valid).

    Every value is first checked for its type (a string, ``active`` a boolean, never null)
    and its length (the ``MAX_*_LENGTH`` constants); ``rate_limit`` must be a number above
    0, ``max_in_flight`` a whole number from 1 and ``endpoint`` a name without spaces, each
    or null (:data:`NULLABLE_FIELDS`: the site default); then:

    - ``event``: a well-formed pattern, and one of ``THORN_EVENT_CHOICES`` when set.
    - ``url``: well-formed, and accepted by the app's recipient validators (the host is
      resolved and every address checked, as a delivery would).
    - ``content_type``: a content type the app has a codec for.
    - ``hmac_secret``: at least ``MIN_SECRET_LENGTH`` printable ASCII characters without
      spaces; a ``whsec_`` secret must carry valid base64.
    - ``hmac_digest``: one of sha1, sha224, sha256, sha384, sha512.
    - ``filter``: a payload filter (:mod:`~thorn_core.payload_filters`); the message names
      the JSON pointer of a bad operator.
    - ``event`` and ``version`` against the app's catalog: under
      ``THORN_EVENT_TYPES_STRICT`` the pattern must match a declared event type, and a
      version pin must name a declared version of a type it matches
      (:func:`~thorn_core.targeting.catalog_problems`). An update that changes only the
      version is checked with ``stored_event``, the subscription's pattern.

    Fields named in ``required`` must be present. Other keys are ignored. When ``data`` is
    not a mapping, the answer is one message under :data:`NON_FIELD_ERRORS`.
    """
    if not isinstance(data, Mapping):
        return check_object(data)
    errors: dict[str, list[str]] = {field: [_REQUIRED] for field in required if field not in data}
    for field in WRITABLE_FIELDS:
        if field in data:
            problem = _shape_problem(field, data[field])
            if problem is not None:
                errors[field] = [problem]
    good = {f: data[f] for f in WRITABLE_FIELDS if f in data and f not in errors}
    if "event" in good:
        event = good["event"]
        try:
            validate_pattern(event)
        except InvalidPattern as exc:
            errors["event"] = [str(exc)]
        else:
            choices = app.settings.event_choices
            if choices is not None and event not in choices:
                errors["event"] = [
                    f"{event!r} is not one of the events you can subscribe to: {', '.join(choices)}"
                ]
    if good.get("filter") is not None:
        problem = filter_problem(good["filter"])
        if problem:
            errors["filter"] = [problem]
    pattern = good.get("event", stored_event if "event" not in data else None)
    if pattern is not None and "event" not in errors and "version" not in errors:
        for field, problems in catalog_problems(app, pattern, good.get("version")).items():
            errors.setdefault(field, problems)
    if "url" in good:
        try:
            # Bounded like a delivery: a hanging resolver cannot hold the request.
            app.recipients.validate(good["url"], app.validators, timeout=app.settings.event_timeout)
        except (InvalidURL, RecipientRefused, ResolutionTimeout) as exc:
            errors["url"] = [str(exc)]
    if "content_type" in good and good["content_type"] not in app.codecs:
        errors["content_type"] = [
            f"{good['content_type']!r} is not supported; choose one of "
            f"{', '.join(sorted(app.codecs))}"
        ]
    for field, problem_of in (("hmac_secret", _secret_problem), ("hmac_digest", digest_problem)):
        if field in good:
            problem = problem_of(good[field])
            if problem:
                errors[field] = [problem]
    return errors


def ensure_subscription(app: Thorn, data: object, *, required: Iterable[str] = ()) -> None:
    """Like :func:`check_subscription`, but raise when any field is invalid.

    Raises:
        SubscriptionInvalid: with the messages by field in ``errors``.
    """
    errors = check_subscription(app, data, required=required)
    if errors:
        raise SubscriptionInvalid(errors)


def unmask_url(submitted: object, stored: str) -> object:
    """The URL to keep when an update sends back ``submitted``: the ``stored`` one when
    ``submitted`` is its masked form (APIs show URLs with the password masked, so a client
    that reads, edits and writes back a subscription does not replace the password with
    ``***``); else ``submitted`` as it is."""
    if submitted != stored and submitted == display_url(stored):
        return stored
    return submitted


def read_since(value: object) -> datetime.datetime | None:
    """The optional ``since`` of a redelivery request, aware (UTC when it has no offset).

    Raises:
        SubscriptionInvalid: ``value`` is not an ISO 8601 string (under ``since``).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise SubscriptionInvalid({"since": [_NOT_A_STRING]})
    try:
        return parse_since(value)
    except ValueError as exc:
        raise SubscriptionInvalid({"since": [str(exc)]}) from None


def body_limit(framework_limit: int | None) -> int:
    """The largest request body the APIs read: :data:`MAX_BODY_SIZE`, or the framework's
    limit (Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``, Flask's ``MAX_CONTENT_LENGTH``) when it
    is smaller."""
    if framework_limit is None:
        return MAX_BODY_SIZE
    return min(framework_limit, MAX_BODY_SIZE)


def body_too_large(limit: int) -> str:
    """The message of a 413 answer to a body over ``limit`` bytes."""
    return f"Request body too large: send at most {limit} bytes."
