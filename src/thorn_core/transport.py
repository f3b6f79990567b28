"""The HTTP seam: a ``Transport`` posts one request; ``RequestsTransport`` does it with requests."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import attrs

from .exceptions import DeliveryConnectionError, DeliveryTimeout

if TYPE_CHECKING:
    import requests

__all__ = ["RequestsTransport", "Transport", "TransportResponse"]


@attrs.frozen
class TransportResponse:
    """What a receiver answered: status, headers, and at most the capped start of the body."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    """Posts one delivery. Implementations translate their errors into Thorn's.

    Raises:
        DeliveryTimeout: the attempt ran past ``timeout``.
        DeliveryConnectionError: no connection, or it broke before an answer.
    """

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, max_body: int
    ) -> TransportResponse:
        """POST ``body`` to ``url`` and return the answer, reading at most ``max_body`` bytes."""
        ...

    def close(self) -> None:
        """Release every connection this transport holds."""
        ...


@attrs.define
class RequestsTransport:
    """A transport over ``requests``: one ``Session`` per thread, closed by :meth:`close`.

    TLS is always verified (against ``ca_bundle`` when given); redirects are not followed.
    """

    ca_bundle: str | None = None
    _local: threading.local = attrs.field(factory=threading.local, init=False)
    _sessions: list[requests.Session] = attrs.field(factory=list, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = requests.Session()
            session.verify = self.ca_bundle or True
            session.trust_env = False
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, max_body: int
    ) -> TransportResponse:
        """POST with requests, streaming so that no more than ``max_body`` bytes are read."""
        import requests

        try:
            response = self._session().post(
                url,
                data=body,
                headers=dict(headers),
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout as exc:
            raise DeliveryTimeout(f"no answer from {url} within {timeout:g}s") from exc
        except requests.ConnectionError as exc:
            raise DeliveryConnectionError(f"cannot reach {url}: {_reason(exc)}") from exc
        try:
            raw = response.raw
            content = raw.read(max_body, decode_content=False) if max_body else b""
            if raw.isclosed() or not raw.read(1, decode_content=False):
                raw.release_conn()
            else:
                response.close()
        except requests.Timeout as exc:
            response.close()
            raise DeliveryTimeout(f"{url} did not finish its answer within {timeout:g}s") from exc
        except (OSError, ValueError, requests.RequestException) as exc:
            response.close()
            # The status line arrived; a broken body does not change the verdict.
            content = b""
            del exc
        return TransportResponse(response.status_code, response.headers, content)

    def close(self) -> None:
        """Close every session this transport opened, from any thread."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, which names what went wrong."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return str(exc) or type(exc).__name__
