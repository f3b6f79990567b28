"""Thorn 1.x compatibility: its stored subscriptions planned for import, and its old options."""

from __future__ import annotations

import datetime
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .exceptions import ThornError
from .signing import normalize_digest
from .subscribers import secret_problem
from .subscriptions import MAX_LENGTHS, MIN_SECRET_LENGTH, check_subscription

#: The text columns of a Thorn 1.x subscriber row (later columns, such as a version pin,
#: have no 1.x counterpart and are left at their defaults).
V1_TEXT_COLUMNS = ("event", "url", "content_type", "hmac_digest", "hmac_secret")

if TYPE_CHECKING:
    from .app import Thorn

__all__ = [
    "COMPARED_FIELDS",
    "V1_COLUMNS",
    "V1_REQUIRED_COLUMNS",
    "V1_TABLE",
    "LegacyOptionError",
    "RowStatus",
    "V1Row",
    "differences",
    "event_options",
    "merge_request_data",
    "missing_columns",
    "plan_v1_row",
]

#: The table of Thorn 1.x's Django subscriber model (app label ``webhooks``).
V1_TABLE = "webhooks_subscriber"
#: Its columns Thorn 2 reads (an ``id`` primary key may be there too; it names rows in reports).
V1_COLUMNS = (
    "uuid",
    "event",
    "url",
    "user_id",
    "hmac_secret",
    "hmac_digest",
    "content_type",
    "created_at",
    "updated_at",
)
#: The columns without which no row can be imported (timestamps are optional).
V1_REQUIRED_COLUMNS = V1_COLUMNS[:7]

#: ``import``: stored active, delivers as in 1.x; ``inactive``: stored with ``active=False``
#: (Thorn 2 would refuse to deliver to it, the reasons say why); ``skip``: not stored.
RowStatus = Literal["import", "inactive", "skip"]

#: Fields whose problems keep a row from being stored (its owner or signature would change).
_FATAL_FIELDS = ("hmac_secret", "hmac_digest")
#: The fields of a planned subscription compared with an existing one of the same uuid.
COMPARED_FIELDS = ("event", "url", "user", "hmac_secret", "hmac_digest", "content_type", "active")


class LegacyOptionError(ThornError, TypeError):
    """A Thorn 1.x form that Thorn 2 does not take (or takes only in a stricter shape); the
    message says what to write instead."""


@attrs.frozen(kw_only=True)
class V1Row:
    """What becomes of one Thorn 1.x subscriber row.

    ``fields`` are those of the Thorn 2 subscription (``uuid``, ``event``, ``url``, ``user``,
    ``hmac_secret``, ``hmac_digest``, ``content_type``, ``active``); empty when skipped.
    """

    #: How reports name the row: its uuid, else ``id=N``, else its position.
    label: str
    status: RowStatus
    #: Why the row is inactive or skipped (empty when imported as is).
    reasons: tuple[str, ...] = ()
    #: Remarks that change nothing about the status (an unreadable timestamp).
    notes: tuple[str, ...] = ()
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None


def missing_columns(columns: Iterable[str]) -> list[str]:
    """The required 1.x columns that ``columns`` (a table's, any case) lacks."""
    present = {column.lower() for column in columns}
    return [column for column in V1_REQUIRED_COLUMNS if column not in present]


def _label(row: Mapping[str, Any], position: int) -> str:
    value = row.get("uuid")
    if value not in (None, ""):
        key = _uuid(value)
        return str(value if key is None else key)
    if row.get("id") is not None:
        return f"id={row['id']}"
    return f"row {position}"


def _uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip())  # 1.x on SQLite/MySQL stored 32 hex digits
        except ValueError:
            return None
    return None


def _timestamp(value: object, column: str, notes: list[str]) -> datetime.datetime | None:
    """A 1.x timestamp as an aware datetime (naive ones are UTC, as Django stored them)."""
    if value is None:
        return None
    parsed: datetime.datetime | None = None
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
    if parsed is None:
        notes.append(f"{column} {value!r} is not a timestamp; the import time is used")
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.timezone.utc)


def plan_v1_row(
    app: Thorn,
    row: Mapping[str, Any],
    *,
    user_exists: Callable[[Any], bool],
    position: int = 0,
) -> V1Row:
    """Plan the import of one row of Thorn 1.x's subscriber table into a Thorn 2 subscription.

    The uuid (so ``Hook-Subscription`` stays the same), owner, secret, digest (any case:
    ``'SHA512'`` becomes ``'sha512'``), content type and timestamps are kept.

    - skipped: the uuid is missing or malformed, the owner is not a user
      (``user_exists(user_id)`` is false; importing it unowned would send it every user's
      events), the secret or digest cannot sign as 1.x did, or a text column is NULL;
    - inactive: the pattern, URL or content type is one Thorn 2 refuses (the URL is checked
      by ``app``'s recipient validators, resolving its host as a delivery would), so it is
      kept but not delivered to until someone fixes it;
    - imported: everything else.

    Args:
        app: the app whose validators, codecs and ``THORN_EVENT_CHOICES`` apply.
        row: the row by column name (``V1_COLUMNS``, maybe ``id``).
        user_exists: whether a user with this id exists.
        position: the row's position, to name it when it has neither uuid nor id.
    """
    label = _label(row, position)
    notes: list[str] = []
    created_at = _timestamp(row.get("created_at"), "created_at", notes)
    updated_at = _timestamp(row.get("updated_at"), "updated_at", notes)
    fatal: list[str] = []
    key = _uuid(row.get("uuid"))
    if key is None:
        fatal.append(f"uuid {row.get('uuid')!r} is not a UUID")
    for column in V1_TEXT_COLUMNS:
        value, limit = row.get(column), MAX_LENGTHS[column]
        if not isinstance(value, str):
            fatal.append(f"{column} is {value!r}, not text")
        elif len(value) > limit:
            fatal.append(
                f"{column} has {len(value)} characters, more than Thorn 2 stores ({limit})"
            )
    user = row.get("user_id")
    if user is not None and not user_exists(user):
        fatal.append(
            f"user_id {user!r} names no user (imported without an owner it would receive "
            "every user's events); create the user or delete the row"
        )
    if fatal:
        return V1Row(label=label, status="skip", reasons=tuple(fatal), notes=tuple(notes))
    data = {column: row[column] for column in ("event", "url", "content_type", "hmac_digest")}
    data["hmac_digest"] = normalize_digest(row["hmac_digest"]) or row["hmac_digest"]
    # Receivers verify with the secret as it is: it is kept if Thorn can sign with it at all,
    # even when shorter than what Thorn 2 asks of a secret chosen today.
    secret = row["hmac_secret"]
    errors = check_subscription(app, data)
    problem = secret_problem(secret)
    if problem is not None:
        errors["hmac_secret"] = [problem]
    elif len(secret) < MIN_SECRET_LENGTH:
        notes.append(
            f"hmac_secret has {len(secret)} characters, fewer than the {MIN_SECRET_LENGTH} "
            "Thorn 2 asks of new secrets: rotate it with its receiver"
        )
    data["hmac_secret"] = secret
    fatal = [f"{field}: {' '.join(errors[field])}" for field in _FATAL_FIELDS if field in errors]
    if fatal:
        return V1Row(label=label, status="skip", reasons=tuple(fatal), notes=tuple(notes))
    reasons = tuple(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
    fields = {**data, "uuid": key, "user": user, "active": not reasons}
    return V1Row(
        label=label,
        status="inactive" if reasons else "import",
        reasons=reasons,
        notes=tuple(notes),
        fields=fields,
        created_at=created_at,
        updated_at=updated_at,
    )


def differences(planned: Mapping[str, Any], existing: Mapping[str, Any]) -> list[str]:
    """The fields of a planned row that an existing subscription of the same uuid holds
    otherwise (ids compared as text, so ``7 == '7'``)."""
    changed = []
    for name in COMPARED_FIELDS:
        mine, theirs = planned.get(name), existing.get(name)
        if mine != theirs and (mine is None or theirs is None or str(mine) != str(theirs)):
            changed.append(name)
    return changed


# -- Thorn 1.x options of Event ------------------------------------------------------------

#: What each option removed in Thorn 2 became.
_REMOVED = {
    "dispatcher": (
        "Event(dispatcher=...) was removed in Thorn 2: set THORN_DISPATCHER, or send through "
        "an app of your own: Event(name, app=Thorn({'THORN_DISPATCHER': ...}))"
    ),
}
_EVENT_OPTIONS = (
    "app, timeout, retry, retry_max, retry_delay, recipient_validators, subscribers, headers"
)


def event_options(
    options: Mapping[str, Any], name: str
) -> tuple[Mapping[str, Any] | None, dict[str, str]]:
    """Read the Thorn 1.x options of ``Event(name, **options)``.

    ``request_data`` (keys merged into the body of every send; see
    :func:`merge_request_data`) and ``allow_keepalive`` still work, with a
    ``DeprecationWarning``; ``allow_keepalive=False`` becomes a ``Connection: close`` header.

    Returns:
        The request data (or None) and the extra headers.

    Raises:
        LegacyOptionError: ``dispatcher=``, an unknown option, or a value of the wrong kind.
    """
    request_data: Mapping[str, Any] | None = None
    headers: dict[str, str] = {}
    for option, value in options.items():
        if option == "request_data":
            if value is None:
                continue
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise LegacyOptionError(
                    f"Event {name!r}: request_data must be a mapping with string keys, "
                    f"got {value!r}"
                )
            warnings.warn(
                f"Event {name!r}: request_data is deprecated; put its keys in the data you "
                "send (a model event: in webhooks.payload()). Until then they are merged into "
                "the body of every send, the send's own keys winning",
                DeprecationWarning,
                stacklevel=3,
            )
            request_data = dict(value)
        elif option == "allow_keepalive":
            if value is None:
                continue
            if not isinstance(value, bool):
                raise LegacyOptionError(
                    f"Event {name!r}: allow_keepalive must be True or False, got {value!r}"
                )
            warnings.warn(
                f"Event {name!r}: allow_keepalive is deprecated; "
                + (
                    "Thorn 2 keeps connections alive by default: remove it"
                    if value
                    else "write headers={'Connection': 'close'} instead (what it now sends)"
                ),
                DeprecationWarning,
                stacklevel=3,
            )
            if not value:
                headers["Connection"] = "close"
        elif option in _REMOVED:
            raise LegacyOptionError(_REMOVED[option])
        else:
            raise LegacyOptionError(
                f"Event() got an unexpected keyword argument {option!r}; it takes {_EVENT_OPTIONS}"
            )
    return request_data, headers


def merge_request_data(name: str, request_data: Mapping[str, Any], data: Any) -> Any:
    """The body of a send of event ``name`` with Thorn 1.x's ``request_data`` merged in: the
    data's own keys win; None becomes the request data alone.

    Raises:
        LegacyOptionError: ``data`` is not a mapping, so there is nothing to merge into.
    """
    if data is None:
        return dict(request_data)
    if not isinstance(data, Mapping):
        raise LegacyOptionError(
            f"Event {name!r} has request_data, which merges into a mapping, but the data sent "
            f"is a {type(data).__name__}: send a dict, or drop request_data"
        )
    return {**request_data, **data}
