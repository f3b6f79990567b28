"""Tests for recipient validators: URL parsing, internal-address detection and validation."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import pytest

from thorn_core.exceptions import ImproperlyConfigured, InvalidURL, RecipientRefused
from thorn_core.validators import (
    AllowCIDRNetwork,
    BlockCIDRNetwork,
    BlockInternalIPs,
    EnsurePort,
    EnsureProtocol,
    IPAddress,
    RecipientValidator,
    Target,
    ValidatedRecipient,
    allow_cidr_network,
    block_cidr_network,
    block_internal_ips,
    default_validators,
    display_url,
    ensure_port,
    ensure_protocol,
    internal_address_reason,
    load_validators,
    parse_target,
    system_resolver,
    validate_recipient,
    validator_from_spec,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1::"


class FakeResolver:
    """Resolve names from a table, numeric hosts as the OS reads them, and nothing else."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {name: [ip_address(a) for a in addrs] for name, addrs in table.items()}
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append((host, port))
        if host in self.table:
            return list(self.table[host])
        try:
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        except socket.gaierror:
            raise RecipientRefused(f"cannot resolve {host!r}") from None
        return [ip_address(info[4][0]) for info in infos]


def never_resolve(host: str, port: int) -> list[IPAddress]:
    """A resolver for tests that must not resolve anything."""
    raise AssertionError(f"resolver called for {host}:{port}")


@pytest.fixture
def resolver() -> FakeResolver:
    """A fake DNS with public, internal and mixed names."""
    return FakeResolver(
        {
            "example.com": [PUBLIC_V4, PUBLIC_V6],
            "api.example.com": [PUBLIC_V4],
            "v6only.example": [PUBLIC_V6],
            "xn--bcher-kva.example": [PUBLIC_V4],
            "localhost": ["127.0.0.1", "::1"],
            "internal.example": ["10.0.0.5"],
            "127.0.0.1.nip.io": ["127.0.0.1"],
            "metadata.google.internal": ["169.254.169.254"],
            "mixed.example": [PUBLIC_V4, "10.0.0.1"],
            "mixed6.example": [PUBLIC_V6, "::1"],
            "mapped.example": ["::ffff:127.0.0.1"],
            "cgnat.example": ["100.64.0.1"],
        }
    )


HOSTILE_URLS = [
    # IPv4 loopback, and the numeric spellings the OS reads as loopback
    "http://127.0.0.1/",
    "http://127.0.0.1:80/",
    "https://127.0.0.1:443/",
    "http://127.1/",
    "http://127.0.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://127.255.255.254/",
    "http://①②⑦.0.0.1/",
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",
    "http://127.0.0.1./",
    # unspecified / this network
    "http://0/",
    "http://0.0.0.0/",
    "http://0.1.2.3/",
    # IPv6 loopback and unspecified
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::]/",
    # IPv4 embedded in IPv6
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    f"http://[::ffff:{PUBLIC_V4}]/",
    "https://[::ffff:169.254.169.254]/",
    "http://[::127.0.0.1]/",
    "http://[::ffff:0:127.0.0.1]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[64:ff9b::10.0.0.1]/",
    "http://[64:ff9b:1::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[2002:c0a8:101::1]/",
    "http://[2001::1]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    # other internal IPv6
    "http://[fe80::1]/",
    "http://[fec0::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456:789a::1]/",
    "http://[ff02::1]/",
    "http://[ff0e::1]/",
    "http://[2001:db8::1]/",
    "http://[3fff::1]/",
    "http://[100::1]/",
    # metadata, link-local, CGNAT, private, multicast, broadcast, reserved, documentation
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.0.1/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://192.0.2.1/",
    "http://198.51.100.7/",
    "http://203.0.113.9/",
    "http://198.18.0.1/",
    "http://192.0.0.8/",
    # names resolving to internal addresses
    "http://localhost/",
    "http://localhost./",
    "http://LOCALHOST/",
    "http://internal.example/",
    "http://127.0.0.1.nip.io/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://mapped.example/",
    "http://cgnat.example/",
    "http://mixed.example/",
    "http://mixed6.example/",
    "http://unresolvable.example/",
    # userinfo does not change the host
    "http://user@127.0.0.1/",
    "http://user:pass@127.0.0.1/",
    f"http://{PUBLIC_V4}@127.0.0.1/",
    "http://example.com@localhost/",
    # wrong ports and schemes
    "http://example.com:8080/",
    "https://example.com:22/",
    "http://example.com:6379/",
    "https://example.com:8443/",
    "ftp://example.com/",
    "file://localhost/etc/passwd",
    "gopher://example.com:80/",
    "ws://example.com/",
    "javascript://example.com/%0aalert(1)",
]


class TestDefaultsRefuseHostileURLs:
    """The default validators refuse every URL that could reach an internal service."""

    def test_table_is_large(self) -> None:
        """The hostile table keeps at least forty entries."""
        assert len(HOSTILE_URLS) >= 40

    @pytest.mark.parametrize("url", HOSTILE_URLS)
    def test_refused(self, url: str, resolver: FakeResolver) -> None:
        """Each hostile URL raises RecipientRefused naming the URL."""
        with pytest.raises(RecipientRefused, match="refused") as info:
            validate_recipient(url, default_validators(), resolver=resolver)
        assert str(info.value).startswith(f"{display_url(url)} refused")

    def test_message_names_reason(self) -> None:
        """The message names the URL, the address and what kind of address it is."""
        with pytest.raises(RecipientRefused) as info:
            validate_recipient("http://127.0.0.1/", default_validators(), resolver=never_resolve)
        assert str(info.value) == "http://127.0.0.1/ refused: 127.0.0.1 is a loopback address"

    def test_message_masks_password(self) -> None:
        """A password in the URL's userinfo never appears in the message."""
        with pytest.raises(RecipientRefused) as info:
            validate_recipient(
                "http://me:s3cret@127.0.0.1/", default_validators(), resolver=never_resolve
            )
        assert "s3cret" not in str(info.value)

    def test_unresolvable_names_host(self, resolver: FakeResolver) -> None:
        """A host that does not resolve is refused with 'cannot resolve'."""
        with pytest.raises(RecipientRefused, match=re.escape("cannot resolve 'nowhere.example'")):
            validate_recipient("http://nowhere.example/", default_validators(), resolver=resolver)

    def test_mixed_resolution_refuses_whole_host(self, resolver: FakeResolver) -> None:
        """One internal address among public ones refuses the host, naming that address."""
        with pytest.raises(RecipientRefused, match=r"10\.0\.0\.1 is a private address"):
            validate_recipient("http://mixed.example/", default_validators(), resolver=resolver)

    def test_refused_url_makes_no_connection(self) -> None:
        """Validating a refused loopback URL never connects to the listener."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            port = listener.getsockname()[1]
            for validators in (default_validators(), (block_internal_ips(),)):
                with pytest.raises(RecipientRefused):
                    validate_recipient(f"http://127.0.0.1:{port}/", validators)
            listener.setblocking(False)
            with pytest.raises(BlockingIOError):
                listener.accept()


LEGITIMATE = [
    ("https://example.com/hooks", "example.com", 443, (PUBLIC_V4, PUBLIC_V6)),
    ("http://example.com/", "example.com", 80, (PUBLIC_V4, PUBLIC_V6)),
    ("https://example.com:443/x?y=1#frag", "example.com", 443, (PUBLIC_V4, PUBLIC_V6)),
    ("http://example.com:443/", "example.com", 443, (PUBLIC_V4, PUBLIC_V6)),
    ("HTTPS://API.Example.COM/Path", "api.example.com", 443, (PUBLIC_V4,)),
    ("https://example.com./", "example.com", 443, (PUBLIC_V4, PUBLIC_V6)),
    ("https://user:pw@api.example.com/", "api.example.com", 443, (PUBLIC_V4,)),
    ("https://v6only.example/", "v6only.example", 443, (PUBLIC_V6,)),
    ("https://bücher.example/", "xn--bcher-kva.example", 443, (PUBLIC_V4,)),
    (f"http://{PUBLIC_V4}/", PUBLIC_V4, 80, (PUBLIC_V4,)),
    (f"https://[{PUBLIC_V6}]/", PUBLIC_V6, 443, (PUBLIC_V6,)),
    ("https://[2001:4860:4860::8888]:443/", "2001:4860:4860::8888", 443, ("2001:4860:4860::8888",)),
    ("http://[64:ff9b::93.184.216.34]/", "64:ff9b::5db8:d822", 80, ("64:ff9b::5db8:d822",)),
]


class TestDefaultsAcceptPublicURLs:
    """The default validators let ordinary public URLs through."""

    @pytest.mark.parametrize(("url", "host", "port", "addresses"), LEGITIMATE)
    def test_accepted(
        self,
        url: str,
        host: str,
        port: int,
        addresses: tuple[str, ...],
        resolver: FakeResolver,
    ) -> None:
        """The URL passes with its normalized host, effective port and checked addresses."""
        result = validate_recipient(url, default_validators(), resolver=resolver)
        assert isinstance(result, ValidatedRecipient)
        assert result.target.host == host
        assert result.target.port == port
        assert result.target.url == url
        assert result.addresses == tuple(ip_address(a) for a in addresses)

    def test_ip_literal_skips_resolver(self) -> None:
        """An IP-literal host is checked without calling the resolver."""
        result = validate_recipient(
            f"http://{PUBLIC_V4}/", default_validators(), resolver=never_resolve
        )
        assert result.addresses == (IPv4Address(PUBLIC_V4),)

    def test_resolver_gets_effective_port(self, resolver: FakeResolver) -> None:
        """The resolver is asked for the host and its effective port."""
        validate_recipient("https://api.example.com/", default_validators(), resolver=resolver)
        assert resolver.calls == [("api.example.com", 443)]

    def test_no_address_validator_resolves_nothing(self) -> None:
        """Without address validators nothing is resolved and addresses is empty."""
        result = validate_recipient(
            "http://internal.example/", [ensure_protocol("http")], resolver=never_resolve
        )
        assert result.addresses == ()

    def test_no_validators_at_all(self) -> None:
        """An empty validator list accepts any well-formed URL."""
        result = validate_recipient("http://10.0.0.1:6379/", [], resolver=never_resolve)
        assert result.target == Target("http", "10.0.0.1", 6379, "http://10.0.0.1:6379/")


class TestAllowCIDRNetwork:
    """allow_cidr_network exempts named ranges from address validators, not URL validators."""

    @pytest.fixture
    def validators(self) -> tuple[RecipientValidator, ...]:
        """Defaults plus an allow-list for IPv4 loopback."""
        return (*default_validators(), allow_cidr_network("127.0.0.0/8"))

    def test_opens_loopback(self, validators: tuple[RecipientValidator, ...]) -> None:
        """A loopback URL on port 80 passes once 127.0.0.0/8 is allowed."""
        result = validate_recipient("http://127.0.0.1/", validators, resolver=never_resolve)
        assert result.addresses == (IPv4Address("127.0.0.1"),)

    def test_opens_names_resolving_inside(
        self, validators: tuple[RecipientValidator, ...], resolver: FakeResolver
    ) -> None:
        """A name resolving only into the allowed range passes."""
        result = validate_recipient("http://127.0.0.1.nip.io/", validators, resolver=resolver)
        assert result.addresses == (IPv4Address("127.0.0.1"),)

    def test_port_still_applies(self, validators: tuple[RecipientValidator, ...]) -> None:
        """ensure_port still refuses a port outside the list on an allowed address."""
        with pytest.raises(RecipientRefused, match="port 8080 is not one of 80, 443"):
            validate_recipient("http://127.0.0.1:8080/", validators, resolver=never_resolve)

    def test_scheme_still_applies(self, validators: tuple[RecipientValidator, ...]) -> None:
        """ensure_protocol still refuses a scheme outside the list on an allowed address."""
        with pytest.raises(RecipientRefused, match="scheme 'ftp'"):
            validate_recipient("ftp://127.0.0.1:80/", validators, resolver=never_resolve)

    @pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://[::1]/", "http://localhost/"])
    def test_other_ranges_stay_blocked(
        self, url: str, validators: tuple[RecipientValidator, ...], resolver: FakeResolver
    ) -> None:
        """Addresses outside the allowed range are still refused (localhost also gives ::1)."""
        with pytest.raises(RecipientRefused):
            validate_recipient(url, validators, resolver=resolver)

    def test_exempts_from_block_cidr(self) -> None:
        """An allowed address inside a blocked network passes; its neighbours do not."""
        validators: list[RecipientValidator] = [
            block_cidr_network("93.184.216.0/24"),
            allow_cidr_network("93.184.216.34"),
        ]
        validate_recipient("http://93.184.216.34/", validators, resolver=never_resolve)
        with pytest.raises(RecipientRefused, match=re.escape("blocked network 93.184.216.0/24")):
            validate_recipient("http://93.184.216.35/", validators, resolver=never_resolve)

    def test_allows(self) -> None:
        """allows() is True inside the networks and False outside or for the other family."""
        allow = allow_cidr_network("127.0.0.0/8", "fd00::/8")
        assert allow.allows(IPv4Address("127.9.9.9"))
        assert allow.allows(IPv6Address("fd00::1"))
        assert not allow.allows(IPv4Address("128.0.0.1"))
        assert not allow.allows(IPv6Address("::ffff:127.0.0.1"))


class TestBlockCIDRNetwork:
    """block_cidr_network refuses addresses inside the named networks."""

    def test_refuses_inside(self) -> None:
        """An address inside a blocked network is refused."""
        with pytest.raises(
            RecipientRefused, match=re.escape("in the blocked network 93.184.216.0/24")
        ):
            validate_recipient(
                "http://93.184.216.34/",
                [block_cidr_network("93.184.216.0/24")],
                resolver=never_resolve,
            )

    def test_passes_outside(self) -> None:
        """An address outside every blocked network passes."""
        check = block_cidr_network("93.184.216.0/24", "2606:2800::/32")
        assert check.check_address(IPv4Address("1.1.1.1")) is None
        assert check.check_address(IPv6Address("2001:4860::1")) is None
        assert check.check_address(IPv6Address("2606:2800:220:1::")) is not None

    @pytest.mark.parametrize(
        "ip", ["::ffff:93.184.216.34", "64:ff9b::93.184.216.34", "2002:5db8:d822::1"]
    )
    def test_refuses_embedded_ipv4(self, ip: str) -> None:
        """An IPv6 address embedding a blocked IPv4 address is refused."""
        check = block_cidr_network("93.184.216.0/24")
        assert check.check_address(IPv6Address(ip)) is not None


INTERNAL_ADDRESSES = [
    ("0.0.0.0", "unspecified"),  # noqa: S104 (an address under test, nothing binds)
    ("0.1.2.3", "this network"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.255", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.0.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("192.0.0.1", "IETF protocol"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"),
    ("192.88.99.1", "6to4 relay"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "IPv4-mapped"),
    ("::ffff:10.0.0.1", "IPv4-mapped"),
    ("::ffff:93.184.216.34", "IPv4-mapped"),
    ("::ffff:0:127.0.0.1", "IPv4-translated"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("64:ff9b::127.0.0.1", "NAT64 address embedding 127.0.0.1, a loopback"),
    ("64:ff9b::169.254.169.254", "NAT64 address embedding 169.254.169.254"),
    ("64:ff9b::100.64.0.1", "carrier-grade NAT"),
    ("64:ff9b:1::7f00:1", "local-use NAT64"),
    ("64:ff9b:1:ffff::5db8:d822", "local-use NAT64"),
    ("2002:7f00:1::", "6to4 address embedding 127.0.0.1"),
    ("2002:a00:1::1", "6to4 address embedding 10.0.0.1"),
    ("2002:a9fe:a9fe::", "6to4 address embedding 169.254.169.254"),
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:2::1", "benchmarking"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard-only"),
    ("5f00::1", "SRv6"),
    ("fc00::1", "unique local"),
    ("fdff:ffff::1", "unique local"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("feff::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("4000::1", "reserved"),
]

PUBLIC_ADDRESSES = [
    PUBLIC_V4,
    "1.1.1.1",
    "8.8.8.8",
    "100.63.255.255",
    "100.128.0.0",
    "172.32.0.1",
    "192.0.3.1",
    "223.255.255.254",
    PUBLIC_V6,
    "2001:4860:4860::8888",
    "2a00:1450:4001::1",
    "64:ff9b::93.184.216.34",
    "2002:5db8:d822::1",
]


class TestInternalAddressReason:
    """internal_address_reason names every non-global form and passes public addresses."""

    @pytest.mark.parametrize(("ip", "reason"), INTERNAL_ADDRESSES)
    def test_internal(self, ip: str, reason: str) -> None:
        """Each internal address gets a reason naming its kind."""
        found = internal_address_reason(ip_address(ip))
        assert found is not None
        assert reason in found

    @pytest.mark.parametrize("ip", PUBLIC_ADDRESSES)
    def test_public(self, ip: str) -> None:
        """Each public address, including NAT64 and 6to4 of a public IPv4, has no reason."""
        assert internal_address_reason(ip_address(ip)) is None

    def test_block_internal_ips_message(self) -> None:
        """block_internal_ips prefixes the reason with the address."""
        reason = block_internal_ips().check_address(IPv6Address("::ffff:169.254.169.254"))
        assert reason == (
            "::ffff:a9fe:a9fe is an IPv4-mapped IPv6 address (embedding 169.254.169.254, "
            "a link-local address (cloud metadata service))"
        )


class TestParseTarget:
    """parse_target normalizes scheme, host and port, and refuses malformed URLs."""

    @pytest.mark.parametrize(
        ("url", "scheme", "host", "port"),
        [
            ("http://example.com/", "http", "example.com", 80),
            ("HTTPS://Example.COM/", "https", "example.com", 443),
            ("https://example.com:8443/x", "https", "example.com", 8443),
            ("http://example.com:/", "http", "example.com", 80),
            ("http://example.com./", "http", "example.com", 80),
            ("http://user@127.0.0.1/", "http", "127.0.0.1", 80),
            ("http://user:p@ss@127.0.0.1:81/", "http", "127.0.0.1", 81),
            ("http://[::1]/", "http", "::1", 80),
            ("http://[0:0:0:0:0:0:0:1]:8080/", "http", "::1", 8080),
            ("http://[::FFFF:127.0.0.1]/", "http", "::ffff:7f00:1", 80),
            ("https://bücher.example/", "https", "xn--bcher-kva.example", 443),
            ("https://BÜCHER.example/", "https", "xn--bcher-kva.example", 443),
            ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "http", "127.0.0.1", 80),
            ("http://my_host.example/", "http", "my_host.example", 80),
            ("ws://example.com/", "ws", "example.com", None),
        ],
    )
    def test_parses(self, url: str, scheme: str, host: str, port: int | None) -> None:
        """The URL yields the expected normalized Target."""
        assert parse_target(url) == Target(scheme=scheme, host=host, port=port, url=url)

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("", "no scheme"),
            ("example.com", "no scheme"),
            ("//example.com/", "no scheme"),
            ("localhost:8000", "no host"),
            ("http://", "no host"),
            ("http:///path", "no host"),
            ("file:///etc/passwd", "no host"),
            ("http://user@/", "no host"),
            ("http://./", "no host"),
            ("http://exa mple.com/", "character ' '"),
            (" http://example.com/", "character ' '"),
            ("http://example.com/\n", "character '\\\\n'"),
            ("http://example.com/\t", "character '\\\\t'"),
            ("http://ex\x00ample.com/", "character '\\\\x00'"),
            ("http://example.com\u3000/", "character"),
            ("http://example.com\\@127.0.0.1/", "character"),
            ("http://example.com:abc/", "not a number"),
            ("http://example.com:+80/", "not a number"),
            ("http://example.com:\uff18\uff10/", "not a number"),
            ("http://example.com:0/", "out of range"),
            ("http://example.com:65536/", "out of range"),
            ("http://example.com:99999999999/", "not a number"),
            ("http://[::1/", "IPv6"),
            ("http://[::1]x/", "bracketed"),
            ("http://[fe80::1%25eth0]/", "zone"),
            ("http://[127.0.0.1]/", "not an IPv6 address|cannot be in brackets"),
            ("http://::1/", "brackets"),
            ("http://exa%6dple.com/", "not a valid domain"),
            ("http://ex!ample.com/", "not a valid domain"),
            ("http://a..b/", "not a valid domain"),
            ("http://" + "a" * 64 + ".com/", "not a valid domain"),
        ],
    )
    def test_refuses(self, url: str, reason: str) -> None:
        """A malformed URL raises InvalidURL with the reason."""
        with pytest.raises(InvalidURL, match=reason):
            parse_target(url)

    @pytest.mark.parametrize("url", [None, 42, b"http://example.com/", ["http://x/"]])
    def test_refuses_non_str(self, url: object) -> None:
        """A non-str URL raises InvalidURL naming its type."""
        with pytest.raises(InvalidURL, match=type(url).__name__):
            parse_target(url)

    def test_validate_recipient_raises_invalid_url(self) -> None:
        """validate_recipient lets InvalidURL through for a malformed URL."""
        with pytest.raises(InvalidURL):
            validate_recipient("not a url", default_validators(), resolver=never_resolve)


class TestURLValidators:
    """ensure_protocol and ensure_port judge the parsed URL."""

    def test_protocol_case_insensitive(self) -> None:
        """Schemes are compared lower-case on both sides."""
        check = ensure_protocol("HTTPS")
        assert check.schemes == ("https",)
        assert check.check_url(parse_target("HTTPS://example.com/")) is None
        assert check.check_url(parse_target("http://example.com/")) == (
            "scheme 'http' is not one of https"
        )

    def test_port_effective(self) -> None:
        """ensure_port compares the effective port, explicit or implied by the scheme."""
        check = ensure_port(443)
        assert check.check_url(parse_target("https://example.com/")) is None
        assert check.check_url(parse_target("http://example.com:443/")) is None
        assert check.check_url(parse_target("http://example.com/")) == "port 80 is not one of 443"

    def test_port_unknown_default(self) -> None:
        """A scheme with no default port and no explicit port is refused by ensure_port."""
        reason = ensure_port(80).check_url(parse_target("ws://example.com/"))
        assert reason is not None
        assert "names no port" in reason


class TestResolvers:
    """system_resolver reads numeric hosts as the OS does and reports failures."""

    @pytest.fixture
    def no_dns(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        """Make every non-numeric getaddrinfo call fail, and record those calls."""
        real = socket.getaddrinfo
        lookups: list[str] = []

        def fake(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("flags", 0) & socket.AI_NUMERICHOST:
                return real(host, port, *args, **kwargs)
            lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        monkeypatch.setattr(socket, "getaddrinfo", fake)
        return lookups

    @pytest.mark.parametrize(
        "host", ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1"]
    )
    def test_numeric_forms(self, host: str, no_dns: list[str]) -> None:
        """Numeric spellings of loopback resolve to 127.0.0.1 without a name lookup."""
        assert system_resolver(host, 80) == (IPv4Address("127.0.0.1"),)
        assert no_dns == []

    def test_ipv6_literal(self, no_dns: list[str]) -> None:
        """An IPv6 literal resolves to itself without a name lookup."""
        assert system_resolver("::1", 80) == (IPv6Address("::1"),)
        assert no_dns == []

    def test_unresolvable(self, no_dns: list[str]) -> None:
        """A name that does not resolve raises RecipientRefused('cannot resolve ...')."""
        with pytest.raises(RecipientRefused, match=re.escape("cannot resolve 'nowhere.example'")):
            system_resolver("nowhere.example", 80)
        assert no_dns == ["nowhere.example"]

    def test_numeric_trick_via_validate(self, no_dns: list[str]) -> None:
        """validate_recipient with the system resolver refuses 2130706433 as loopback."""
        with pytest.raises(RecipientRefused, match=re.escape("127.0.0.1 is a loopback address")):
            validate_recipient("http://2130706433/", default_validators())

    def test_resolver_os_error(self) -> None:
        """A custom resolver raising OSError refuses the URL as unresolvable."""

        def broken(host: str, port: int) -> list[IPAddress]:
            raise OSError("network down")

        with pytest.raises(RecipientRefused, match=re.escape("cannot resolve 'example.com'")):
            validate_recipient("http://example.com/", default_validators(), resolver=broken)

    def test_resolver_empty(self) -> None:
        """A resolver that returns no address refuses the URL."""
        with pytest.raises(RecipientRefused, match="resolves to no address"):
            validate_recipient(
                "http://example.com/", default_validators(), resolver=lambda host, port: []
            )


ALL_VALIDATORS: list[RecipientValidator] = [
    block_internal_ips(),
    ensure_protocol("http", "https"),
    ensure_port(80, 443, 8443),
    block_cidr_network("10.0.0.0/8", "fd00::/8"),
    allow_cidr_network("127.0.0.0/8", "::1/128"),
]


class TestSpecs:
    """Validators round-trip through JSON-friendly specs."""

    @pytest.mark.parametrize("validator", ALL_VALIDATORS, ids=lambda v: type(v).__name__)
    def test_round_trip(self, validator: RecipientValidator) -> None:
        """to_spec survives JSON and validator_from_spec rebuilds an equal validator."""
        spec = json.loads(json.dumps(validator.to_spec()))
        assert validator_from_spec(spec) == validator

    def test_spec_shapes(self) -> None:
        """Specs are [name, [args...]]."""
        assert [v.to_spec() for v in ALL_VALIDATORS] == [
            ["block_internal_ips", []],
            ["ensure_protocol", ["http", "https"]],
            ["ensure_port", [80, 443, 8443]],
            ["block_cidr_network", ["10.0.0.0/8", "fd00::/8"]],
            ["allow_cidr_network", ["127.0.0.0/8", "::1/128"]],
        ]

    def test_short_forms(self) -> None:
        """A bare name or a one-item list builds a validator without arguments."""
        assert validator_from_spec("block_internal_ips") == BlockInternalIPs()
        assert validator_from_spec(["block_internal_ips"]) == BlockInternalIPs()
        assert validator_from_spec(("ensure_port", (80,))) == EnsurePort((80,))

    def test_immutable_and_hashable(self) -> None:
        """Validators are frozen values usable as set members."""
        check = ensure_port(80)
        with pytest.raises(AttributeError):
            check.ports = (81,)  # type: ignore[misc]
        assert len(set(ALL_VALIDATORS)) == len(ALL_VALIDATORS)

    def test_defaults(self) -> None:
        """default_validators blocks internal IPs and allows http/https on 80/443."""
        assert default_validators() == (
            BlockInternalIPs(),
            EnsureProtocol(("http", "https")),
            EnsurePort((80, 443)),
        )

    def test_load_mixed(self) -> None:
        """load_validators accepts objects and specs side by side, in order."""
        loaded = load_validators(
            [block_internal_ips(), ["ensure_port", [443]], ("allow_cidr_network", ["10.0.0.0/8"])]
        )
        assert loaded == (
            BlockInternalIPs(),
            EnsurePort((443,)),
            AllowCIDRNetwork((ip_network("10.0.0.0/8"),)),
        )

    def test_load_custom_validator(self) -> None:
        """A third-party object with to_spec and check_url is accepted as is."""

        class NoQuery:
            def check_url(self, target: Target) -> str | None:
                return "has a query" if "?" in target.url else None

            def to_spec(self) -> list[Any]:
                return ["no_query", []]

        custom = NoQuery()
        assert load_validators((custom,)) == (custom,)
        with pytest.raises(RecipientRefused, match="has a query"):
            validate_recipient("http://example.com/?a", [custom], resolver=never_resolve)

    def test_load_empty(self) -> None:
        """An empty list disables validation."""
        assert load_validators([]) == ()


class TestConfigurationErrors:
    """Bad validator arguments and settings raise ImproperlyConfigured when configured."""

    @pytest.mark.parametrize(
        ("factory", "args", "reason"),
        [
            (ensure_port, (), "at least one port"),
            (ensure_port, (0,), "not a port"),
            (ensure_port, (65536,), "not a port"),
            (ensure_port, (-1,), "not a port"),
            (ensure_port, (True,), "not a port"),
            (ensure_port, ("80",), "not a port"),
            (ensure_protocol, (), "at least one scheme"),
            (ensure_protocol, ("",), "not a URL scheme"),
            (ensure_protocol, ("ht tp",), "not a URL scheme"),
            (ensure_protocol, ("http://",), "not a URL scheme"),
            (ensure_protocol, (1,), "not a URL scheme"),
            (block_cidr_network, (), "at least one network"),
            (block_cidr_network, ("10.0.0.0/33",), "not a network"),
            (block_cidr_network, ("not-a-cidr",), "not a network"),
            (block_cidr_network, ("10.0.0.1/8",), "host bits set"),
            (block_cidr_network, (10,), "not a CIDR string"),
            (allow_cidr_network, (), "at least one network"),
            (allow_cidr_network, ("127.0.0.0/-1",), "not a network"),
            (allow_cidr_network, (None,), "not a CIDR string"),
        ],
    )
    def test_factory_errors(self, factory: Any, args: tuple[Any, ...], reason: str) -> None:
        """Each bad argument raises ImproperlyConfigured with the reason."""
        with pytest.raises(ImproperlyConfigured, match=reason):
            factory(*args)

    @pytest.mark.parametrize(
        ("spec", "reason"),
        [
            ("nope", "unknown recipient validator 'nope'"),
            (["nope", []], "unknown recipient validator"),
            ([], "must be"),
            (["ensure_port", [80], "extra"], "must be"),
            (42, "must be"),
            ({"ensure_port": [80]}, "must be"),
            ([1, []], "unknown recipient validator"),
            (["ensure_port", 80], "must be a list"),
            (["ensure_port", []], "at least one port"),
            (["block_cidr_network", ["bad"]], "not a network"),
        ],
    )
    def test_spec_errors(self, spec: object, reason: str) -> None:
        """A malformed spec raises ImproperlyConfigured with the reason."""
        with pytest.raises(ImproperlyConfigured, match=reason):
            validator_from_spec(spec)

    @pytest.mark.parametrize(
        "value",
        [None, "block_internal_ips", {"ensure_port": [80]}, 42, [object()], [["nope"]], [None]],
    )
    def test_load_errors(self, value: object) -> None:
        """A bad THORN_RECIPIENT_VALIDATORS value names the setting."""
        with pytest.raises(ImproperlyConfigured, match="THORN_RECIPIENT_VALIDATORS"):
            load_validators(value)

    def test_accepts_network_objects(self) -> None:
        """Factories also take ipaddress network objects, deduplicated."""
        check = block_cidr_network(ip_network("10.0.0.0/8"), "10.0.0.0/8")
        assert check == BlockCIDRNetwork((ip_network("10.0.0.0/8"),))
