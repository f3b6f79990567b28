"""Receiving webhooks in Django: ``@verify_webhook(secret=...)`` checks signatures first."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse

from thorn_core.exceptions import InvalidSignature
from thorn_core.verification import SecretSpec, secrets_for, verify_request

__all__ = ["verify_webhook"]

_View = TypeVar("_View", bound=Callable[..., HttpResponse])


def verify_webhook(
    secret: SecretSpec,
    *,
    tolerance: float = 300.0,
    digest_method: str = "sha256",
    require_timestamp: bool = True,
) -> Callable[[_View], _View]:
    """Decorate a view that receives Thorn webhooks: it runs only for verified requests.

    The view is called with the :class:`~thorn_core.verification.VerifiedWebhook` as the
    keyword argument ``webhook`` (``webhook.payload`` is the parsed body). A missing or bad
    signature, or a timestamp more than ``tolerance`` seconds off, answers ``401`` with a
    short reason and the view is not called. The view is exempt from CSRF protection (the
    signature replaces it).

    Args:
        secret: the subscription's secret, a list of them (while rotating), or a callable
            ``(request) -> secret or list`` (to look it up, e.g. by ``Hook-Subscription``).
        tolerance: seconds a ``webhook-timestamp`` may be off.
        digest_method: the digest of ``Hook-HMAC``.
        require_timestamp: with False, a request signed with ``Hook-HMAC`` alone is accepted.
    """

    def decorate(view: _View) -> _View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                webhook = verify_request(
                    request.headers,
                    request.body,
                    secrets_for(secret, request),
                    tolerance=tolerance,
                    digest_method=digest_method,
                    require_timestamp=require_timestamp,
                )
            except InvalidSignature as exc:
                return HttpResponse(
                    f"Invalid webhook signature: {exc}\n",
                    status=401,
                    content_type="text/plain; charset=utf-8",
                )
            return view(request, *args, webhook=webhook, **kwargs)

        wrapper.csrf_exempt = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
