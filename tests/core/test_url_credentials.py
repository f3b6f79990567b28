"""Credentials in subscriber URLs: sent as Basic auth to their origin only, and always masked."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from thorn_core import Event, Thorn
from thorn_core.exceptions import InvalidURL
from thorn_core.log import masked_headers, public_headers
from thorn_core.receiver import WebhookReceiver
from thorn_core.subscribers import Subscriber
from thorn_core.validators import display_url, parse_target

from .conftest import RawServer


def basic(credentials: bytes) -> str:
    """The ``Authorization`` value of HTTP Basic auth for ``user:password`` bytes."""
    return "Basic " + base64.b64encode(credentials).decode("ascii")


def redirecting_to(location: str) -> type[BaseHTTPRequestHandler]:
    """A handler that answers every POST with a 307 to ``location``, recording each request."""

    class Redirect(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(307)
            self.send_header("Location", location.format(port=self.server.server_address[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet."""

    return Redirect


def send_one(app: Thorn, url: str, **options: Any) -> Any:
    """Send one event to ``url`` with ``app`` and return its only delivery."""
    (delivery,) = Event("user.created", app=app).send({}, subscribers=[url], **options).deliveries
    return delivery


class TestDisplayURL:
    """``display_url`` masks what authenticates and keeps the rest as written."""

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("https://ada:hunter2@example.com/hook", "https://ada:***@example.com/hook"),
            ("https://ada:@example.com/", "https://ada:***@example.com/"),
            ("https://tok_123@example.com/hook", "https://***@example.com/hook"),
            ("https://ada:p@ss@example.com:8443/", "https://ada:***@example.com:8443/"),
            ("https://ada:hunter2@example.com", "https://ada:***@example.com"),
            ("https://ada:hunter2@example.com?x=1", "https://ada:***@example.com?x=1"),
            ("https://example.com/h?token=abc&page=2", "https://example.com/h?token=***&page=2"),
            (
                "https://example.com/h?api_key=a&api-key=b",
                "https://example.com/h?api_key=***&api-key=***",
            ),
            (
                "https://example.com/h?apiKey=a&clientSecret=b",
                "https://example.com/h?apiKey=***&clientSecret=***",
            ),
            (
                "https://example.com/h?X-Amz-Signature=ab&sig=cd",
                "https://example.com/h?X-Amz-Signature=***&sig=***",
            ),
            (
                "https://example.com/h?password=a&pwd=b&auth=c",
                "https://example.com/h?password=***&pwd=***&auth=***",
            ),
            ("https://example.com/h?token=abc#frag", "https://example.com/h?token=***#frag"),
        ],
    )
    def test_masks_credentials(self, url: str, shown: str) -> None:
        """Passwords, lone userinfo names and secret-named query values become ``***``."""
        assert display_url(url) == shown

    @pytest.mark.parametrize(
        "url",
        [
            "https://example.com/hook",
            "https://example.com:8080/@user",
            "https://example.com/p?monkey=1&keys=2&oauth=3&page=4",
            "https://example.com?next=a:b@c",
            "https://example.com/h?token",
            "not a url",
        ],
    )
    def test_keeps_urls_without_credentials(self, url: str) -> None:
        """A URL without credentials, or with ``@`` only past its authority, is unchanged."""
        assert display_url(url) == url

    def test_masking_twice_changes_nothing(self) -> None:
        """A masked URL is its own display, so displays can be masked again safely."""
        shown = display_url("https://ada:hunter2@example.com/h?token=abc")
        assert display_url(shown) == shown


class TestHeaderDisplays:
    """Credential headers are left out of the log and masked in displays; signatures stay."""

    HEADERS: ClassVar[dict[str, str]] = {
        "Authorization": "Basic YWRhOmh1bnRlcjI=",
        "Cookie": "session=1",
        "Hook-HMAC": "abc=",
        "webhook-signature": "v1,xyz=",
    }

    def test_log_keeps_no_credentials(self) -> None:
        """``public_headers`` drops Authorization and Cookie and keeps the signatures."""
        assert public_headers(self.HEADERS) == {"Hook-HMAC": "abc=", "webhook-signature": "v1,xyz="}

    def test_display_masks_credentials(self) -> None:
        """``masked_headers`` shows that the credential headers were there, not their values."""
        assert masked_headers(self.HEADERS) == {
            **self.HEADERS,
            "Authorization": "***",
            "Cookie": "***",
        }


class TestBasicAuth:
    """Credentials in a subscriber URL are sent as HTTP Basic auth, never in the request line."""

    def test_receiver_gets_basic_auth_only(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """The receiver sees ``Authorization: Basic``; path and Host carry no userinfo."""
        url = f"http://ada:hunter2@127.0.0.1:{receiver.port}/hook?x=1"
        assert send_one(make_app(), url).ok
        (got,) = receiver.wait_for(1)
        assert got.headers["authorization"] == basic(b"ada:hunter2")
        assert got.path == "/hook?x=1"
        assert got.headers["host"] == f"127.0.0.1:{receiver.port}"

    def test_percent_encoded_credentials_are_decoded(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """Reserved characters in the credentials are percent-encoded in the URL, sent decoded."""
        url = f"http://ad%40a:p%3Ass%2Fw@127.0.0.1:{receiver.port}/"
        assert send_one(make_app(), url).ok
        assert receiver.wait_for(1)[0].headers["authorization"] == basic(b"ad@a:p:ss/w")

    def test_lone_name_is_sent_with_an_empty_password(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """``https://token@host/`` authenticates as ``token:``, as curl and requests do."""
        assert send_one(make_app(), f"http://tok_123@127.0.0.1:{receiver.port}/").ok
        assert receiver.wait_for(1)[0].headers["authorization"] == basic(b"tok_123:")

    def test_explicit_authorization_header_wins(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """An ``Authorization`` header sent with the event replaces the URL's credentials."""
        url = f"http://ada:hunter2@127.0.0.1:{receiver.port}/"
        assert send_one(make_app(), url, headers={"Authorization": "Bearer abc"}).ok
        assert receiver.wait_for(1)[0].headers["authorization"] == "Bearer abc"

    def test_url_without_credentials_sends_none(
        self, make_app: Callable[..., Thorn], receiver: WebhookReceiver
    ) -> None:
        """Without userinfo there is no Authorization header at all."""
        assert send_one(make_app(), receiver.url("/")).ok
        assert "authorization" not in receiver.wait_for(1)[0].headers


class TestRedirectsKeepCredentialsHome:
    """A followed redirect carries credentials to the subscriber's origin and nowhere else."""

    def test_same_origin_hop_keeps_basic_auth(
        self,
        make_app: Callable[..., Thorn],
        raw_server: Callable[[type[BaseHTTPRequestHandler]], RawServer],
    ) -> None:
        """A relative Location keeps the URL's userinfo, so the next hop authenticates too."""
        handler = redirecting_to("/again")
        server = raw_server(handler)
        app = make_app({"THORN_ALLOW_REDIRECTS": True, "THORN_MAX_REDIRECTS": 1})
        delivery = send_one(app, f"http://ada:hunter2@127.0.0.1:{server.port}/first")
        assert not delivery.ok
        assert [path for path, _ in handler.seen] == ["/first", "/again"]
        assert [h["authorization"] for _, h in handler.seen] == [basic(b"ada:hunter2")] * 2
        assert "hunter2" not in (delivery.error or "") + repr(delivery)

    def test_hop_to_another_origin_gets_no_credentials(
        self,
        make_app: Callable[..., Thorn],
        raw_server: Callable[[type[BaseHTTPRequestHandler]], RawServer],
        receiver: WebhookReceiver,
    ) -> None:
        """Neither the URL's credentials nor an explicit Authorization reach another origin."""
        handler = redirecting_to(receiver.url("/elsewhere"))
        server = raw_server(handler)
        app = make_app({"THORN_ALLOW_REDIRECTS": True})
        for headers in ({}, {"Authorization": "Bearer abc", "Cookie": "c=1", "X-Extra": "1"}):
            url = f"http://ada:hunter2@127.0.0.1:{server.port}/first"
            assert send_one(app, url, headers=headers).ok
        first, second = receiver.wait_for(2)
        assert first.path == "/elsewhere"
        assert "authorization" not in first.headers
        assert "authorization" not in second.headers
        assert "cookie" not in second.headers
        assert second.headers["x-extra"] == "1"
        assert [h["authorization"] for _, h in handler.seen] == [
            basic(b"ada:hunter2"),
            "Bearer abc",
        ]


class TestCredentialsNeverShown:
    """A URL's password appears in no record, error, repr or log line of a delivery."""

    def test_failed_delivery_record_masks(
        self, make_app: Callable[..., Thorn], closed_port_url: str
    ) -> None:
        """The delivery log keeps the masked URL and an error that names it masked."""
        app = make_app()
        url = closed_port_url.replace("http://", "http://ada:hunter2@") + "?token=t0k"
        delivery = send_one(app, url)
        (record,) = app.delivery_log.attempts(delivery.id)
        assert record.url == display_url(url)
        assert "ada:***@" in (record.error or "")
        shown = f"{record!r} {record.error} {delivery!r} {delivery.subscriber!r}"
        assert "hunter2" not in shown
        assert "t0k" not in shown

    def test_no_log_record_carries_the_password(
        self,
        make_app: Callable[..., Thorn],
        receiver: WebhookReceiver,
        closed_port_url: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Thorn's and urllib3's log lines at DEBUG, on success and failure, never show it."""
        app = make_app()
        caplog.set_level(logging.DEBUG)
        good = f"http://ada:hunter2@127.0.0.1:{receiver.port}/hook"
        bad = closed_port_url.replace("http://", "http://ada:hunter2@")
        assert send_one(app, good).ok
        assert not send_one(app, bad).ok
        assert any("urllib3" in r.name for r in caplog.records)
        assert all("hunter2" not in r.getMessage() for r in caplog.records)

    @pytest.mark.parametrize(
        "url", [b"https://ada:hunter2@example.com/", ["https://ada:hunter2@example.com/"]]
    )
    def test_url_of_the_wrong_type_is_not_echoed(self, url: object) -> None:
        """A URL given as bytes or a list is refused by its type, without its value."""
        with pytest.raises(InvalidURL, match="URL must be a str") as info:
            parse_target(url)
        assert "hunter2" not in str(info.value)

    def test_subscriber_repr_masks(self) -> None:
        """A Subscriber's repr shows the masked URL."""
        subscriber = Subscriber(url="https://ada:hunter2@example.com/h?api_key=k3y")
        assert "ada:***@example.com/h?api_key=***" in repr(subscriber)
