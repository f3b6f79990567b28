"""The HTTP seam: a ``Transport`` posts one request; ``RequestsTransport`` does it with requests.

``RequestsTransport`` enforces what a hostile receiver must not escape: the connection goes
to the address the validators approved (no second DNS lookup), the whole attempt has a
deadline (a watchdog shuts the socket down when it passes), and at most a capped part of
the body is read.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import heapq
import itertools
import socket
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

import attrs

from .exceptions import DeliveryConnectionError, DeliveryTimeout
from .validators import DEFAULT_PORTS, IPAddress, display_url

if TYPE_CHECKING:
    import requests

__all__ = ["DeadlineWatchdog", "RequestsTransport", "Transport", "TransportResponse"]


@attrs.frozen
class TransportResponse:
    """What a receiver answered: status, headers, and at most the capped start of the body."""

    status_code: int
    headers: Mapping[str, str]
    body: bytes


class Transport(Protocol):
    """Posts one delivery attempt. Implementations translate their errors into Thorn's.

    ``addresses`` are the validated addresses of the URL's host; when given, the transport
    must connect to one of them and to nothing else.

    Raises:
        DeliveryTimeout: the attempt ran past ``timeout`` (connect, send and read together).
        DeliveryConnectionError: no connection, or it broke before an answer.
    """

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,
        max_body: int,
        addresses: Sequence[IPAddress] = (),
    ) -> TransportResponse:
        """POST ``body`` to ``url`` and return the answer, reading at most ``max_body`` bytes."""
        ...

    def close(self) -> None:
        """Release every connection this transport holds."""
        ...


class _Attempt:
    """One attempt in flight: its deadline, its sockets, and what the watchdog did to it."""

    __slots__ = ("addresses", "deadline", "done", "expired", "new_connection", "sockets")

    def __init__(self, deadline: float, addresses: Sequence[IPAddress]) -> None:
        self.deadline = deadline
        self.addresses = addresses
        self.sockets: list[socket.socket] = []
        self.expired = False
        self.done = False
        self.new_connection = False

    def watch(self, sock: socket.socket) -> None:
        self.sockets.append(sock)
        if self.expired:
            _shutdown(sock)

    def expire(self) -> None:
        self.expired = True
        for sock in self.sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_local = threading.local()


class _SessionHolder:
    """Holds a thread's session; when the thread ends it is collected and the session closed."""

    __slots__ = ("__weakref__", "session")

    def __init__(self, session: requests.Session) -> None:
        self.session = session


def _current_attempt() -> _Attempt | None:
    attempt: _Attempt | None = getattr(_local, "attempt", None)
    return attempt


class DeadlineWatchdog:
    """One thread that shuts down the sockets of attempts that outlive their deadline.

    A socket timeout bounds each read; a receiver that trickles a byte at a time defeats it.
    Shutting the socket down wakes the blocked read at once, whatever it was waiting for.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Attempt]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        #: Each thread runs while the generation it was started in is current.
        self._generation = 0

    def add(self, attempt: _Attempt) -> None:
        """Watch ``attempt`` until it is marked done."""
        with self._condition:
            heapq.heappush(self._heap, (attempt.deadline, next(self._counter), attempt))
            if self._thread is None:
                self._generation += 1
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._generation,),
                    name="thorn-deadline-watchdog",
                    daemon=True,
                )
                self._thread.start()
            elif self._heap[0][2] is attempt:
                self._condition.notify()

    def _run(self, generation: int) -> None:
        with self._condition:
            while self._generation == generation:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._condition.wait(delay)
                    continue
                _, _, attempt = heapq.heappop(self._heap)
                if not attempt.done:
                    attempt.expire()

    def close(self) -> None:
        """Stop the thread; a later ``add`` starts a new one (attempts still pending keep
        their deadlines)."""
        with self._condition:
            self._generation += 1
            thread, self._thread = self._thread, None
            self._condition.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()


def _connection_classes() -> tuple[type, type]:
    """urllib3 connection classes that connect only to the attempt's validated addresses."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.exceptions import NewConnectionError

    class _Pinned:
        sock: socket.socket | None
        _dns_host: str

        def _new_conn(self) -> socket.socket:
            attempt = _current_attempt()
            if attempt is None:
                sock: socket.socket = super()._new_conn()  # type: ignore[misc]
                return sock
            attempt.new_connection = True
            if not attempt.addresses:
                sock = super()._new_conn()  # type: ignore[misc]
                attempt.watch(sock)
                return sock
            name = self._dns_host
            try:
                # Connect to a validated address only for the socket itself: urllib3 reads
                # ``host`` from the same attribute, and Host, SNI and the certificate check must
                # keep the name. Each validated address is tried in turn, as a resolver's
                # answer would be.
                for index, address in enumerate(attempt.addresses):
                    self._dns_host = str(address)
                    try:
                        sock = super()._new_conn()  # type: ignore[misc]
                        break
                    except NewConnectionError:
                        if index == len(attempt.addresses) - 1 or attempt.expired:
                            raise
            finally:
                self._dns_host = name
            attempt.watch(sock)
            return sock

        def request(self, *args: Any, **kwargs: Any) -> None:
            attempt = _current_attempt()
            sock = self.sock
            if attempt is not None and sock is not None and not attempt.new_connection:
                if attempt.addresses and not _peer_in(sock, attempt.addresses):
                    # A pooled connection to an address this attempt did not validate.
                    self.close()  # type: ignore[attr-defined]
                else:
                    attempt.watch(sock)
            super().request(*args, **kwargs)  # type: ignore[misc]

    class PinnedHTTPConnection(_Pinned, HTTPConnection):
        pass

    class PinnedHTTPSConnection(_Pinned, HTTPSConnection):
        pass

    return PinnedHTTPConnection, PinnedHTTPSConnection


def _peer_in(sock: socket.socket, addresses: Sequence[IPAddress]) -> bool:
    try:
        peer = sock.getpeername()[0]
    except OSError:
        return False
    return any(peer == str(address) for address in addresses)


@functools.cache
def _adapter_class() -> Any:
    """The requests adapter class whose pools use the pinned, watched connection classes.

    Built once, on first use (requests and urllib3 are imported only then), not per session."""
    from requests.adapters import HTTPAdapter
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    http_class, https_class = _connection_classes()

    class PinnedHTTPPool(HTTPConnectionPool):
        ConnectionCls = http_class

    class PinnedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = https_class

    class PinnedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {
                "http": PinnedHTTPPool,
                "https": PinnedHTTPSPool,
            }

    return PinnedAdapter


def _adapter(pool_connections: int) -> Any:
    """A requests adapter whose pools use the pinned, watched connection classes."""
    return _adapter_class()(pool_connections=pool_connections, pool_maxsize=1)


@attrs.define
class RequestsTransport:
    """A transport over ``requests``: one ``Session`` per thread, closed by :meth:`close`.

    TLS is always verified (against ``ca_bundle`` when given); redirects are never followed
    here (the caller validates each hop first); proxies from the environment are ignored.
    """

    ca_bundle: str | None = None
    pool_connections: int = 64
    _local: threading.local = attrs.field(factory=threading.local, init=False)
    _sessions: list[requests.Session] = attrs.field(factory=list, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _watchdog: DeadlineWatchdog = attrs.field(factory=DeadlineWatchdog, init=False)

    def _session(self) -> requests.Session:
        holder: _SessionHolder | None = getattr(self._local, "holder", None)
        if holder is None:
            import requests

            session = requests.Session()
            session.verify = self.ca_bundle or True
            session.trust_env = False
            adapter = _adapter(self.pool_connections)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            holder = _SessionHolder(session)
            self._local.holder = holder
            with self._lock:
                self._sessions.append(session)
            # A calling thread that ends (a request thread of a threaded web server) takes
            # its session's connections with it, instead of leaving them open until close().
            weakref.finalize(holder, self._forget, session)
        return holder.session

    def _forget(self, session: requests.Session) -> None:
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)
        session.close()

    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout: float,
        max_body: int,
        addresses: Sequence[IPAddress] = (),
    ) -> TransportResponse:
        """POST once (twice if a pooled connection turns out closed), within ``timeout``."""
        session = self._session()
        deadline = time.monotonic() + timeout
        for retry_stale in (True, False):
            attempt = _Attempt(deadline, addresses)
            _local.attempt = attempt
            self._watchdog.add(attempt)
            try:
                return self._post(session, attempt, url, body, headers, max_body)
            except DeliveryConnectionError:
                stale = not attempt.new_connection and not attempt.expired
                if not (retry_stale and stale):
                    raise
            finally:
                attempt.done = True
                _local.attempt = None
        raise AssertionError("unreachable")  # pragma: no cover

    def _pool(self, session: requests.Session, scheme: str, host: str, port: int) -> Any:
        """The session's urllib3 pool for an origin, verifying TLS against the CA bundle."""
        pool_kwargs = None
        if scheme == "https":
            pool_kwargs = {"cert_reqs": "CERT_REQUIRED", "ca_certs": self._ca_certs()}
        adapter: Any = session.get_adapter(f"{scheme}://")
        return adapter.poolmanager.connection_from_host(host, port, scheme, pool_kwargs=pool_kwargs)

    def _ca_certs(self) -> str:
        if self.ca_bundle:
            return self.ca_bundle
        import certifi

        return str(certifi.where())

    def _post(
        self,
        session: requests.Session,
        attempt: _Attempt,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        max_body: int,
    ) -> TransportResponse:
        from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError
        from urllib3.util import Timeout

        shown = display_url(url)
        remaining = attempt.deadline - time.monotonic()
        if remaining <= 0:
            raise DeliveryTimeout(f"no time left to reach {shown}")
        scheme, host, port, path, auth = _split(url)
        if auth is not None and not any(k.lower() == "authorization" for k in headers):
            # Credentials in the URL become HTTP Basic authentication, as requests does.
            headers = {**headers, "Authorization": auth}
        try:
            # The session's connection pool directly: requests' per-call work (preparing the
            # request, cookies, hooks, redirect handling) is not needed here, since the body
            # and headers are final and the caller validates and follows redirects itself.
            response = self._pool(session, scheme, host, port).urlopen(
                "POST",
                path,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=Timeout(connect=remaining, read=remaining),
                preload_content=False,
                decode_content=False,
            )
        except TimeoutError as exc:
            # urllib3 makes a refused connection a kind of connect timeout; it is not one.
            if isinstance(exc, NewConnectionError) and not attempt.expired:
                raise DeliveryConnectionError(f"cannot reach {shown}: {_reason(exc)}") from exc
            raise DeliveryTimeout(f"no answer from {shown} within the deadline") from exc
        except (HTTPError, OSError) as exc:
            if attempt.expired:
                raise DeliveryTimeout(f"no answer from {shown} within the deadline") from exc
            raise DeliveryConnectionError(f"cannot reach {shown}: {_reason(exc)}") from exc
        try:
            content = response.read(max_body, decode_content=False) if max_body else b""
            if response.isclosed() or not response.read(1, decode_content=False):
                response.release_conn()
            else:
                # More than we will read: drop the connection rather than drain it.
                response.close()
                response.release_conn()
        except Exception as exc:
            response.close()
            response.release_conn()
            if attempt.expired or isinstance(exc, TimeoutError):
                raise DeliveryTimeout(f"{shown} did not finish its answer in time") from exc
            # The status line arrived; a broken body does not change the verdict.
            content = b""
        if attempt.expired and response.length_remaining != 0:
            # A body without a length ends when the watchdog closes the socket: that is a
            # timeout too, not a complete answer (one read to its length is complete).
            response.close()
            raise DeliveryTimeout(f"{shown} did not finish its answer in time")
        return TransportResponse(response.status, response.headers, content)

    def close(self) -> None:
        """Close every session this transport opened, from any thread, and the watchdog."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._watchdog.close()


@functools.lru_cache(maxsize=1024)
def _split(url: str) -> tuple[str, str, int, str, str | None]:
    """Scheme, host, port, request target (path and query) and Basic credentials of a URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or DEFAULT_PORTS.get(scheme, 80)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    auth = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        auth = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    return scheme, parts.hostname or "", port, path, auth


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, which names what went wrong."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return str(exc) or type(exc).__name__
