"""The request path of the celery dispatcher: start-up checks and what ``send()`` publishes."""

from __future__ import annotations

import datetime
import decimal
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from amqp.exceptions import ChannelError
from celery import Celery
from kombu import Queue

from thorn_core import (
    Event,
    EventMessage,
    ImproperlyConfigured,
    SendResult,
    SerializationError,
    Subscriber,
    Thorn,
    buffer_events,
)
from thorn_core.dispatchers import resolve
from thorn_core.dispatchers.celery import DISPATCH_TASK, CeleryDispatcher
from thorn_core.receiver import WebhookReceiver
from thorn_core.validators import allow_cidr_network, block_internal_ips

from ._celery_support import RecordingSource


def queued(capp: Celery, queue: str) -> int:
    """How many messages wait in ``queue`` (none when nothing ever declared it)."""
    with capp.connection_for_write() as connection:
        try:
            declared = connection.default_channel.queue_declare(queue, passive=True)
        except ChannelError as exc:
            if "NOT_FOUND" not in str(exc):
                raise
            return 0
        return int(declared.message_count)


def take(capp: Celery, queue: str) -> Any:
    """Take the next message off ``queue`` (acknowledged, so the worker never sees it)."""
    with capp.connection_for_write() as connection:
        message = Queue(queue, routing_key=queue).bind(connection.default_channel).get(no_ack=True)
    assert message is not None
    return message


class TestStartUp:
    """Choosing ``celery`` fails at ``Thorn(...)`` when it cannot work, never at the first event."""

    def test_resolved_through_the_entry_point(self) -> None:
        """THORN_DISPATCHER='celery' names the entry point of CeleryDispatcher."""
        assert resolve("celery") is CeleryDispatcher

    def test_no_broker_configured(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A Celery app without a broker URL of its own is refused at start-up."""
        for name in ("CELERY_BROKER_URL", "CELERY_BROKER_WRITE_URL"):
            monkeypatch.delenv(name, raising=False)
        capp = Celery("no-broker", set_as_current=False)
        with pytest.raises(ImproperlyConfigured, match="no broker configured"):
            Thorn({"THORN_DISPATCHER": "celery", "THORN_CELERY_APP": capp}, set_as_current=False)

    def test_broker_from_the_environment_counts(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """CELERY_BROKER_URL configures the broker as Celery itself reads it."""
        monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
        capp = Celery("env-broker", set_as_current=False)
        app = Thorn({"THORN_DISPATCHER": "celery", "THORN_CELERY_APP": capp}, set_as_current=False)
        assert isinstance(app.dispatcher, CeleryDispatcher)

    def test_celery_app_by_path(self) -> None:
        """THORN_CELERY_APP may be a 'module:attribute' path to an app."""
        with pytest.raises(ImproperlyConfigured, match="cannot be loaded"):
            Thorn(
                {"THORN_DISPATCHER": "celery", "THORN_CELERY_APP": "no_such_module:app"},
                set_as_current=False,
            )
        with pytest.raises(ImproperlyConfigured, match="must be a Celery app"):
            Thorn(
                {"THORN_DISPATCHER": "celery", "THORN_CELERY_APP": "json:dumps"},
                set_as_current=False,
            )

    def test_celery_not_installed(self) -> None:
        """Without celery, choosing the dispatcher says how to install it, at start-up."""
        code = (
            "import sys; sys.modules['celery'] = None\n"
            "from thorn_core import Thorn, ImproperlyConfigured\n"
            "try:\n"
            "    Thorn({'THORN_DISPATCHER': 'celery'})\n"
            "except ImproperlyConfigured as exc:\n"
            "    print(exc)\n"
        )
        out = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert "thorn-webhooks[celery]" in out


class TestMessage:
    """EventMessage travels as plain JSON data."""

    def test_round_trip(self) -> None:
        """to_dict is JSON; from_dict gives the same message with JSON-typed values."""
        subscriber = Subscriber(url="http://127.0.0.1:9/hook", event="a.*", user=uuid.uuid4())
        when = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
        message = EventMessage(
            event="a.b",
            data={"when": when, "price": decimal.Decimal("9.99"), "n": 1},
            sender=7,
            headers={"X-Tenant": "t1"},
            timeout=2.5,
            context={"tenant": "t1"},
            retry=True,
            retry_max=3,
            retry_delay=0.5,
            recipient_validators=(block_internal_ips(), allow_cidr_network("127.0.0.0/8")),
            subscribers=(subscriber,),
        )
        wire = json.loads(json.dumps(message.to_dict()))
        back = EventMessage.from_dict(wire)
        assert back.data == {"when": when.isoformat(), "price": "9.99", "n": 1}
        assert back.recipient_validators == message.recipient_validators
        assert back.subscribers[0].url == subscriber.url
        assert back.subscribers[0].hmac_secret == subscriber.hmac_secret
        assert (back.id, back.event, back.sender, back.timeout) == ("" + message.id, "a.b", 7, 2.5)
        assert (back.retry, back.retry_max, back.retry_delay) == (True, 3, 0.5)
        assert back.headers == {"X-Tenant": "t1"}
        assert back.context == {"tenant": "t1"}

    def test_unknown_version(self) -> None:
        """A message of another format version is refused with a clear error."""
        with pytest.raises(ValueError, match="version"):
            EventMessage.from_dict({"v": 99})


class TestSend:
    """``send()`` publishes one JSON message per event and does nothing else."""

    def test_one_message_per_event_no_lookup_no_http(
        self,
        make_thorn: Callable[..., Thorn],
        celery_app: Celery,
        queue: str,
        broker: str,
        receiver: WebhookReceiver,
    ) -> None:
        """Three sends are three messages; no subscriber source is asked, no request is made."""
        if broker == "memory://":
            pytest.skip("queue inspection needs a real broker")
        app = make_thorn({"THORN_SUBSCRIBERS": {"a.*": receiver.url()}})
        source = RecordingSource([Subscriber(url=receiver.url("/stored"), event="a.*")])
        app.add_subscriber_source(source)
        results = [Event("a.b").send({"n": n}) for n in range(3)]
        assert [r.state for r in results] == ["queued"] * 3
        assert queued(celery_app, queue) == 3
        assert source.lookups == []
        assert receiver.received == []

    def test_buffer_publishes_chunks(
        self, make_thorn: Callable[..., Thorn], celery_app: Celery, queue: str, broker: str
    ) -> None:
        """25 buffered events with THORN_CHUNKSIZE=10 are three messages (10, 10, 5)."""
        if broker == "memory://":
            pytest.skip("queue inspection needs a real broker")
        make_thorn({"THORN_CHUNKSIZE": 10})
        with buffer_events():
            for n in range(25):
                Event("a.b").send({"n": n})
        assert queued(celery_app, queue) == 3
        sizes = [len(take(celery_app, queue).decode()[0][0]) for _ in range(3)]
        assert sorted(sizes) == [5, 10, 10]

    def test_message_is_json(
        self, make_thorn: Callable[..., Thorn], celery_app: Celery, queue: str, broker: str
    ) -> None:
        """The message is JSON (never pickle) and carries event, payload, sender, options."""
        if broker == "memory://":
            pytest.skip("queue inspection needs a real broker")
        make_thorn({"THORN_RETRY_MAX": 4, "THORN_RETRY_DELAY": 1.5})
        event = Event("a.b", headers={"X-Source": "tests"}, timeout=1.25)
        event.send(
            {"at": datetime.date(2024, 1, 2)}, sender=42, context={"k": "v"}, headers={"X-N": "1"}
        )
        message = take(celery_app, queue)
        assert message.content_type == "application/json"
        assert message.headers["task"] == DISPATCH_TASK
        args, _kwargs, _ = json.loads(message.body)
        (carried,) = args[0]
        assert carried["event"] == "a.b"
        assert carried["data"] == {"at": "2024-01-02"}
        assert carried["sender"] == 42
        assert carried["context"] == {"k": "v"}
        assert carried["headers"] == {"X-Source": "tests", "X-N": "1"}
        assert (carried["timeout"], carried["retry_max"], carried["retry_delay"]) == (1.25, 4, 1.5)
        assert carried["retry"] is True

    def test_bad_payload_raises_and_publishes_nothing(
        self, make_thorn: Callable[..., Thorn], celery_app: Celery, queue: str, broker: str
    ) -> None:
        """An unserializable payload raises at send(); in a batch, no event of it is published."""
        if broker == "memory://":
            pytest.skip("queue inspection needs a real broker")
        app = make_thorn()
        with pytest.raises(SerializationError):
            Event("a.b").send({"bad": object()})
        good = SendResult(Event("a.b").prepare({"ok": 1}))
        bad = SendResult(Event("a.b").prepare({"bad": {1, 2}}))
        with pytest.raises(SerializationError):
            app.dispatch([good, bad])
        assert queued(celery_app, queue) == 0
