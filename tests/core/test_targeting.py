"""Subscriptions against the catalog: payload filters and version pins in a real fan-out."""

from __future__ import annotations

from thorn_core import Event, Subscriber
from thorn_core.fanout import resolve_subscribers
from thorn_core.message import EventMessage

from .conftest import WAIT

LARGE = {"amount": {"$gte": 100}}


def message(event: str, data: object, *subscribers: Subscriber) -> EventMessage:
    """A message as ``send()`` builds it, carrying ``subscribers``."""
    return EventMessage(
        event=event,
        data=data,
        timeout=5.0,
        retry=False,
        retry_max=0,
        retry_delay=0.0,
        subscribers=subscribers,
    )


class TestFilteredDelivery:
    """A subscription with a filter receives only the sends whose payload satisfies it."""

    def test_only_large_orders(self, make_app, make_receiver):
        """{"amount": {"$gte": 100}} receives the large orders; an unfiltered one receives all."""
        large, every = make_receiver(), make_receiver()
        app = make_app(
            {
                "THORN_SUBSCRIBERS": {
                    "order.placed": [
                        {"url": large.url("/large"), "filter": LARGE},
                        every.url("/every"),
                    ]
                }
            }
        )
        placed = Event("order.placed", app=app)

        amounts = [20, 100, 99.5, 250, 7]
        results = [placed.send({"id": n, "amount": amount}) for n, amount in enumerate(amounts)]

        assert all(result.ok for result in results)
        every.wait_for(5, WAIT)
        assert [r.json()["id"] for r in large.wait_for(2, WAIT)] == [1, 3]
        assert [r.json()["id"] for r in every.received] == [0, 1, 2, 3, 4]
        assert {r.path for r in large.received} == {"/large"}

    def test_send_nobody_wants_still_checks_the_payload(self, make_app, receiver):
        """A send that every filter refuses delivers nothing and reports no failure."""
        app = make_app({"THORN_SUBSCRIBERS": {"order.*": {"url": receiver.url(), "filter": LARGE}}})

        result = Event("order.placed", app=app).send({"amount": 1})

        assert result.ok
        assert result.deliveries == []
        assert receiver.received == []

    def test_filter_on_a_nested_path_and_array(self, make_app, receiver):
        """Dotted paths and "array contains" select on the payload's structure."""
        spec = {"customer.country": {"$in": ["NO", "SE"]}, "items.sku": "A-1"}
        app = make_app({"THORN_SUBSCRIBERS": {"*": {"url": receiver.url(), "filter": spec}}})
        send = Event("order.placed", app=app).send

        send({"n": 1, "customer": {"country": "NO"}, "items": [{"sku": "B"}, {"sku": "A-1"}]})
        send({"n": 2, "customer": {"country": "DK"}, "items": [{"sku": "A-1"}]})
        send({"n": 3, "customer": {"country": "SE"}, "items": []})

        assert [r.json()["n"] for r in receiver.wait_for(1, WAIT)] == [1]

    def test_subscribers_given_to_the_send_are_filtered_too(self, app):
        """A subscriber passed to ``send()`` goes through its filter like a stored one."""
        small = Subscriber(url="https://example.com/small", filter={"amount": {"$lt": 100}})
        large = Subscriber(url="https://example.com/large", filter=LARGE)

        found = resolve_subscribers(app, message("order.placed", {"amount": 5}, small, large))

        assert found == [small]


class TestVersionPins:
    """A pinned subscription receives only sends of that version."""

    def test_unpinned_subscription_receives_every_send(self, app):
        """Without a pin, the version of the send does not matter."""
        plain = Subscriber(url="https://example.com/hook")

        assert resolve_subscribers(app, message("order.placed", {}, plain)) == [plain]

    def test_pin_without_a_declared_type_receives_nothing(self, app):
        """A send of an event the catalog does not declare has no version to match a pin."""
        pinned = Subscriber(url="https://example.com/hook", version="2")

        assert resolve_subscribers(app, message("order.placed", {}, pinned)) == []


class TestVersionOfASend:
    """The version a send is of: the event's ``version=``, else the newest declared."""

    def test_event_with_a_version_reaches_its_pins(self, make_app, make_receiver):
        """An Event declared with version 1 reaches the pin on 1, not the one on 2."""
        app = make_app()
        app.event_type("invoice.paid", schema={"type": "object"}, version="1")
        app.event_type("invoice.paid", schema={"type": "object"}, version="2")
        on_1, on_2, unpinned = make_receiver(), make_receiver(), make_receiver()
        pinned = [
            Subscriber(url=on_1.url(), event="invoice.paid", version="1"),
            Subscriber(url=on_2.url(), event="invoice.paid", version="2"),
            Subscriber(url=unpinned.url(), event="invoice.paid"),
        ]

        assert Event("invoice.paid", app=app, version="1", subscribers=pinned).send({}).ok
        assert Event("invoice.paid", app=app, subscribers=pinned).send({"n": 2}).ok

        assert [r.json() for r in on_1.wait_for(1, WAIT)] == [{}]
        assert [r.json() for r in on_2.wait_for(1, WAIT)] == [{"n": 2}]
        assert len(unpinned.wait_for(2, WAIT)) == 2

    def test_the_version_travels_with_the_message(self):
        """A queued message keeps the version of its send; an older one reads as None."""
        sent = message("invoice.paid", {})
        sent = EventMessage.from_dict({**sent.to_dict(), "version": "1"})
        assert sent.version == "1"
        assert EventMessage.from_dict(sent.to_dict()).version == "1"
        older = sent.to_dict()
        del older["version"]
        assert EventMessage.from_dict(older).version is None
