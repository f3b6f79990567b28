"""Extra headers of model events: the event's, the model callback's and the send's are merged
without regard to case, the most specific winning, and bad callback headers are named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from thorn_core import ModelEvent, Thorn, webhook_model
from thorn_core.receiver import WebhookReceiver

WAIT = 5.0


class Order:
    """A plain "model" whose webhook headers a test chooses."""

    extra: Any = None

    def __init__(self, id: int = 7) -> None:
        self.id = id

    def webhook_payload(self) -> dict[str, Any]:
        return {"id": self.id}

    def webhook_headers(self) -> Any:
        return self.extra


@pytest.fixture
def shop(make_app: Callable[..., Thorn], receiver: WebhookReceiver) -> Thorn:
    """An app delivering every event to ``receiver``."""
    return make_app({"THORN_SUBSCRIBERS": {"*": receiver.url()}})


def order_event(app: Thorn, **options: Any) -> ModelEvent:
    """A model event of ``Order`` sent with ``app``."""
    return ModelEvent("order.paid", app=app, **options).dispatches_on_change()


class TestHeaderMerge:
    """One header name is one header, whatever its case: the more specific source wins."""

    def test_callback_overrides_event_headers_without_case(
        self, shop: Thorn, receiver: WebhookReceiver
    ) -> None:
        """The model's ``x-tenant`` replaces the event's ``X-Tenant``: one header on the wire."""
        event = order_event(shop, headers={"X-Tenant": "from-event", "X-Source": "shop"})
        order = Order()
        order.extra = {"x-tenant": "from-model"}
        message = event.prepare_from_instance(order)
        assert dict(message.headers) == {"X-Source": "shop", "x-tenant": "from-model"}
        event.send_from_instance(order)
        (got,) = receiver.wait_for(1, WAIT)
        assert got.headers["x-tenant"] == "from-model"
        assert got.headers["x-source"] == "shop"

    def test_send_headers_override_the_callback_without_case(
        self, shop: Thorn, receiver: WebhookReceiver
    ) -> None:
        """Headers given to the send replace the callback's of the same name in any case."""
        event = order_event(shop)
        order = Order()
        order.extra = {"x-tenant": "from-model", "X-Trace": "t1"}
        message = event.prepare_from_instance(order, headers={"X-TENANT": "from-send"})
        assert dict(message.headers) == {"X-Trace": "t1", "X-TENANT": "from-send"}
        event.send_from_instance(order, headers={"X-TENANT": "from-send"})
        (got,) = receiver.wait_for(1, WAIT)
        assert got.headers["x-tenant"] == "from-send"

    def test_inner_class_headers_follow_the_same_rule(
        self, shop: Thorn, receiver: WebhookReceiver
    ) -> None:
        """A ``webhooks.headers()`` method merges like ``webhook_headers()``."""

        @webhook_model
        class Invoice:
            id = 3

            class webhooks:
                on_change = ModelEvent(
                    "invoice.changed", app=shop, headers={"X-Kind": "event"}
                ).dispatches_on_change()

                def headers(self, instance: Any) -> dict[str, str]:
                    return {"x-kind": "invoice"}

        try:
            message = Invoice.webhooks["on_change"].prepare_from_instance(Invoice())  # type: ignore[attr-defined]
            assert dict(message.headers) == {"x-kind": "invoice"}
        finally:
            Invoice.webhooks["on_change"].disconnect_model(Invoice)  # type: ignore[attr-defined]


class TestBadCallbackHeaders:
    """Headers from a model callback are checked at the send, naming the model."""

    @pytest.mark.parametrize(
        ("extra", "error", "text"),
        [
            ({"Content-Type": "text/plain"}, ValueError, "'Content-Type' is set by Thorn"),
            ({"X-Bad Name": "v"}, ValueError, "'X-Bad Name' is not a valid header name"),
            ({"X-Split": "a\r\nInjected: 1"}, ValueError, "contains a line break"),
            (["X-Tenant", "t"], TypeError, "must be a mapping of strings"),
        ],
    )
    def test_refused_with_the_model_named(
        self, shop: Thorn, extra: Any, error: type[Exception], text: str
    ) -> None:
        """A reserved, malformed or non-mapping callback header raises; nothing is sent."""
        order = Order()
        order.extra = extra
        with pytest.raises(error, match="the webhook headers of Order") as caught:
            order_event(shop).send_from_instance(order)
        assert text in str(caught.value)
