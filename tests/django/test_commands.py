"""Management commands: ``thorn_subscribers list|add|remove`` and ``thorn_ping``."""

from __future__ import annotations

import re
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from thorn_core.receiver import WebhookReceiver
from thorn_django import get_app
from thorn_django.models import Subscriber

pytestmark = pytest.mark.django_db


def run(*args: str, **options: Any) -> str:
    """Run a command and return what it printed."""
    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


class TestSubscribersCommand:
    def test_add_list_remove(self, make_user: Callable[[str], Any]) -> None:
        """Add prints the uuid and secret; list shows the row; remove deletes it."""
        make_user("alice")
        output = run(
            "thorn_subscribers", "add", "article.*", "https://example.com/h", "--user", "alice"
        )
        row = Subscriber.objects.get()
        assert str(row.uuid) in output
        assert row.hmac_secret in output
        assert row.user.get_username() == "alice"
        listed = run("thorn_subscribers", "list")
        assert "article.*  https://example.com/h  user=alice  active" in listed
        assert row.hmac_secret not in listed
        assert "article.*" in run("thorn_subscribers", "list", "--event", "article.created")
        assert run("thorn_subscribers", "list", "--event", "user.created") == "No subscribers.\n"
        run("thorn_subscribers", "remove", str(row.uuid))
        assert not Subscriber.objects.exists()

    def test_add_refuses_bad_input(self) -> None:
        """A hostile URL or a malformed pattern is refused with the core's messages."""
        with pytest.raises(CommandError, match=r"url: .*10\.0\.0\.1"):
            run("thorn_subscribers", "add", "article.created", "http://10.0.0.1/")
        with pytest.raises(CommandError, match=r"event: .*middle segment"):
            run("thorn_subscribers", "add", "a.*.b", "https://example.com/")
        assert not Subscriber.objects.exists()

    def test_remove_unknown(self) -> None:
        """Removing an unknown or malformed uuid is an error."""
        with pytest.raises(CommandError, match="No subscriber"):
            run("thorn_subscribers", "remove", "00000000-0000-0000-0000-000000000000")
        with pytest.raises(CommandError, match="not a subscriber id"):
            run("thorn_subscribers", "remove", "nope")


class TestPingCommand:
    @pytest.mark.usefixtures("loopback")
    def test_ping(self, subscribe: Callable[..., Any], receiver: WebhookReceiver) -> None:
        """``thorn_ping UUID`` delivers a signed test event to that subscriber alone."""
        row = subscribe("article.created", receiver.url("/ping"))
        subscribe("*", receiver.url("/other"))
        output = run(
            "thorn_ping", str(row.uuid), "--event", "article.reviewed", "--data", '{"id": 1}'
        )
        assert "Delivered article.reviewed" in output
        (webhook,) = receiver.received
        assert (webhook.path, webhook.json()) == ("/ping", {"id": 1})
        assert webhook.hook_hmac_valid(row.hmac_secret)

    @pytest.mark.usefixtures("loopback")
    def test_redeliver(self, subscribe: Callable[..., Any], flaky: WebhookReceiver) -> None:
        """A redelivery that fails again names the URL with its password masked."""
        url = flaky.url("/hook").replace("http://", "http://ada:s3cret@")
        row = subscribe("order.*", url)
        get_app().event("order.paid").send({"id": 1})

        output = run("thorn_redeliver", "--subscriber", str(row.uuid))

        assert f"failed ({url.replace('s3cret', '***')} answered 503)" in output
        assert "s3cret" not in output

    def test_ping_of_a_declared_type_is_checked(self, subscribe: Callable[..., Any]) -> None:
        """A ping's payload must keep the contract of the event type it names."""
        row = subscribe("article.created", "https://example.com/hook")
        with pytest.raises(CommandError, match=r"breaks its schema at / \(required\)"):
            run("thorn_ping", str(row.uuid), "--event", "article.created", "--data", '{"id": 1}')

    def test_failed_ping(self, subscribe: Callable[..., Any]) -> None:
        """A delivery that fails (here: refused loopback) makes the command fail."""
        row = subscribe("article.created", "http://127.0.0.1:9/hook")
        with pytest.raises(CommandError, match="failed"):
            run("thorn_ping", str(row.uuid))


class TestOwner:
    """``--user`` names the owner by username or by id, for ``add`` and ``list``."""

    def test_by_username_or_id(self, make_user: Callable[[str], Any]) -> None:
        """A username and a user's id both name the owner; ``list --user`` takes either."""
        alice, bob = make_user("alice"), make_user("bob")
        run("thorn_subscribers", "add", "a.b", "https://example.com/a", "--user", "alice")
        run("thorn_subscribers", "add", "a.b", "https://example.com/b", "--user", str(bob.pk))

        owners = dict(Subscriber.objects.values_list("url", "user"))
        by_id = run("thorn_subscribers", "list", "--user", str(alice.pk))

        assert owners == {"https://example.com/a": alice.pk, "https://example.com/b": bob.pk}
        assert "https://example.com/a  user=alice" in by_id
        assert "https://example.com/b" not in by_id

    def test_username_comes_first(self, make_user: Callable[[str], Any]) -> None:
        """A username that looks like an id names that user, not the user with that id."""
        first = make_user("first")
        numbered = make_user(str(first.pk))

        run("thorn_subscribers", "add", "a.b", "https://example.com/", "--user", str(first.pk))

        assert Subscriber.objects.get().user == numbered

    def test_unknown_user(self) -> None:
        """An unknown user is refused before anything is stored."""
        with pytest.raises(CommandError, match=r"--user: no user with the username or id 'x'"):
            run("thorn_subscribers", "add", "a.b", "https://example.com/", "--user", "x")
        assert not Subscriber.objects.exists()


class TestMaskedPasswords:
    """A password in a subscriber's URL is never printed: add, list, ping, failed ping."""

    @pytest.mark.usefixtures("loopback")
    def test_add_list_ping(self, receiver: WebhookReceiver) -> None:
        """Every message shows ``***`` for the password; the delivery carries it."""
        url = receiver.url("/hook").replace("http://", "http://ada:s3cret@")
        masked = url.replace("s3cret", "***")

        added = run("thorn_subscribers", "add", "user.*", url)
        row = Subscriber.objects.get()
        listed = run("thorn_subscribers", "list")
        pinged = run("thorn_ping", str(row.uuid))

        assert f"Added subscriber {row.uuid}: user.* -> {masked}" in added
        assert f"{row.uuid}  user.*  {masked}  user=-  active" in listed
        assert f"Delivered thorn.ping to {masked} (HTTP 200" in pinged
        assert "s3cret" not in added + listed + pinged
        assert receiver.wait_for(1)[0].headers["authorization"].startswith("Basic ")

    @pytest.mark.usefixtures("loopback")
    def test_redeliver(self, subscribe: Callable[..., Any], flaky: WebhookReceiver) -> None:
        """A redelivery that fails again names the URL with its password masked."""
        url = flaky.url("/hook").replace("http://", "http://ada:s3cret@")
        row = subscribe("order.*", url)
        get_app().event("order.paid").send({"id": 1})

        output = run("thorn_redeliver", "--subscriber", str(row.uuid))

        assert f"failed ({url.replace('s3cret', '***')} answered 503)" in output
        assert "s3cret" not in output

    def test_ping_of_a_declared_type_is_checked(self, subscribe: Callable[..., Any]) -> None:
        """A ping's payload must keep the contract of the event type it names."""
        row = subscribe("article.created", "https://example.com/hook")
        with pytest.raises(CommandError, match=r"breaks its schema at / \(required\)"):
            run("thorn_ping", str(row.uuid), "--event", "article.created", "--data", '{"id": 1}')

    def test_failed_ping(self, subscribe: Callable[..., Any]) -> None:
        """The error of a failed ping masks the password too."""
        row = subscribe("a.b", "http://ada:s3cret@127.0.0.1:9/hook")

        with pytest.raises(CommandError) as refused:
            run("thorn_ping", str(row.uuid))

        assert "http://ada:***@127.0.0.1:9/hook" in str(refused.value)
        assert "s3cret" not in str(refused.value)


class TestCallCommand:
    """``call_command`` keyword options go through the same argument types as the command line."""

    def test_keyword_options_are_converted(self) -> None:
        """A time and a number given as keyword strings are read as on the command line."""
        pruned = run("thorn_prune", before="2020-01-01T00:00:00+02:00")
        relayed = run("thorn_relay", limit="5", interval="0.5")

        assert "older than 2020-01-01 00:00:00 UTC+02:00" in pruned
        assert relayed == "Relayed 0 events\n"

    @pytest.mark.parametrize(
        ("name", "options", "words"),
        [
            ("thorn_relay", {"limit": 0}, "argument --limit: 0 is not a whole number"),
            ("thorn_relay", {"interval": float("inf")}, "argument --interval: inf is not"),
            ("thorn_prune", {"before": "last week"}, "argument --before: 'last week' is not"),
            ("thorn_redeliver", {"subscriber": "nope"}, "'nope' is not a subscriber id"),
        ],
        ids=["limit", "interval", "before", "subscriber"],
    )
    def test_bad_keyword_options(self, name: str, options: dict[str, Any], words: str) -> None:
        """A bad keyword value is the command line's usage error, as a CommandError."""
        with pytest.raises(CommandError, match=re.escape(words)):
            call_command(name, **options)
