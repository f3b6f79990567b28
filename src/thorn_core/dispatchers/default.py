"""The ``default`` dispatcher: delivers in the calling process, fanning out on a thread pool."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..delivery import Delivery, DeliveryRequest
from ..fanout import Plan, plan_deliveries
from ..transport import RequestsTransport, Transport

if TYPE_CHECKING:
    from ..app import Thorn
    from ..message import EventMessage
    from ..results import SendResult

__all__ = ["DefaultDispatcher"]


class DefaultDispatcher:
    """Delivers each event to its subscribers before ``send()`` returns.

    One delivery runs in the calling thread; a fan-out runs concurrently on a bounded pool
    of ``THORN_POOL_SIZE`` threads, each with its own ``requests.Session``. Failed deliveries
    are recorded on the result, not retried later: delayed retries need a queue (Celery).
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
        return self.app.deliver(request, self.transport, message)

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
            futures = [pool.submit(self._deliver, r, result.message) for result, r in jobs]
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
