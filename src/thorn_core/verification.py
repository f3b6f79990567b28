"""Receiving webhooks: verify a request's signatures and parse its payload, for any framework.

The Django and Flask ``verify_webhook`` decorators are thin wrappers around
:func:`verify_request`; other receivers can call it directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

import attrs

from .codecs import FORM_CONTENT_TYPE, JSON_CONTENT_TYPE
from .exceptions import InvalidSignature
from .signing import is_asymmetric_key, verify_hook_hmac, verify_standard_webhook
from .telemetry import get_logger

__all__ = ["SecretSpec", "VerifiedWebhook", "parse_payload", "secrets_for", "verify_request"]

logger = get_logger(__name__)

#: A secret, several (while rotating), or a callable returning them for a request.
SecretSpec = str | Iterable[str] | Callable[..., "str | Iterable[str]"]


@attrs.frozen
class VerifiedWebhook:
    """A webhook whose signatures were verified: what the receiving view works with."""

    event: str | None
    delivery_id: str | None
    subscription: str | None
    payload: Any
    body: bytes = attrs.field(repr=False)
    headers: Mapping[str, str] = attrs.field(repr=False)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def secrets_for(secret: SecretSpec, request: Any) -> list[str]:
    """The secrets to verify ``request`` with: ``secret`` itself, or what a callable returns.

    Receiver decorators share it, so an unknown sender is a 401 everywhere, never a 500.

    Raises:
        InvalidSignature: the callable raised (it is logged) or found no secret.
    """
    if callable(secret):
        try:
            found = secret(request)
        except Exception as exc:
            logger.warning("Looking up the webhook secret failed: %r", exc)
            raise InvalidSignature("no secret is known for this webhook") from exc
    else:
        found = secret
    if found is None:
        raise InvalidSignature("no secret is known for this webhook")
    secrets = [found] if isinstance(found, str) else list(found)
    if not secrets or not all(isinstance(s, str) and s for s in secrets):
        raise InvalidSignature("no secret is known for this webhook")
    return secrets


def parse_payload(content_type: str | None, body: bytes) -> Any:
    """The payload of a body: JSON decoded, a form as a dict (lists for repeated keys).

    Raises:
        ValueError: the body is not valid for its declared content type.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == JSON_CONTENT_TYPE or media.endswith("+json"):
        return json.loads(body)
    if media == FORM_CONTENT_TYPE:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}
    return body


def verify_request(
    headers: Mapping[str, str],
    body: bytes,
    secret: str | Iterable[str],
    *,
    tolerance: float = 300.0,
    digest_method: str = "sha256",
    require_timestamp: bool = True,
    now: float | None = None,
) -> VerifiedWebhook:
    """Verify a received webhook and parse its payload.

    The Standard Webhooks headers (id, timestamp, signature) are checked first: a missing
    or bad signature, or a timestamp more than ``tolerance`` seconds off, is refused.
    ``Hook-HMAC`` is checked only when the request has no ``webhook-signature`` (a Thorn 1.x
    sender), and then only with ``require_timestamp=False``: it has no replay protection. A
    verified ``webhook-signature`` covers more than ``Hook-HMAC`` (the id and timestamp too),
    and during a secret rotation ``Hook-HMAC`` is made with the new secret only, so checking
    it would refuse a receiver that still holds the old secret within the grace period.

    ``secret`` may hold ``whpk_`` ed25519 public keys: they verify the ``v1a`` entries of
    ``webhook-signature`` (ed25519 subscribers are sent no ``Hook-HMAC``, so a request
    without ``webhook-signature`` needs an HMAC secret).

    Raises:
        InvalidSignature: with the reason; receivers answer 401.
    """
    lowered = _lower(headers)
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise InvalidSignature("no secret to verify the webhook with")
    hmac_secrets = [s for s in secrets if not (isinstance(s, str) and is_asymmetric_key(s))]
    has_standard = "webhook-signature" in lowered
    if has_standard or require_timestamp:
        verify_standard_webhook(secrets, lowered, body, tolerance=tolerance, now=now)
    if hmac_secrets and not has_standard:
        verify_hook_hmac(hmac_secrets, body, lowered.get("hook-hmac"), digest_method)
    elif not has_standard:
        raise InvalidSignature(
            "missing webhook-signature header: an ed25519 public key verifies its 'v1a' entries"
        )
    try:
        payload = parse_payload(lowered.get("content-type"), body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSignature(f"the signed body is not valid for its content type: {exc}") from exc
    return VerifiedWebhook(
        event=lowered.get("hook-event"),
        delivery_id=lowered.get("hook-delivery") or lowered.get("webhook-id"),
        subscription=lowered.get("hook-subscription"),
        payload=payload,
        body=body,
        headers=lowered,
    )
