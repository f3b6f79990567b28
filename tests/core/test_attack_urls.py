"""Attack URLs against the default recipient validators, sent through ``Event.send``.

A listener on 127.0.0.1 stands where a forged URL would land: numeric forms, host names
the injected resolver maps to internal addresses, and mapped IPv6 forms all point at it,
so a validator letting one through would show up as a connection. A guard transport makes
sure nothing leaves 127.0.0.1 even then.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from typing import Any

import pytest

from tests.core._hostile import Listener, LoopbackOnlyDispatcher
from thorn_core import Event, Subscriber, Thorn
from thorn_core.delivery import Delivery
from thorn_core.exceptions import InvalidSubscriber, InvalidURL, RecipientRefused
from thorn_core.validators import (
    allow_cidr_network,
    block_internal_ips,
    default_validators,
    ensure_port,
    ensure_protocol,
    validate_recipient,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"

#: The injected resolver's answers; every internal one includes or aims at the listener.
HOSTS: dict[str, tuple[str, ...]] = {
    "localhost": ("127.0.0.1", "::1"),
    "metadata.google.internal": ("169.254.169.254",),
    "metadata.test": ("169.254.169.254",),
    "rebind.test": ("127.0.0.1",),
    "ipv6-mapped.test": ("::ffff:127.0.0.1",),
    "nat64.test": ("64:ff9b::7f00:1",),
    "sixtofour.test": ("2002:7f00:1::",),
    "mixed.test": (PUBLIC_V4, "127.0.0.1"),
    "mixed-private.test": (PUBLIC_V4, "10.1.2.3"),
    "mixed6.test": (PUBLIC_V6, "::1"),
    "ula.test": ("fd12:3456:789a::1",),
    "cgnat.test": ("100.64.0.1",),
    "zero.test": ("0.0.0.0",),  # noqa: S104 - an answer of the resolver, not a bind
    "example.com": (PUBLIC_V4,),
    "public.test": (PUBLIC_V4,),
    "public6.test": (PUBLIC_V6,),
    "dual.test": (PUBLIC_V4, PUBLIC_V6),
    "xn--bcher-kva.example": (PUBLIC_V4,),
}


class FakeResolver:
    """Resolves numeric hosts as the OS would (no DNS), and the names in ``HOSTS``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> tuple[Any, ...]:
        self.calls.append(host)
        try:
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        except OSError:
            pass
        else:
            return tuple(ip_address(info[4][0]) for info in infos)
        try:
            return tuple(ip_address(address) for address in HOSTS[host])
        except KeyError:
            raise OSError(f"unknown test host {host!r}") from None


#: ``(URL template, reason)``: ``{port}`` becomes ``:<listener port>`` or nothing.
ADDRESS_ATTACKS: list[tuple[str, str]] = [
    # IPv4 loopback in every spelling the OS accepts.
    ("http://127.0.0.1{port}/hook", "127.0.0.1 is a loopback address"),
    ("http://2130706433{port}/", "127.0.0.1 is a loopback address"),
    ("http://0x7f000001{port}/", "127.0.0.1 is a loopback address"),
    ("http://0177.0.0.1{port}/", "127.0.0.1 is a loopback address"),
    ("http://017700000001{port}/", "127.0.0.1 is a loopback address"),
    ("http://0x7f.0.0.1{port}/", "127.0.0.1 is a loopback address"),
    ("http://127.1{port}/", "127.0.0.1 is a loopback address"),
    ("http://127.0.1{port}/", "127.0.0.1 is a loopback address"),
    ("http://127.0.0.1.{port}/", "127.0.0.1 is a loopback address"),
    ("HTTP://127.0.0.1{port}/", "127.0.0.1 is a loopback address"),
    ("http://127.255.255.254{port}/", "127.255.255.254 is a loopback address"),
    ("http://user@127.0.0.1{port}/", "127.0.0.1 is a loopback address"),
    ("http://user:secret@127.0.0.1{port}/", "127.0.0.1 is a loopback address"),
    (f"http://{PUBLIC_V4}@127.0.0.1{{port}}/", "127.0.0.1 is a loopback address"),
    (f"http://127.0.0.1{{port}}#@{PUBLIC_V4}/", "127.0.0.1 is a loopback address"),
    (f"http://127.0.0.1{{port}}?@{PUBLIC_V4}/", "127.0.0.1 is a loopback address"),
    ("http://0.0.0.0{port}/", "0.0.0.0 is the unspecified address"),
    ("http://0{port}/", "0.0.0.0 is the unspecified address"),
    # IPv6 forms of loopback, and IPv4 loopback embedded in IPv6.
    ("http://[::1]{port}/", "::1 is a loopback address"),
    ("http://[0:0:0:0:0:0:0:1]{port}/", "::1 is a loopback address"),
    ("http://[::]{port}/", ":: is the unspecified address"),
    ("http://[::ffff:127.0.0.1]{port}/", "IPv4-mapped IPv6 address (embedding 127.0.0.1"),
    ("http://[::ffff:7f00:1]{port}/", "IPv4-mapped IPv6 address (embedding 127.0.0.1"),
    ("http://[::127.0.0.1]{port}/", "IPv4-compatible IPv6 address (embedding 127.0.0.1"),
    ("http://[::ffff:0:7f00:1]{port}/", "IPv4-translated IPv6 address (embedding 127.0.0.1"),
    ("http://[64:ff9b::7f00:1]{port}/", "NAT64 address embedding 127.0.0.1"),
    ("http://[64:ff9b::127.0.0.1]{port}/", "NAT64 address embedding 127.0.0.1"),
    ("http://[2002:7f00:1::]{port}/", "6to4 address embedding 127.0.0.1"),
    # Names the resolver maps inside.
    ("http://localhost{port}/", "127.0.0.1 is a loopback address"),
    ("http://localhost.{port}/", "127.0.0.1 is a loopback address"),
    ("http://LocalHost{port}/", "127.0.0.1 is a loopback address"),
    ("http://metadata.google.internal{port}/computeMetadata/v1/", "cloud metadata service"),
    ("http://rebind.test{port}/", "127.0.0.1 is a loopback address"),
    ("http://ipv6-mapped.test{port}/", "IPv4-mapped IPv6 address (embedding 127.0.0.1"),
    ("http://nat64.test{port}/", "NAT64 address embedding 127.0.0.1"),
    ("http://sixtofour.test{port}/", "6to4 address embedding 127.0.0.1"),
    ("http://zero.test{port}/", "0.0.0.0 is the unspecified address"),
    ("http://ula.test{port}/", "is a unique local address"),
    ("http://cgnat.test{port}/", "carrier-grade NAT"),
    # One internal address among public ones is enough to refuse.
    ("http://mixed.test{port}/", "127.0.0.1 is a loopback address"),
    ("http://mixed-private.test{port}/", "10.1.2.3 is a private address"),
    ("http://mixed6.test{port}/", "::1 is a loopback address"),
    # Every private and special range, as literals and numeric spellings.
    ("http://10.0.0.1{port}/", "10.0.0.1 is a private address"),
    ("http://0x0a000001{port}/", "10.0.0.1 is a private address"),
    ("http://10.255.255.255{port}/", "is a private address"),
    ("http://172.16.0.1{port}/", "172.16.0.1 is a private address"),
    ("http://172.31.255.254{port}/", "172.31.255.254 is a private address"),
    ("http://192.168.1.1{port}/", "192.168.1.1 is a private address"),
    ("http://100.64.0.1{port}/", "carrier-grade NAT"),
    ("http://100.127.255.254{port}/", "carrier-grade NAT"),
    ("http://169.254.169.254{port}/latest/meta-data/", "cloud metadata service"),
    ("http://2852039166{port}/", "cloud metadata service"),
    ("http://169.254.1.1{port}/", "169.254.1.1 is a link-local address"),
    ("http://192.0.0.8{port}/", "IETF protocol assignment"),
    ("http://192.0.2.1{port}/", "documentation address"),
    ("http://198.18.0.1{port}/", "benchmarking address"),
    ("http://224.0.0.1{port}/", "multicast address"),
    ("http://240.0.0.1{port}/", "reserved address"),
    ("http://255.255.255.255{port}/", "the broadcast address"),
    ("http://[fd00::1]{port}/", "fd00::1 is a unique local address"),
    ("http://[fc00::1]{port}/", "fc00::1 is a unique local address"),
    ("http://[fe80::1]{port}/", "fe80::1 is a link-local address"),
    ("http://[fec0::1]{port}/", "fec0::1 is a site-local address"),
    ("http://[ff02::1]{port}/", "ff02::1 is a multicast address"),
    ("http://[2001:db8::1]{port}/", "documentation address"),
    ("http://[2001::1]{port}/", "Teredo"),
    ("http://[::ffff:10.0.0.1]{port}/", "IPv4-mapped IPv6 address (embedding 10.0.0.1"),
    ("http://[::ffff:169.254.169.254]{port}/", "embedding 169.254.169.254"),
    ("http://[64:ff9b::a9fe:a9fe]{port}/", "NAT64 address embedding 169.254.169.254"),
    ("http://[2002:c0a8:101::]{port}/", "6to4 address embedding 192.168.1.1"),
    ("https://127.0.0.1{port}/", "127.0.0.1 is a loopback address"),
    ("https://[::1]{port}/", "::1 is a loopback address"),
]

#: Schemes other than http and https, aimed at the listener.
SCHEME_ATTACKS: list[tuple[str, str]] = [
    ("ftp://127.0.0.1{port}/", "scheme 'ftp'"),
    ("gopher://127.0.0.1{port}/_SET%20key%20value", "scheme 'gopher'"),
    ("file://localhost{port}/etc/passwd", "scheme 'file'"),
    ("dict://127.0.0.1{port}/info", "scheme 'dict'"),
    ("ldap://127.0.0.1{port}/", "scheme 'ldap'"),
    ("ws://127.0.0.1{port}/", "scheme 'ws'"),
    ("FTP://public.test{port}/", "scheme 'ftp'"),
]

#: Public hosts on ports the defaults do not allow.
PORT_ATTACKS: list[tuple[str, str]] = [
    ("http://public.test:22/", "port 22 is not one of 80, 443"),
    ("http://public.test:25/", "port 25 is not one of 80, 443"),
    ("http://public.test:6379/", "port 6379 is not one of 80, 443"),
    ("https://public.test:8443/", "port 8443 is not one of 80, 443"),
    ("http://[2606:2800:220:1:248:1893:25c8:1946]:8080/", "port 8080 is not one of 80, 443"),
    ("http://user:pw@public.test:11211/", "port 11211 is not one of 80, 443"),
]

#: URLs too malformed to become a subscriber at all.
MALFORMED = [
    "http://[fe80::1%25eth0]/",
    "http://127.0.0.1:99999/",
    "http://127.0.0.1:0/",
    "http://127.0.0.1:-1/",
    "http://[::1/",
    f"http://127.0.0.1\\@{PUBLIC_V4}/",
    "http://127.0.0.1\t/",
    "http://127.0.0.1 /",
    "http://127.0.0.1%00.public.test/",
    "file:///etc/passwd",
    "http:///hook",
    "//127.0.0.1/hook",
]

#: URLs the defaults accept: public addresses on 80/443.
PUBLIC = [
    ("https://example.com/hook", (PUBLIC_V4,)),
    ("http://example.com/hook", (PUBLIC_V4,)),
    ("HTTPS://EXAMPLE.COM./hook", (PUBLIC_V4,)),
    ("https://user:pw@example.com:443/hook", (PUBLIC_V4,)),
    ("https://public6.test/", (PUBLIC_V6,)),
    ("https://dual.test/", (PUBLIC_V4, PUBLIC_V6)),
    ("https://bücher.example/", (PUBLIC_V4,)),
    (f"https://{PUBLIC_V4}/", (PUBLIC_V4,)),
    (f"https://[{PUBLIC_V6}]/", (PUBLIC_V6,)),
    ("https://8.8.8.8/", ("8.8.8.8",)),
    ("https://[64:ff9b::5db8:d822]/", ("64:ff9b::5db8:d822",)),
    ("https://[2002:5db8:d822::1]/", ("2002:5db8:d822::1",)),
]


def ids(cases: list[tuple[str, Any]]) -> list[str]:
    """Readable test ids: the URL template without its port placeholder."""
    return [url.replace("{port}", "") for url, _ in cases]


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A socket on 127.0.0.1 that counts the connections that reach it."""
    counting = Listener()
    yield counting
    assert counting.accepted() == 0, "an attack URL reached the listener"
    counting.close()


@pytest.fixture
def resolver() -> FakeResolver:
    """The injected resolver: no DNS, only numeric forms and the names in ``HOSTS``."""
    return FakeResolver()


@pytest.fixture
def make_thorn(resolver: FakeResolver) -> Iterator[Callable[..., Thorn]]:
    """Build apps with the fake resolver and the loopback-only guard transport.

    Unless built with ``may_connect=True``, an app whose transport was asked to post
    anything fails the test when it is closed.
    """
    apps: list[tuple[Thorn, bool]] = []

    def make(settings: dict[str, Any] | None = None, *, may_connect: bool = False) -> Thorn:
        values = {"THORN_DISPATCHER": LoopbackOnlyDispatcher, **(settings or {})}
        app = Thorn(values, set_as_current=False, resolver=resolver)
        apps.append((app, may_connect))
        return app

    yield make
    for app, may_connect in apps:
        posts = app.dispatcher.transport.posts  # type: ignore[attr-defined]
        app.close()
        assert may_connect or posts == [], "an attack URL reached the transport"


@pytest.fixture
def default_app(make_thorn: Callable[..., Thorn]) -> Thorn:
    """An app with the default recipient validators (no THORN_RECIPIENT_VALIDATORS)."""
    app = make_thorn()
    assert app.settings.recipient_validators is None
    return app


@pytest.fixture
def any_port_app(make_thorn: Callable[..., Thorn]) -> Thorn:
    """The default checks minus the port rule, so an attack on the listener's port
    reaches the address checks."""
    return make_thorn(
        {"THORN_RECIPIENT_VALIDATORS": [block_internal_ips(), ensure_protocol("http", "https")]}
    )


def send(app: Thorn, url: str) -> Delivery:
    """Send one event to ``url`` alone and return its delivery."""
    (delivery,) = Event("attack.sent", app=app).send({"x": 1}, subscribers=[url]).deliveries
    return delivery


def assert_refused(delivery: Delivery, reason: str) -> None:
    """The delivery was refused before any attempt, for ``reason``."""
    assert not delivery.ok
    assert delivery.attempts == 0
    assert not delivery.retryable
    assert delivery.status_code is None
    assert isinstance(delivery.exception, RecipientRefused)
    assert "refused: " in (delivery.error or "")
    assert reason in (delivery.error or "")


class TestAddressAttacks:
    """Every internal address, in every spelling, is refused before a connection."""

    @pytest.mark.parametrize(("template", "reason"), ADDRESS_ATTACKS, ids=ids(ADDRESS_ATTACKS))
    def test_refused_by_default(self, default_app, any_port_app, listener, template, reason):
        """Refused on the default port, on the listener's port, and with the port rule off."""
        on_default_port = template.format(port="")
        on_listener = template.format(port=f":{listener.port}")

        assert_refused(send(default_app, on_default_port), reason)
        assert_refused(send(default_app, on_listener), f"port {listener.port} is not one of")
        assert_refused(send(any_port_app, on_listener), reason)
        assert listener.accepted() == 0

    @pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1", "rebind.test"])
    def test_the_listener_would_see_a_bypass(self, make_thorn, listener, host):
        """Control: with loopback allowed, the same spelling does reach the listener."""
        app = make_thorn(
            {
                "THORN_RECIPIENT_VALIDATORS": [
                    block_internal_ips(),
                    allow_cidr_network("127.0.0.0/8"),
                ]
            },
            may_connect=True,
        )
        url = f"http://{host}:{listener.port}/"

        (delivery,) = (
            Event("attack.sent", app=app).send({}, subscribers=[url], timeout=0.2).deliveries
        )

        assert delivery.timed_out
        assert listener.accepted() == 1
        (post,) = app.dispatcher.transport.posts  # type: ignore[attr-defined]
        assert post.url == url

    def test_password_is_masked_in_the_error(self, default_app):
        """A refused URL's password does not appear in the delivery error."""
        delivery = send(default_app, "http://admin:hunter2@127.0.0.1/")

        assert "hunter2" not in (delivery.error or "")
        assert "admin:***@127.0.0.1" in (delivery.error or "")

    def test_literal_hosts_are_not_resolved(self, default_app, resolver):
        """An IP literal is judged as it is; the resolver is asked about names only."""
        send(default_app, "http://[::1]/")
        send(default_app, "http://10.0.0.1/")
        send(default_app, "http://localhost./")

        assert resolver.calls == ["localhost"]

    def test_unknown_host_is_refused(self, default_app):
        """A host that does not resolve is refused, with the resolver's reason."""
        delivery = send(default_app, "http://nowhere.test/")

        assert_refused(delivery, "cannot resolve 'nowhere.test'")


class TestSchemeAndPortAttacks:
    """Only http and https, and only ports 80 and 443, pass the defaults."""

    @pytest.mark.parametrize(("template", "reason"), SCHEME_ATTACKS, ids=ids(SCHEME_ATTACKS))
    def test_scheme_refused(self, default_app, any_port_app, listener, template, reason):
        """A scheme other than http(s) is refused whatever its host and port."""
        for app, port in ((default_app, ""), (any_port_app, f":{listener.port}")):
            assert_refused(send(app, template.format(port=port)), reason)
        assert listener.accepted() == 0

    @pytest.mark.parametrize(("url", "reason"), PORT_ATTACKS, ids=ids(PORT_ATTACKS))
    def test_port_refused(self, default_app, url, reason):
        """A public host on a port other than 80 or 443 is refused."""
        assert_refused(send(default_app, url), reason)

    def test_listener_port_refused(self, default_app, listener):
        """A loopback URL on the listener's port fails the port rule before the address."""
        delivery = send(default_app, f"http://127.0.0.1:{listener.port}/")

        assert_refused(delivery, f"port {listener.port} is not one of 80, 443")
        assert listener.accepted() == 0


class TestMalformedURLs:
    """A URL that cannot be parsed is rejected when the subscriber is made."""

    @pytest.mark.parametrize("url", MALFORMED)
    def test_subscriber_refuses(self, url):
        """``Subscriber(url=...)`` raises InvalidURL."""
        with pytest.raises(InvalidURL):
            Subscriber(url=url)

    @pytest.mark.parametrize("url", ["http://[fe80::1%25eth0]/", "http://127.0.0.1:99999/"])
    def test_send_raises_at_the_call_site(self, default_app, url):
        """Passing a malformed URL to ``send`` raises at once instead of dropping it."""
        with pytest.raises((InvalidURL, InvalidSubscriber)):
            Event("attack.sent", app=default_app).send({}, subscribers=[url])


class TestStaticSubscribers:
    """Attack URLs configured in THORN_SUBSCRIBERS are refused the same way."""

    def test_every_attack_in_one_fan_out(self, make_thorn, listener):
        """All attack URLs as static subscribers of one event: each refused, none reached."""
        cases = ADDRESS_ATTACKS + SCHEME_ATTACKS
        on_listener = [template.format(port=f":{listener.port}") for template, _ in cases]
        on_default_port = [template.format(port="") for template, _ in cases]
        app = make_thorn({"THORN_SUBSCRIBERS": {"attack.*": on_listener + on_default_port}})

        result = Event("attack.sent", app=app).send({"x": 1})

        first, second = result.deliveries[: len(cases)], result.deliveries[len(cases) :]
        assert [d.subscriber.url for d in result.deliveries] == on_listener + on_default_port
        for delivery in first:
            assert_refused(delivery, "refused")
        for delivery, (_, reason) in zip(second, cases, strict=True):
            assert_refused(delivery, reason)
        assert listener.accepted() == 0


class TestPinnedResolution:
    """A host name is resolved once per delivery and the connection goes to that address."""

    def test_no_second_lookup(self, make_app, receiver):
        """A resolver that rebinds after its first answer cannot redirect the connection."""
        answers = iter([("127.0.0.1",)])
        calls: list[str] = []

        def rebinding(host: str, port: int) -> tuple[Any, ...]:
            calls.append(host)
            return tuple(ip_address(a) for a in next(answers, ("169.254.169.254",)))

        app = make_app({"THORN_DISPATCHER": LoopbackOnlyDispatcher}, resolver=rebinding)

        delivery = send(app, f"http://rebind.test:{receiver.port}/hook")

        assert delivery.ok
        assert calls == ["rebind.test"]
        (received,) = receiver.wait_for(1)
        assert received.headers["host"] == f"rebind.test:{receiver.port}"
        (post,) = app.dispatcher.transport.posts
        assert post.addresses == (ip_address("127.0.0.1"),)

    def test_host_header_keeps_the_name_on_a_reused_connection(self, make_app, receiver):
        """Every request on a pooled connection to a pinned address names the host, not the IP."""
        app = make_app(
            {"THORN_DISPATCHER": LoopbackOnlyDispatcher},
            resolver=lambda host, port: (ip_address("127.0.0.1"),),
        )
        url = f"http://rebind.test:{receiver.port}/hook"

        for n in range(3):
            assert send(app, url).ok, n

        hosts = [received.headers["host"] for received in receiver.wait_for(3)]
        assert hosts == [f"rebind.test:{receiver.port}"] * 3


class TestPublicURLs:
    """Legitimate public URLs pass the defaults (checked without any traffic)."""

    @pytest.mark.parametrize(("url", "addresses"), PUBLIC, ids=[url for url, _ in PUBLIC])
    def test_accepted(self, resolver, url, addresses):
        """The URL validates and its addresses are the ones a connection would use."""
        recipient = validate_recipient(url, default_validators(), resolver=resolver)

        assert recipient.addresses == tuple(ip_address(a) for a in addresses)
        assert recipient.target.port in (80, 443)

    def test_ensure_port_can_open_another_port(self, resolver):
        """An operator who allows port 8443 explicitly gets it, with the address checks kept."""
        validators = (block_internal_ips(), ensure_protocol("https"), ensure_port(8443))

        recipient = validate_recipient("https://public.test:8443/", validators, resolver=resolver)

        assert recipient.target.port == 8443
        with pytest.raises(RecipientRefused, match="loopback"):
            validate_recipient("https://localhost:8443/", validators, resolver=resolver)
