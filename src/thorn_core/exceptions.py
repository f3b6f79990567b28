"""Exceptions raised by Thorn: one base class, and a specific class per kind of bad input."""

from __future__ import annotations

__all__ = [
    "DeliveryConnectionError",
    "DeliveryFailed",
    "DeliveryTimeout",
    "ImproperlyConfigured",
    "InvalidEd25519Key",
    "InvalidEventName",
    "InvalidEventType",
    "InvalidFilter",
    "InvalidModelEvent",
    "InvalidPattern",
    "InvalidPayloadFilter",
    "InvalidRotation",
    "InvalidSecretKey",
    "InvalidSignature",
    "InvalidSubscriber",
    "InvalidURL",
    "PayloadValidationError",
    "RecipientRefused",
    "SecretDecryptionError",
    "SerializationError",
    "ThornError",
    "UnknownDispatcher",
]


class ThornError(Exception):
    """Base class of every exception Thorn raises on purpose."""


class ImproperlyConfigured(ThornError, ValueError):
    """A setting is unknown, of the wrong type, or names something that cannot be loaded."""


class InvalidEventName(ThornError, ValueError):
    """An event name is malformed (empty segment, whitespace, a wildcard)."""


class InvalidModelEvent(ThornError, ValueError):
    """A model event is declared wrongly: a malformed attribute path, a missing dispatch."""


class InvalidFilter(InvalidModelEvent):
    """A model event filter is malformed: an unknown operator, no operator, a bad value."""


class InvalidPattern(ThornError, ValueError):
    """A subscription pattern is malformed."""


class InvalidURL(ThornError, ValueError):
    """A subscriber URL cannot be parsed or lacks a scheme or host."""


class InvalidSubscriber(ThornError, ValueError):
    """A subscriber definition is incomplete or has a field of the wrong kind."""


class InvalidPayloadFilter(InvalidSubscriber):
    """A subscription's payload filter is malformed; ``path`` is the JSON pointer of the
    offending part (``/amount/$gtee``; empty for the filter as a whole)."""

    def __init__(self, problem: str, path: str) -> None:
        self.problem = problem
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"Invalid filter{where}: {problem}")


class SerializationError(ThornError, TypeError):
    """A payload cannot be encoded for a content type; the message names the offending type."""


class RecipientRefused(ThornError):
    """A recipient validator refused a subscriber URL; no connection was made."""


class UnknownDispatcher(ImproperlyConfigured):
    """``THORN_DISPATCHER`` names no built-in, entry-point or importable dispatcher."""


class InvalidSignature(ThornError, ValueError):
    """A received webhook's signature is missing, malformed, stale or does not match."""


class DeliveryTimeout(ThornError):
    """A delivery attempt ran past its timeout."""


class ResolutionTimeout(DeliveryTimeout):
    """A subscriber's host name did not resolve before the delivery's deadline."""


class DeliveryConnectionError(ThornError):
    """A delivery attempt could not connect, or the connection broke before an answer."""


class DeliveryFailed(ThornError):
    """A receiver answered with a status other than 2xx."""


class InvalidSecretKey(ImproperlyConfigured):
    """``THORN_SECRET_KEYS`` holds a malformed key (not a url-safe base64 32-byte Fernet key)."""


class SecretDecryptionError(ThornError):
    """A stored secret cannot be decrypted with any key of ``THORN_SECRET_KEYS``; the message
    names the subscriber, never the secret."""

    def __init__(self, subscriber: object, problem: str = "") -> None:
        self.subscriber = subscriber
        super().__init__(
            f"cannot decrypt the secret of subscriber {subscriber} with any key of "
            f"THORN_SECRET_KEYS{': ' + problem if problem else ''}"
        )


class InvalidRotation(ThornError, ValueError):
    """A secret rotation was asked with a bad argument (a negative grace, a bad new secret)."""


class InvalidEventType(ThornError, ValueError):
    """An event type is declared wrongly: a schema that is not JSON Schema (draft 2020-12), an
    example its schema refuses, or a second type with one name and version."""


class PayloadValidationError(ThornError, ValueError):
    """A payload breaks its event type's schema; nothing was sent.

    ``event`` and ``version`` name the type, ``pointer`` is the JSON pointer of the offending
    value (empty for the payload as a whole) and ``rule`` the schema keyword it breaks.
    """

    def __init__(self, event: str, version: str, pointer: str, rule: str, problem: str) -> None:
        self.event = event
        self.version = version
        self.pointer = pointer
        self.rule = rule
        self.problem = problem
        super().__init__(
            f"payload of {event!r} (version {version}) breaks its schema at "
            f"{pointer or '/'} ({rule}): {problem}"
        )


class InvalidEd25519Key(ImproperlyConfigured):
    """A ``whsk_`` signing key or ``whpk_`` public key is malformed (not base64 of 32 bytes)."""
