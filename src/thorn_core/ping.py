"""Test pings: deliver one event to exactly one subscriber now, for admins and CLIs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .events import Event
from .fanout import plan_deliveries
from .log import utcnow
from .transport import RequestsTransport

if TYPE_CHECKING:
    from .app import Thorn
    from .delivery import Delivery
    from .subscribers import Subscriber

__all__ = ["PING_EVENT", "ping"]

#: The event name of test pings; receivers can recognise and acknowledge them.
PING_EVENT = "thorn.ping"


def ping(
    app: Thorn, subscriber: Subscriber, *, event: str = PING_EVENT, data: Any = None
) -> Delivery:
    """Deliver ``event`` (a ping by default) to ``subscriber`` alone, in this process.

    The subscriber's pattern is not consulted and no other subscriber receives it; the
    delivery is signed, validated and limited like any other, whatever the dispatcher. The
    attempt is written to the app's delivery log under its event name (``thorn.ping``) and
    counts in the subscriber's failure streak like any attempt (a successful ping ends a
    streak); no delivery signal is sent and it is never retried.
    """
    if data is None:
        data = {
            "ping": True,
            "subscription": str(subscriber.uuid),
            "sent_at": utcnow(),
        }
    message = Event(event, app=app).prepare(data, app=app)
    plan = plan_deliveries(app, message, [subscriber])
    if plan.failed:
        delivery = plan.failed[0]
    else:
        transport = RequestsTransport(ca_bundle=app.settings.ca_bundle)
        try:
            delivery = app.deliver(plan.requests[0], transport, message)
        finally:
            transport.close()
    app.after_delivery(delivery)
    return delivery
