"""Thorn 1.x forms: digest names in any case, mixed subscriber lists, Event's old options, the
``Model.webhooks[name]`` mapping, and the plan of a 1.x subscriber row for import."""

from __future__ import annotations

import datetime
import ipaddress
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from thorn_core import (
    Event,
    InvalidModelEvent,
    InvalidSubscriber,
    ModelEvent,
    Subscriber,
    Thorn,
    ThornError,
    webhook_model,
)
from thorn_core.binding import BlinkerBinding, created
from thorn_core.receiver import WebhookReceiver
from thorn_core.signing import hook_hmac, normalize_digest, verify_hook_hmac
from thorn_core.subscribers import StaticSubscribers, subscriber_from_row
from thorn_core.v1 import LegacyOptionError, differences, missing_columns, plan_v1_row

WAIT = 5.0
SECRET = "s3cret-of-thorn-1x-" + "k" * 45  # 64 characters, as 1.x generated


class TestDigestCase:
    """Digest names are read in any case, everywhere (1.x stored 'SHA512')."""

    @pytest.mark.parametrize(("given", "name"), [("SHA512", "sha512"), ("Sha1", "sha1")])
    def test_normalize_digest(self, given: str, name: str) -> None:
        """normalize_digest gives Thorn's spelling of a supported digest in any case."""
        assert normalize_digest(given) == name

    @pytest.mark.parametrize("given", ["md5", "SHA3", "", None, 512])
    def test_unsupported_digest_is_none(self, given: object) -> None:
        """Anything that names no supported digest normalises to None."""
        assert normalize_digest(given) is None

    def test_subscriber_stores_lower_case(self) -> None:
        """A Subscriber given 'SHA512' holds 'sha512'."""
        assert Subscriber(url="https://example.com/", hmac_digest="SHA512").hmac_digest == "sha512"

    def test_unknown_digest_still_refused(self) -> None:
        """An unsupported digest in capitals is refused, naming what was given."""
        with pytest.raises(InvalidSubscriber, match="'MD5' is not supported"):
            Subscriber(url="https://example.com/", hmac_digest="MD5")

    def test_signing_and_verifying_in_any_case(self) -> None:
        """hook_hmac and verify_hook_hmac take 'SHA256' as 'sha256'."""
        signature = hook_hmac("SHA256", SECRET, b"{}")
        assert signature == hook_hmac("sha256", SECRET, b"{}")
        verify_hook_hmac(SECRET, b"{}", signature, "Sha256")

    def test_stored_upper_case_row_delivers(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """A stored row with 'SHA512' delivers, signed with SHA-512 (not skipped)."""
        row = SimpleNamespace(
            url=receiver.url("/hook"),
            event="user.*",
            uuid=uuid.uuid4(),
            user_id=None,
            hmac_secret=SECRET,
            hmac_digest="SHA512",
            content_type="application/json",
            active=True,
        )
        app = make_app()
        result = Event("user.created", app=app, subscribers=[subscriber_from_row(row)]).send({})

        assert [d.ok for d in result.deliveries] == [True]
        request = receiver.wait_for(1, WAIT)[0]
        assert request.hook_hmac_valid(SECRET, "sha512")


class TestMixedSubscriberLists:
    """THORN_SUBSCRIBERS lists mixing URLs and callables, as 1.x took them."""

    def test_urls_and_callables_both_receive(
        self, make_app: Callable[..., Thorn], make_receiver: Callable[..., WebhookReceiver]
    ) -> None:
        """Every URL of the list and every subscriber a callable returns gets the event."""
        fixed, computed = make_receiver(), make_receiver()
        calls: list[tuple[str, Any]] = []

        def by_sender(event: str, sender: Any = None, **context: Any) -> list[str]:
            calls.append((event, sender))
            return [computed.url(f"/for/{sender}")]

        app = make_app({"THORN_SUBSCRIBERS": {"user.*": [fixed.url("/all"), by_sender]}})
        result = Event("user.created", app=app).send({"id": 1}, sender=7)

        assert sorted(d.ok for d in result.deliveries) == [True, True]
        assert calls == [("user.created", 7)]
        assert fixed.wait_for(1, WAIT)[0].path == "/all"
        assert computed.wait_for(1, WAIT)[0].path == "/for/7"

    def test_a_list_of_callables_only(self) -> None:
        """A list holding only callables calls each of them."""
        source = StaticSubscribers.from_setting(
            {"a.b": [lambda event, **_: "https://example.com/1", lambda event, **_: None]}
        )
        assert [s.url for s in source.matching("a.b")] == ["https://example.com/1"]

    def test_callable_in_an_event_list_is_a_clear_error(self) -> None:
        """An Event's own subscribers cannot hold a callable: the error says what to do."""
        with pytest.raises(InvalidSubscriber, match="accepted only in THORN_SUBSCRIBERS"):
            Event("a.b", subscribers=["https://example.com/", lambda event, **_: []])

    def test_a_class_in_a_list_is_refused(self) -> None:
        """A class is not taken for a callable returning subscribers."""
        with pytest.raises(ThornError, match=r"THORN_SUBSCRIBERS\['a.b'\]"):
            StaticSubscribers.from_setting({"a.b": ["https://example.com/", Subscriber]})


class TestEventV1Options:
    """``Event(request_data=..., allow_keepalive=...)`` and the options Thorn 2 removed."""

    def test_request_data_is_merged_into_the_body(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """request_data keys join the body of every send; the send's own keys win."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url("/hook")}})
        with pytest.warns(DeprecationWarning, match="request_data is deprecated"):
            event = Event("order.paid", app=app, request_data={"site": "eu", "id": 0})
        event.send({"id": 5})

        assert receiver.wait_for(1, WAIT)[0].json() == {"site": "eu", "id": 5}

    def test_request_data_with_a_list_payload(self, make_app: Callable[..., Thorn]) -> None:
        """A send whose data is not a mapping cannot merge request_data: a clear error."""
        with pytest.warns(DeprecationWarning, match="request_data"):
            event = Event("order.paid", app=make_app(), request_data={"site": "eu"})
        with pytest.raises(LegacyOptionError, match=r"merges into a mapping.*list"):
            event.send([1, 2])

    def test_request_data_must_be_a_mapping(self) -> None:
        """request_data of another kind is refused when the event is declared."""
        with pytest.raises(LegacyOptionError, match="request_data must be a mapping"):
            Event("order.paid", request_data=["site"])

    def test_allow_keepalive_false_closes_the_connection(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """allow_keepalive=False still works: deliveries carry 'Connection: close'."""
        app = make_app({"THORN_SUBSCRIBERS": {"*": receiver.url("/hook")}})
        with pytest.warns(DeprecationWarning, match="Connection"):
            event = Event("order.paid", app=app, allow_keepalive=False)
        event.send({})

        assert receiver.wait_for(1, WAIT)[0].headers["connection"] == "close"

    def test_allow_keepalive_true_changes_nothing(self) -> None:
        """allow_keepalive=True warns that it can go, and adds no header."""
        with pytest.warns(DeprecationWarning, match="remove it"):
            event = Event("order.paid", allow_keepalive=True)
        assert event.headers == {}

    def test_allow_keepalive_must_be_a_flag(self) -> None:
        """allow_keepalive of another kind is a LegacyOptionError."""
        with pytest.raises(LegacyOptionError, match="True or False"):
            Event("order.paid", allow_keepalive="no")

    def test_dispatcher_option_says_what_to_write(self) -> None:
        """Event(dispatcher=...) is a TypeError subclass naming THORN_DISPATCHER."""
        with pytest.raises(LegacyOptionError, match="THORN_DISPATCHER") as caught:
            Event("order.paid", dispatcher="celery")
        assert isinstance(caught.value, TypeError)
        assert isinstance(caught.value, ThornError)

    def test_unknown_option_lists_the_options(self) -> None:
        """A misspelt option names itself and the options Event takes."""
        with pytest.raises(LegacyOptionError, match=r"'retries'.*retry_max"):
            Event("order.paid", retries=3)


class Post:
    """A plain "model" for the webhooks mapping."""

    def __init__(self, id: int = 1) -> None:
        self.id = id


@pytest.fixture
def posts(make_app: Callable[..., Thorn], receiver: WebhookReceiver) -> Iterator[type]:
    """A model class with one event; every event of the app goes to ``receiver``."""
    make_app(
        {"THORN_SUBSCRIBERS": {"*": receiver.url("/hook")}},
        binding=BlinkerBinding(),
        set_as_current=True,
    )

    @webhook_model
    class Model(Post):
        class webhooks:
            on_create = ModelEvent("post.created")

    yield Model
    for event in Model.webhooks.events.values():  # type: ignore[attr-defined]
        event.disconnect_model(Model)


class TestWebhooksMapping:
    """``Model.webhooks[name] = event`` and ``del Model.webhooks[name]``, as in 1.x."""

    def test_assigning_connects_the_event(self, posts: Any, receiver: WebhookReceiver) -> None:
        """An assigned event is sent by the model's hooks, with a DeprecationWarning."""
        with pytest.warns(DeprecationWarning, match="class webhooks"):
            posts.webhooks["on_create"] = ModelEvent("post.added")
        created.send(posts, instance=posts(3))

        assert receiver.wait_for(1, WAIT)[0].json()["event"] == "post.added"
        assert "on_create" in posts.webhooks

    def test_replacing_disconnects_the_old_event(self, posts: Any) -> None:
        """The replaced event no longer listens to the model."""
        old = posts.webhooks["on_create"]
        with pytest.warns(DeprecationWarning, match="deprecated"):
            posts.webhooks["on_create"] = ModelEvent("post.added")
        assert old.models == []

    def test_deleting_disconnects(self, posts: Any, receiver: WebhookReceiver) -> None:
        """A deleted event is disconnected: a create sends nothing."""
        event = posts.webhooks["on_create"]
        with pytest.warns(DeprecationWarning, match="del "):
            del posts.webhooks["on_create"]
        created.send(posts, instance=posts(4))
        Event("post.marker").send({"marker": True})  # delivered in send(): after any other

        assert event.models == []
        assert "on_create" not in posts.webhooks
        assert [r.json() for r in receiver.wait_for(1, WAIT)] == [{"marker": True}]

    def test_unknown_name_lists_the_events(self, posts: Any) -> None:
        """Reading or deleting an unknown name is a KeyError naming the events there are."""
        with pytest.raises(KeyError, match="has no event 'on_publish'; it has on_create"):
            posts.webhooks["on_publish"]
        with pytest.warns(DeprecationWarning, match="del "), pytest.raises(KeyError, match="on_"):
            del posts.webhooks["on_publish"]

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("on_create", "post.created", "must be a ModelEvent"),
            ("created", ModelEvent("post.created"), "start with 'on_'"),
            ("on_publish", ModelEvent("post.published"), "declares no dispatch"),
        ],
    )
    def test_assigning_something_else_is_refused(
        self, posts: Any, name: str, value: Any, message: str
    ) -> None:
        """Only a ModelEvent can be assigned, under an on_* name, with a dispatch."""
        with (
            pytest.warns(DeprecationWarning, match="deprecated"),
            pytest.raises(InvalidModelEvent, match=message),
        ):
            posts.webhooks[name] = value


def v1_row(**fields: Any) -> dict[str, Any]:
    """A row of Thorn 1.x's webhooks_subscriber table, as a database cursor returns it."""
    row: dict[str, Any] = {
        "id": 1,
        "uuid": uuid.uuid4().hex,
        "event": "user.*",
        "url": "https://hooks.example.com/thorn",
        "user_id": None,
        "hmac_secret": SECRET,
        "hmac_digest": "SHA512",
        "content_type": "application/json",
        "created_at": "2016-05-04 10:11:12.000123",
        "updated_at": datetime.datetime(2017, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    }
    row.update(fields)
    return row


@pytest.fixture
def v1_app(make_app: Callable[..., Thorn], monkeypatch: pytest.MonkeyPatch) -> Thorn:
    """An app with the default recipient validators; every name resolves to a public address
    (the sandbox has no DNS)."""
    app = make_app({"THORN_RECIPIENT_VALIDATORS": None})
    monkeypatch.setattr(
        app.recipients, "resolver", lambda host, port: (ipaddress.ip_address("93.184.215.14"),)
    )
    return app


class TestPlanV1Row:
    """How one Thorn 1.x row becomes a Thorn 2 subscription, or why it does not."""

    def test_a_good_row_is_imported_as_it_was(self, v1_app: Thorn) -> None:
        """The uuid (32 hex digits), secret and timestamps are kept; the digest is lower-cased."""
        row = v1_row(user_id=7)
        plan = plan_v1_row(v1_app, row, user_exists=lambda user: user == 7)

        assert plan.status == "import"
        assert plan.reasons == ()
        assert plan.fields["uuid"] == uuid.UUID(row["uuid"])
        assert plan.fields["hmac_digest"] == "sha512"
        assert plan.fields["hmac_secret"] == SECRET
        assert plan.fields["user"] == 7
        assert plan.fields["active"] is True
        assert plan.created_at == datetime.datetime(
            2016, 5, 4, 10, 11, 12, 123, datetime.timezone.utc
        )
        assert plan.updated_at == row["updated_at"]

    def test_an_unknown_owner_is_skipped(self, v1_app: Thorn) -> None:
        """A row whose user is gone is skipped: unowned, it would receive everyone's events."""
        plan = plan_v1_row(v1_app, v1_row(user_id=99), user_exists=lambda user: False)

        assert plan.status == "skip"
        assert "user_id 99 names no user" in plan.reasons[0]

    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            ({"url": "http://10.0.0.5/hook"}, "url: "),
            ({"event": "user.*.created"}, "event: "),
            ({"content_type": "text/csv"}, "content_type: 'text/csv' is not supported"),
        ],
    )
    def test_undeliverable_rows_are_imported_inactive(
        self, v1_app: Thorn, fields: dict[str, Any], reason: str
    ) -> None:
        """A URL, pattern or content type Thorn 2 refuses: kept, inactive, with the reason."""
        plan = plan_v1_row(v1_app, v1_row(**fields), user_exists=lambda user: True)

        assert plan.status == "inactive"
        assert plan.fields["active"] is False
        assert plan.reasons[0].startswith(reason)

    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            ({"uuid": "not-a-uuid"}, "uuid 'not-a-uuid' is not a UUID"),
            ({"hmac_digest": "MD5"}, "hmac_digest: 'MD5' is not supported"),
            ({"hmac_secret": ""}, "hmac_secret"),
            ({"url": None}, "url is None, not text"),
            ({"event": "x" * 201}, "more than Thorn 2 stores (200)"),
        ],
    )
    def test_rows_that_cannot_sign_or_be_stored_are_skipped(
        self, v1_app: Thorn, fields: dict[str, Any], reason: str
    ) -> None:
        """A row Thorn 2 cannot store or sign as 1.x did is skipped, with the reason."""
        plan = plan_v1_row(v1_app, v1_row(**fields), user_exists=lambda user: True)

        assert plan.status == "skip"
        assert reason in " ".join(plan.reasons)
        assert plan.fields == {}

    def test_a_short_secret_is_kept_with_a_note(self, v1_app: Thorn) -> None:
        """A short 1.x secret is kept (receivers verify with it), with advice to rotate it."""
        plan = plan_v1_row(v1_app, v1_row(hmac_secret="short"), user_exists=lambda user: True)

        assert plan.status == "import"
        assert plan.fields["hmac_secret"] == "short"
        assert "rotate it" in plan.notes[0]

    def test_an_unreadable_timestamp_is_a_note(self, v1_app: Thorn) -> None:
        """An unreadable created_at leaves the import time, and says so."""
        plan = plan_v1_row(v1_app, v1_row(created_at="yesterday"), user_exists=lambda user: True)

        assert plan.status == "import"
        assert plan.created_at is None
        assert "created_at 'yesterday' is not a timestamp" in plan.notes[0]

    def test_rows_are_named_by_uuid_else_id(self, v1_app: Thorn) -> None:
        """Reports name a row by its uuid, else its id."""
        assert plan_v1_row(v1_app, v1_row(uuid=None, id=12), user_exists=bool).label == "id=12"

    def test_missing_columns(self) -> None:
        """missing_columns names the required 1.x columns a table lacks."""
        assert missing_columns(["UUID", "event", "url", "user_id"]) == [
            "hmac_secret",
            "hmac_digest",
            "content_type",
        ]

    def test_differences(self) -> None:
        """differences names the fields an existing subscription holds otherwise; ids as text."""
        planned = {"event": "a.b", "url": "https://x/", "user": 7, "active": True}
        assert differences(planned, {**planned, "user": "7"}) == []
        assert differences(planned, {**planned, "url": "https://y/"}) == ["url"]
