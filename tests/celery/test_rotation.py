"""Secret rotation while deliveries are queued: a real worker signs each attempt with the
subscriber's secrets live when the attempt is sent (events resolved after the rotation, and
retries planned before it)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from thorn_core import Event, Subscriber, Thorn
from thorn_core.receiver import ReceivedWebhook, Reply, WebhookReceiver
from thorn_core.rotation import rotate_secret
from thorn_core.secretset import SecretSet

from ._celery_support import WAIT


class SecretKeepingSource:
    """A stored-subscriber source holding one subscription and persisting its rotations
    (the :class:`~thorn_core.rotation.SecretStore` side an ORM adapter implements)."""

    def __init__(self, subscriber: Subscriber) -> None:
        self.subscriber = subscriber
        self._lock = threading.Lock()

    def matching(
        self, event: str, sender: Any = None, context: Mapping[str, Any] | None = None
    ) -> list[Subscriber]:
        """The one subscription, as stored now."""
        with self._lock:
            return [self.subscriber]

    def get(self, uuid: str) -> Subscriber | None:
        """The subscription by uuid, as stored now."""
        with self._lock:
            return self.subscriber if str(self.subscriber.uuid) == uuid else None

    def save_secrets(self, subscriber: Subscriber, secrets: SecretSet) -> None:
        """Keep the rotated secrets."""
        with self._lock:
            self.subscriber = subscriber

    def rotate(self, grace: dt.timedelta) -> Subscriber:
        """Rotate the stored subscription's secret through the core."""
        return rotate_secret(self.subscriber, grace, store=self)


def verifies(secret: str, request: ReceivedWebhook) -> bool:
    """Whether the Standard Webhooks reference library accepts ``request`` with ``secret``."""
    try:
        Webhook(secret).verify(request.body, dict(request.headers))
    except WebhookVerificationError:
        return False
    return True


class TestRotationWhileQueued:
    """Events queued before a rotation are signed with the secrets of their send time."""

    def test_events_queued_before_a_rotation_carry_both_signatures(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        receiver: WebhookReceiver,
    ) -> None:
        """Sent with no worker running, resolved after the rotation: both secrets verify."""
        app = make_thorn()
        source = SecretKeepingSource(Subscriber(url=receiver.url(), event="invoice.*"))
        app.add_subscriber_source(source)
        old = source.subscriber.hmac_secret
        for n in range(3):
            assert Event("invoice.paid").send({"n": n}).state == "queued"

        new = source.rotate(dt.timedelta(hours=1)).hmac_secret
        with run_worker():
            got = receiver.wait_for(3, WAIT)

        for request in got:
            assert len(request.headers["webhook-signature"].split(" ")) == 2
            assert verifies(old, request)
            assert verifies(new, request)
            assert request.hook_hmac_valid(new)

    def test_a_retry_signs_with_the_secrets_live_at_its_attempt(
        self,
        make_thorn: Callable[..., Thorn],
        run_worker: Callable[..., Any],
        make_receiver: Callable[..., WebhookReceiver],
    ) -> None:
        """Attempt 1 fails, the secret rotates (no grace), attempt 2 is signed with the new
        secret only, though the retry was queued with the old one."""
        app = make_thorn({"THORN_RETRY_DELAY": 0.2, "THORN_RETRY_MAX": 3})
        rotated: list[Subscriber] = []

        def rotate_then_fail(_: ReceivedWebhook) -> Reply:
            if not rotated:
                rotated.append(source.rotate(dt.timedelta(0)))
                return 503, b"rotating"
            return 200, b"ok"

        receiver = make_receiver(rotate_then_fail)
        source = SecretKeepingSource(Subscriber(url=receiver.url(), event="invoice.*"))
        app.add_subscriber_source(source)
        old = source.subscriber.hmac_secret
        Event("invoice.paid").send({"n": 1})

        with run_worker():
            first, second = receiver.wait_for(2, WAIT)

        new = rotated[0].hmac_secret
        assert first.delivery_id == second.delivery_id
        assert verifies(old, first)
        assert not verifies(new, first)
        assert verifies(new, second)
        assert not verifies(old, second)
        assert second.hook_hmac_valid(new)
