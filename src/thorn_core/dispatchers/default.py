"""The ``default`` dispatcher: delivers in the calling process, fanning out on a thread pool."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import TYPE_CHECKING

from ..delivery import Delivery, DeliveryRequest
from ..fanout import Plan, plan_deliveries
from ..health import Admission, admit_request, deferred_delivery, endpoint_key, record_outcome
from ..telemetry import get_logger
from ..transport import RequestsTransport, Transport

if TYPE_CHECKING:
    from ..app import Thorn
    from ..message import EventMessage
    from ..results import SendResult

__all__ = ["RATE_WAIT_MAX", "DefaultDispatcher"]

logger = get_logger(__name__)

#: Seconds a delivery over its endpoint's rate limit waits for its token at most; one that
#: would wait longer is deferred (it fails fast, with the time it could be sent).
RATE_WAIT_MAX = 1.0
#: Seconds between two looks for a free in-flight slot.
_SLOT_POLL = 0.01


class DefaultDispatcher:
    """Delivers each event to its subscribers before ``send()`` returns.

    One delivery runs in the calling thread; a fan-out runs concurrently on a bounded pool
    of ``THORN_POOL_SIZE`` threads, each with its own ``requests.Session``. Failed deliveries
    are recorded on the result, not retried later: delayed retries need a queue (Celery).

    Each attempt is admitted by ``app.health`` first. An open circuit fails the delivery
    fast, without an HTTP attempt, as ``"deferred: circuit open"``; one over its rate limit
    waits for its token when that takes at most :data:`RATE_WAIT_MAX`, else is deferred; one
    over its endpoint's in-flight cap waits for a slot up to its timeout.
    """

    def __init__(self, app: Thorn, *, transport: Transport | None = None) -> None:
        self.app = app
        self.transport: Transport = transport or RequestsTransport(ca_bundle=app.settings.ca_bundle)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.app.settings.pool_size, thread_name_prefix="thorn-delivery"
                )
            return self._executor

    def _deliver(self, request: DeliveryRequest, message: EventMessage) -> Delivery:
        app = self.app
        admission = self._admit(request)
        if not admission.allowed:
            return deferred_delivery(request, admission.reason or "", admission.retry_at)
        try:
            delivery = app.deliver(request, self.transport, message)
        finally:
            app.health.release(endpoint_key(request.subscriber))
        try:
            record_outcome(app, delivery)
        except Exception:
            logger.exception("Recording the health of delivery %s failed", delivery.id)
        return delivery

    def _admit(self, request: DeliveryRequest) -> Admission:
        """The admission of ``request``, after waiting briefly for a token or a slot."""
        started = time.monotonic()
        while True:
            admission = admit_request(self.app, request.subscriber)
            if admission.allowed or admission.reason == "circuit_open":
                return admission
            waited = time.monotonic() - started
            if admission.reason == "rate_limited":
                wait = (admission.retry_at or 0.0) - time.time()
                if waited + wait > RATE_WAIT_MAX:
                    return admission
            else:  # max_in_flight: a slot frees when a delivery ends, within its timeout
                wait = _SLOT_POLL
                if waited + wait > request.timeout:
                    return admission
            time.sleep(max(0.0, wait))

    def prepare(self, result: SendResult) -> None:
        """Plan the deliveries at ``send()`` time: resolve, encode once, sign.

        Raises:
            SerializationError: the payload cannot be encoded for a subscriber's content type.
        """
        result.prepared = plan_deliveries(self.app, result.message)

    def dispatch(self, results: Sequence[SendResult]) -> None:
        """Deliver every planned result; one not planned by :meth:`prepare` is planned first."""
        app = self.app
        # Every result is planned before anything is recorded: a plan that raises (a store
        # that is down) leaves nothing half-recorded for the caller to dispatch again.
        for result in results:
            plan = result.prepared
            if not isinstance(plan, Plan):
                result.prepared = plan_deliveries(app, result.message)
            elif plan.requests:
                result.prepared = plan.fresh(app, result.message)
        jobs: list[tuple[SendResult, DeliveryRequest]] = []
        for result in results:
            plan = result.prepared
            for failed in plan.failed:
                result.record(app, failed)
            for request in plan.requests:
                jobs.append((result, request))
        if len(jobs) == 1:
            result, request = jobs[0]
            result.record(app, self._deliver(request, result.message))
        elif jobs:
            pool = self._pool()
            # Each job runs in a copy of this context: its spans are children of the send's.
            futures = [
                pool.submit(copy_context().run, self._deliver, r, result.message)
                for result, r in jobs
            ]
            for (result, _), future in zip(jobs, futures, strict=True):
                result.record(app, future.result())
        for result in results:
            result.state = "delivered"

    def close(self) -> None:
        """Stop the pool's threads and close every session."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self.transport.close()
