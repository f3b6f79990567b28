"""Views of the test app: an article page and webhook receivers behind ``verify_webhook``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from thorn_core.verification import VerifiedWebhook
from thorn_django import verify_webhook

SECRET = "whsec_" + "dGhvcm4tdGVzdC1zZWNyZXQtMzItYnl0ZXMtbG9uZyE="
OLD_SECRET = "old-secret-being-rotated-out"
#: An ed25519 key pair: the sender signs with the ``whsk_`` key, the receiver holds only the
#: ``whpk_`` key (its 32-byte seed is 0x02 repeated).
SIGNING_KEY = "whsk_AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
PUBLIC_KEY = "whpk_gTl3Dqh9F19Wo1Rmw0x+zMuNipG07jeiXfYPW4/Js5Q="


def article_detail(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """A page the model events link to."""
    return HttpResponse("article")


@verify_webhook(secret=SECRET)
def receive(request: HttpRequest, webhook: VerifiedWebhook) -> JsonResponse:
    """Echo what the verified webhook said."""
    return JsonResponse({"event": webhook.event, "payload": webhook.payload})


@verify_webhook(secret=lambda request: [SECRET, OLD_SECRET])
def receive_rotating(request: HttpRequest, webhook: VerifiedWebhook) -> JsonResponse:
    """Accept either secret while rotating."""
    return JsonResponse({"event": webhook.event})


@verify_webhook(secret=PUBLIC_KEY)
def receive_ed25519(request: HttpRequest, webhook: VerifiedWebhook) -> JsonResponse:
    """A receiver that verifies ``v1a`` signatures with a public key alone."""
    return JsonResponse({"event": webhook.event, "payload": webhook.payload})


def _no_such_subscription(request: HttpRequest) -> str:
    raise KeyError(request.headers.get("Hook-Subscription"))


@verify_webhook(secret=_no_such_subscription)
def receive_unknown(request: HttpRequest, webhook: VerifiedWebhook) -> JsonResponse:
    """A receiver whose secret lookup knows no sender."""
    return JsonResponse({"event": webhook.event})
