"""Settings: every ``THORN_*`` option with its default, checked once when an app is built."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

from .exceptions import ImproperlyConfigured

__all__ = ["PREFIX", "Settings"]

PREFIX = "THORN_"


def _setting_name(attribute: attrs.Attribute[Any]) -> str:
    return PREFIX + attribute.name.upper()


def _fail(attribute: attrs.Attribute[Any], expected: str, value: object) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"{_setting_name(attribute)} must be {expected}, got {value!r} ({type(value).__name__})"
    )


def _bool(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise _fail(attribute, "True or False", value)


def _positive_number(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise _fail(attribute, "a positive number", value)


def _non_negative_number(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _fail(attribute, "a number >= 0", value)


def _positive_int(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(attribute, "a whole number >= 1", value)


def _non_negative_int(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(attribute, "a whole number >= 0", value)


def _str_or_callable(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not (isinstance(value, str) or callable(value)):
        raise _fail(attribute, "a 'module:name' string or a callable", value)


def _optional_positive_number(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _positive_number(_, attribute, value)


def _optional_positive_int(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _positive_int(_, attribute, value)


def _failure_rate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise _fail(attribute, "a number above 0 and at most 1", value)


def _cooloff_max(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    _positive_number(instance, attribute, value)
    if value < instance.circuit_cooloff:
        raise ImproperlyConfigured(
            f"{_setting_name(attribute)} ({value!r}) must be at least THORN_CIRCUIT_COOLOFF "
            f"({instance.circuit_cooloff!r})"
        )


def _validation_mode(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in (None, "raise", "warn", "off"):
        raise _fail(attribute, "'raise', 'warn', 'off' or None", value)


def _redis_url(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (
        not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://"))
    ):
        raise _fail(attribute, "a redis://, rediss:// or unix:// URL, or None", value)


def _optional_str(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise _fail(attribute, "a string or None", value)


def _base_url(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail(attribute, "an http(s) URL with a host, like 'https://shop.example.com'", value)
    if parts.query or parts.fragment:
        raise _fail(attribute, "a URL without a query or fragment", value)


def _optional_mapping(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise _fail(attribute, "a mapping or None", value)


def _optional_str_sequence(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(attribute, "a list of strings or None", value)
    for item in value:
        if not isinstance(item, str):
            raise _fail(attribute, "a list of strings or None", value)


def _optional_sequence(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, Sequence)):
        raise _fail(attribute, "a list or None", value)


def _secret_keys(value: Any) -> tuple[str, ...]:
    from .encryption import normalize_keys

    return normalize_keys(value)


def _usable_secret_keys(_: object, __: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    """Build the cipher once: a malformed key fails when the app is built, not on a read."""
    if value:
        from .encryption import cipher_for

        cipher_for(value)


def _signature_scheme(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A known scheme; ed25519 only where ``cryptography`` is installed (a start-up error)."""
    from .signing import SCHEMES

    if value not in SCHEMES:
        raise _fail(attribute, " or ".join(repr(s) for s in SCHEMES), value)
    if value == "ed25519":
        from .ed25519 import require_cryptography

        try:
            require_cryptography()
        except ImproperlyConfigured as exc:
            raise ImproperlyConfigured(f"{_setting_name(attribute)} = 'ed25519': {exc}") from None


def _tuple_or_none(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


@attrs.frozen(kw_only=True)
class Settings:
    """Every Thorn option and its default; the setting name is ``THORN_`` + the field in capitals.

    Build one with :meth:`from_mapping` from Django settings, Flask config or a dict. Each
    field's ``metadata["doc"]`` says what it does; the configuration reference is generated
    from it.
    """

    dispatcher: str | type = attrs.field(
        default="default",
        validator=_str_or_callable,
        metadata={
            "doc": (
                "Entry-point name (`default`, `disabled`, `celery`, `capture`, a plugin's) or "
                '`"module:Class"`. Unknown names fail when the app is built.'
            )
        },
    )
    event_timeout: float = attrs.field(
        default=3.0,
        validator=_positive_number,
        metadata={"doc": "Seconds one delivery attempt may take, connect, send and read together."},
    )
    retry: bool = attrs.field(
        default=True,
        validator=_bool,
        metadata={"doc": "Whether retryable failures are retried by dispatchers that retry later."},
    )
    retry_max: int = attrs.field(
        default=10, validator=_non_negative_int, metadata={"doc": "Retries at most."}
    )
    retry_delay: float = attrs.field(
        default=60.0,
        validator=_non_negative_number,
        metadata={"doc": "Seconds before the first retry; later ones back off exponentially."},
    )
    chunksize: int = attrs.field(
        default=10,
        validator=_positive_int,
        metadata={"doc": "Events per message / deliveries per task for chunking dispatchers."},
    )
    codecs: Mapping[str, Any] | None = attrs.field(
        default=None,
        validator=_optional_mapping,
        metadata={
            "doc": 'Extra or replacement codecs: content type -> codec object or `"module:name"`.'
        },
    )
    subscribers: Mapping[str, Any] | None = attrs.field(
        default=None,
        validator=_optional_mapping,
        metadata={
            "doc": (
                "Static subscribers: pattern -> URL, dict, callable "
                "`(event, sender=None, **context)`, or a list mixing them."
            )
        },
    )
    subscriber_model: str | None = attrs.field(
        default=None,
        validator=_optional_str,
        metadata={
            "doc": "The stored subscriber model an adapter uses (`app_label.Model` on Django)."
        },
    )
    hmac_signer: str | Callable[..., str] = attrs.field(
        default="thorn_core.signing:hook_hmac",
        validator=_str_or_callable,
        metadata={
            "doc": (
                "Computes `Hook-HMAC` from `(digest_method, secret, body)`: a callable or "
                '`"module:function"`.'
            )
        },
    )
    signature: str = attrs.field(
        default="hmac",
        validator=_signature_scheme,
        metadata={
            "doc": (
                'The kind of secret new subscribers get: `"hmac"` (`whsec_`, `v1` and '
                '`Hook-HMAC`) or `"ed25519"` (a `whsk_` signing key, `v1a` only; needs '
                "`thorn-webhooks[ed25519]`). A subscriber given a `whsk_` secret signs "
                "with ed25519 either way."
            )
        },
    )
    event_choices: tuple[str, ...] | None = attrs.field(
        default=None,
        converter=_tuple_or_none,
        validator=_optional_str_sequence,
        metadata={"doc": "Patterns subscribers may choose (None: any valid pattern)."},
    )
    event_types_strict: bool = attrs.field(
        default=False,
        validator=_bool,
        metadata={
            "doc": (
                "Refuse a subscription whose pattern matches no event type of the catalog "
                "(APIs, admin, command lines)."
            )
        },
    )
    drf_permission_classes: tuple[str, ...] | None = attrs.field(
        default=None,
        converter=_tuple_or_none,
        validator=_optional_str_sequence,
        metadata={"doc": "Permission classes of the Django REST Framework API, as dotted paths."},
    )
    recipient_validators: tuple[Any, ...] | None = attrs.field(
        default=None,
        converter=_tuple_or_none,
        validator=_optional_sequence,
        metadata={
            "doc": (
                'Validators; None means `block_internal_ips()`, `ensure_protocol("http", '
                '"https")`, `ensure_port(80, 443)`.'
            )
        },
    )
    signal_honors_transaction: bool = attrs.field(
        default=False,
        validator=_bool,
        metadata={"doc": "Model events wait for the transaction to commit."},
    )
    allow_redirects: bool = attrs.field(
        default=False,
        validator=_bool,
        metadata={"doc": "Follow redirects (each hop validated again)."},
    )
    max_redirects: int = attrs.field(
        default=3,
        validator=_non_negative_int,
        metadata={"doc": "Hops followed at most when `THORN_ALLOW_REDIRECTS` is on."},
    )
    retry_backoff_max: float = attrs.field(
        default=3600.0,
        validator=_positive_number,
        metadata={"doc": "Seconds between retries at most; caps the backoff and `Retry-After`."},
    )
    celery_app: Any = attrs.field(
        default=None,
        metadata={
            "doc": (
                'The Celery app of the `celery` dispatcher (an app or `"module:attr"`); None uses '
                "Celery's current app."
            )
        },
    )
    celery_queue: str | None = attrs.field(
        default=None,
        validator=_optional_str,
        metadata={
            "doc": "The queue Thorn's Celery tasks go to; None follows the Celery app's routing."
        },
    )
    dns_cache_ttl: float = attrs.field(
        default=30.0,
        validator=_non_negative_number,
        metadata={
            "doc": (
                "Seconds an approved recipient (its URL and validated addresses) is reused before "
                "it is resolved and checked again; `0` checks on every delivery."
            )
        },
    )
    delivery_log: Any = attrs.field(
        default=None,
        metadata={
            "doc": (
                "Where every delivery attempt is recorded: a `DeliveryLog` object, a class made "
                'with no arguments, or `"module:Class"` (the adapters provide database-backed '
                "ones); None keeps an in-memory log in each process."
            )
        },
    )
    delivery_log_retention: float = attrs.field(
        default=7 * 86400.0,
        validator=_positive_number,
        metadata={
            "doc": (
                "Seconds attempts are kept in the delivery log; `prune` removes older ones, "
                "but never the latest attempt of a delivery that has not succeeded."
            )
        },
    )
    failure_limit: int = attrs.field(
        default=100,
        validator=_non_negative_int,
        metadata={
            "doc": (
                "Consecutive failed attempts after which a subscription is deactivated (when "
                "they also span `THORN_FAILURE_WINDOW`); `0` never deactivates. A success resets "
                "the count."
            )
        },
    )
    failure_window: float = attrs.field(
        default=3 * 86400.0,
        validator=_non_negative_number,
        metadata={
            "doc": (
                "Seconds the consecutive failures must span before a subscription is "
                "deactivated, so that a short outage never disables anyone."
            )
        },
    )
    outbox: bool = attrs.field(
        default=False,
        validator=_bool,
        metadata={
            "doc": (
                "Write events sent inside a database transaction to an outbox table in that "
                "transaction; a relay dispatches them after commit (needs an adapter's outbox)."
            )
        },
    )
    event_types: Sequence[Any] | None = attrs.field(
        default=None,
        converter=_tuple_or_none,
        validator=_optional_sequence,
        metadata={
            "doc": (
                "Event types for the catalog: a list of mappings with `name` and optionally "
                "`version`, `schema`, `description`, `examples`, `deprecated` (or `EventType` "
                "objects); added to those declared with `app.event_type()`."
            )
        },
    )
    validate_payloads: str | None = attrs.field(
        default=None,
        validator=_validation_mode,
        metadata={
            "doc": (
                "What a payload that breaks its event type's schema does at send: `raise` "
                "(PayloadValidationError, nothing sent), `warn` (logged, sent) or `off`; None: "
                "`raise` under the pytest plugin and in debug mode, `warn` otherwise."
            )
        },
    )
    base_url: str | None = attrs.field(
        default=None,
        validator=_base_url,
        metadata={
            "doc": (
                "Scheme and host (`https://shop.example.com`, optionally a path) that a "
                "relative `ref` of a model event is joined to, with any binding; None: the "
                "binding makes it absolute (Django: the Sites framework; Flask: the "
                "request's host, else `SERVER_NAME`)."
            )
        },
    )
    pool_size: int = attrs.field(
        default=10,
        validator=_positive_int,
        metadata={"doc": "Threads of the `default` dispatcher's fan-out pool."},
    )
    ca_bundle: str | None = attrs.field(
        default=None,
        validator=_optional_str,
        metadata={
            "doc": (
                "CA bundle used to verify TLS instead of the default one. Verification is never "
                "off."
            )
        },
    )
    secret_keys: tuple[str, ...] = attrs.field(
        default=(),
        converter=_secret_keys,
        validator=_usable_secret_keys,
        metadata={
            "doc": (
                "Fernet keys (newest first) that encrypt subscriber secrets stored in the "
                "database; any of them decrypts. Empty: secrets are stored in clear (a "
                "warning says so). Needs `cryptography`."
            )
        },
    )
    response_max_bytes: int = attrs.field(
        default=65536,
        validator=_non_negative_int,
        metadata={"doc": "Bytes of a response body read at most; the rest is discarded unread."},
    )
    telemetry: bool = attrs.field(
        default=True,
        validator=_bool,
        metadata={
            "doc": (
                "OpenTelemetry spans and metrics, when `opentelemetry-api` is installed "
                "(`thorn-webhooks[otel]`); False turns them off. See docs/observability.md."
            )
        },
    )
    tracer_provider: Any = attrs.field(
        default=None,
        metadata={
            "doc": (
                "The OpenTelemetry tracer provider (an object or a `module:attr` path); None: "
                "the global one."
            )
        },
    )
    meter_provider: Any = attrs.field(
        default=None,
        metadata={
            "doc": (
                "The OpenTelemetry meter provider (an object or a `module:attr` path); None: "
                "the global one."
            )
        },
    )
    metrics_endpoint_cap: int = attrs.field(
        default=100,
        validator=_positive_int,
        metadata={
            "doc": (
                "Distinct endpoints (URL origins), and distinct event names, a process labels "
                "metrics with; later ones are labelled `other`."
            )
        },
    )
    trace_receivers: tuple[str, ...] = attrs.field(
        default=(),
        converter=_tuple_or_none,
        validator=_optional_str_sequence,
        metadata={
            "doc": (
                "Subscriber uuids and origins (`https://hooks.example.com`) whose deliveries "
                "carry the W3C `traceparent` and `tracestate` headers; none by default."
            )
        },
    )
    health_url: str | None = attrs.field(
        default=None,
        validator=_redis_url,
        metadata={
            "doc": (
                "Redis URL of the endpoint health shared by every process (circuits, rate "
                "limits, in-flight caps, failure streaks); None: the Celery broker's URL when "
                "it is Redis, else each process keeps its own in memory."
            )
        },
    )
    circuit_window: float = attrs.field(
        default=60.0,
        validator=_positive_number,
        metadata={"doc": "Seconds of the sliding window an endpoint's failure rate is taken over."},
    )
    circuit_min_requests: int = attrs.field(
        default=10,
        validator=_positive_int,
        metadata={"doc": "Attempts at least in the window before an endpoint's circuit can open."},
    )
    circuit_failure_rate: float = attrs.field(
        default=0.5,
        validator=_failure_rate,
        metadata={
            "doc": "Share of failed attempts in the window (above 0, at most 1) that opens it."
        },
    )
    circuit_cooloff: float = attrs.field(
        default=10.0,
        validator=_positive_number,
        metadata={
            "doc": "Seconds an open circuit waits before letting one probe delivery through."
        },
    )
    circuit_cooloff_max: float = attrs.field(
        default=600.0,
        validator=_cooloff_max,
        metadata={
            "doc": "Seconds of cool-off at most; it doubles each time a probe fails, up to this."
        },
    )
    slow_threshold: float = attrs.field(
        default=5.0,
        validator=_positive_number,
        metadata={
            "doc": "Seconds after which a delivery marks its endpoint slow (as a timeout does)."
        },
    )
    rate_limit: float | None = attrs.field(
        default=None,
        validator=_optional_positive_number,
        metadata={
            "doc": (
                "Deliveries per second to one endpoint at most, for subscribers without their "
                "own `rate_limit`; None: no limit."
            )
        },
    )
    max_in_flight: int | None = attrs.field(
        default=None,
        validator=_optional_positive_int,
        metadata={
            "doc": (
                "Deliveries to one endpoint in progress at once at most, for subscribers "
                "without their own `max_in_flight`; None: no cap."
            )
        },
    )
    celery_slow_queue: str | None = attrs.field(
        default=None,
        validator=_optional_str,
        metadata={
            "doc": (
                "Queue the deliveries to a slow endpoint are re-published to; None: the same "
                "queue as the others."
            )
        },
    )

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """Every recognised ``THORN_*`` name."""
        return tuple(_setting_name(a) for a in attrs.fields(cls))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None = None) -> Settings:
        """Build settings from the ``THORN_*`` keys of ``mapping``; other keys are ignored.

        Raises:
            ImproperlyConfigured: for an unknown ``THORN_`` key or a value of the wrong type.
        """
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise ImproperlyConfigured(
                f"Thorn settings must be a mapping of THORN_* keys, got {type(mapping).__name__}"
            )
        known = {_setting_name(a): a.name for a in attrs.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in mapping.items():
            if not isinstance(key, str) or not key.startswith(PREFIX):
                continue
            if key not in known:
                raise ImproperlyConfigured(f"Unknown Thorn setting {key!r}")
            values[known[key]] = value
        return cls(**values)

    def as_mapping(self) -> dict[str, Any]:
        """The settings as ``THORN_*`` keys, the inverse of :meth:`from_mapping`."""
        return {_setting_name(a): getattr(self, a.name) for a in attrs.fields(type(self))}
