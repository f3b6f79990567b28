"""Checking a subscription that a user submits (API, admin, CLI), with per-field messages.

Adapters call :func:`check_subscription` so that the Django and Flask APIs refuse the same
input with the same messages, and never store a URL that delivery would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .exceptions import InvalidPattern, InvalidURL, RecipientRefused, ThornError
from .patterns import validate_pattern
from .subscribers import digest_problem, secret_problem

if TYPE_CHECKING:
    from .app import Thorn

__all__ = ["SubscriptionInvalid", "check_subscription", "ensure_subscription"]


class SubscriptionInvalid(ThornError, ValueError):
    """A submitted subscription has invalid fields; ``errors`` maps each field to messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in self.errors.items())
        super().__init__(f"Invalid subscription: {summary}")


def check_subscription(app: Thorn, data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Check the fields present in ``data``; return messages by field (empty when valid).

    - ``event``: a well-formed pattern, and one of ``THORN_EVENT_CHOICES`` when set.
    - ``url``: well-formed, and accepted by the app's recipient validators (the host is
      resolved and every address checked, as a delivery would).
    - ``content_type``: a content type the app has a codec for.
    - ``hmac_secret``: non-empty; a ``whsec_`` secret must carry valid base64.
    - ``hmac_digest``: one of sha1, sha224, sha256, sha384, sha512.
    """
    errors: dict[str, list[str]] = {}
    if "event" in data:
        event = data["event"]
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
    if "url" in data:
        try:
            app.recipients.validate(data["url"], app.validators)
        except (InvalidURL, RecipientRefused) as exc:
            errors["url"] = [str(exc)]
    if "content_type" in data and data["content_type"] not in app.codecs:
        errors["content_type"] = [
            f"{data['content_type']!r} is not supported; choose one of "
            f"{', '.join(sorted(app.codecs))}"
        ]
    if "hmac_secret" in data:
        problem = secret_problem(data["hmac_secret"])
        if problem:
            errors["hmac_secret"] = [problem]
    if "hmac_digest" in data:
        problem = digest_problem(data["hmac_digest"])
        if problem:
            errors["hmac_digest"] = [problem]
    return errors


def ensure_subscription(app: Thorn, data: Mapping[str, Any]) -> None:
    """Like :func:`check_subscription`, but raise when any field is invalid.

    Raises:
        SubscriptionInvalid: with the messages by field in ``errors``.
    """
    errors = check_subscription(app, data)
    if errors:
        raise SubscriptionInvalid(errors)
