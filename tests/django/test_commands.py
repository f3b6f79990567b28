"""Management commands: ``thorn_subscribers list|add|remove`` and ``thorn_ping``."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from thorn_core.receiver import WebhookReceiver
from thorn_django.models import Subscriber

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    """Run a command and return what it printed."""
    out = StringIO()
    call_command(*args, stdout=out)
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
            "thorn_ping", str(row.uuid), "--event", "article.created", "--data", '{"id": 1}'
        )
        assert "Delivered article.created" in output
        (webhook,) = receiver.received
        assert (webhook.path, webhook.json()) == ("/ping", {"id": 1})
        assert webhook.hook_hmac_valid(row.hmac_secret)

    def test_failed_ping(self, subscribe: Callable[..., Any]) -> None:
        """A delivery that fails (here: refused loopback) makes the command fail."""
        row = subscribe("article.created", "http://127.0.0.1:9/hook")
        with pytest.raises(CommandError, match="failed"):
            run("thorn_ping", str(row.uuid))
