"""Receiving webhooks in Flask: the ``verify_webhook`` view decorator."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import flask

from thorn_core.exceptions import InvalidSignature
from thorn_core.verification import SecretSpec, secrets_for, verify_request

__all__ = ["verify_webhook"]

_ViewT = TypeVar("_ViewT", bound=Callable[..., Any])

#: The body of the 401 answer to a webhook that fails verification.
REFUSED = "Invalid webhook signature."


def verify_webhook(
    secret: SecretSpec,
    *,
    tolerance: float = 300.0,
    digest_method: str = "sha256",
    require_timestamp: bool = True,
) -> Callable[[_ViewT], _ViewT]:
    """Verify a received webhook before the view runs; answer 401 when it does not verify.

    The view gets the :class:`~thorn_core.verification.VerifiedWebhook` as keyword argument
    ``webhook``. ``secret`` is a secret, a list of them (while rotating), or a callable
    ``(request) -> secret(s)``. The other options are those of
    :func:`~thorn_core.verification.verify_request`.
    """

    def decorate(view: _ViewT) -> _ViewT:
        @functools.wraps(view)
        def verified(*args: Any, **kwargs: Any) -> Any:
            request = flask.request
            try:
                webhook = verify_request(
                    dict(request.headers),
                    request.get_data(cache=True),
                    secrets_for(secret, request),
                    tolerance=tolerance,
                    digest_method=digest_method,
                    require_timestamp=require_timestamp,
                )
            except InvalidSignature:
                return flask.Response(REFUSED, status=401, mimetype="text/plain")
            return view(*args, webhook=webhook, **kwargs)

        return verified  # type: ignore[return-value]

    return decorate
