"""Recipient validators: vet a subscriber URL and each address it resolves to, before connecting."""

from __future__ import annotations

import functools
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Any, Protocol, TypeAlias, runtime_checkable
from urllib.parse import urlsplit

import attrs

from thorn_core.exceptions import (
    ImproperlyConfigured,
    InvalidURL,
    RecipientRefused,
    ResolutionTimeout,
)

__all__ = [
    "DEFAULT_PORTS",
    "MASK",
    "RESOLVER_THREADS",
    "AddressValidator",
    "AllowCIDRNetwork",
    "AllowValidator",
    "BlockCIDRNetwork",
    "BlockInternalIPs",
    "EnsurePort",
    "EnsureProtocol",
    "IPAddress",
    "IPNetwork",
    "RecipientCache",
    "RecipientValidator",
    "Resolver",
    "Target",
    "URLValidator",
    "ValidatedRecipient",
    "ValidatorSet",
    "allow_cidr_network",
    "block_cidr_network",
    "block_internal_ips",
    "compile_validators",
    "default_validators",
    "display_url",
    "ensure_port",
    "ensure_protocol",
    "internal_address_reason",
    "load_validators",
    "parse_target",
    "resolve_within",
    "system_resolver",
    "validate_recipient",
    "validator_from_spec",
]

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network

#: Resolve ``(host, port)`` to the addresses a connection could go to.
Resolver: TypeAlias = Callable[[str, int], Sequence[IPAddress]]

#: The port a scheme implies when the URL names none.
DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}

_SETTING = "THORN_RECIPIENT_VALIDATORS"

# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

_UNSAFE_URL_CHARS = re.compile(r"[\s\x00-\x1f\x7f-\x9f\\]")
_HOST_CHARS = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


@attrs.frozen
class Target:
    """Where a URL points: lower-case scheme, normalized host, and effective port.

    ``host`` is lower-case, IDNA-encoded, without a trailing dot, and without brackets
    for an IPv6 literal. ``port`` is the explicit port, else the scheme's default, else
    None (a scheme Thorn knows no default port for).
    """

    scheme: str
    host: str
    port: int | None
    url: str


def _invalid(url: str, reason: str) -> InvalidURL:
    return InvalidURL(f"invalid URL {display_url(url)!r}: {reason}")


def _parse_port(url: str, raw: str, scheme: str) -> int | None:
    if not raw:
        return DEFAULT_PORTS.get(scheme)
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 5:
        raise _invalid(url, f"port {raw!r} is not a number")
    port = int(raw)
    if not 1 <= port <= 65535:
        raise _invalid(url, f"port {port} is out of range 1-65535")
    return port


def _normalize_host(url: str, host: str) -> str:
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise _invalid(url, "it has no host")
    try:
        encoded = host.lower().encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise _invalid(url, f"host {host!r} is not a valid domain name ({exc})") from None
    if encoded.endswith("."):  # an ideographic full stop, mapped by IDNA
        encoded = encoded[:-1]
    if not _HOST_CHARS.fullmatch(encoded):
        raise _invalid(url, f"host {host!r} is not a valid domain name or IP address")
    return encoded


def parse_target(url: object) -> Target:
    """Parse a subscriber URL into a `Target`; userinfo is ignored.

    Raises:
        InvalidURL: ``url`` is not a str, contains whitespace, control characters or a
            backslash, or lacks a scheme or host, or has a malformed host or port.
    """
    if not isinstance(url, str):
        # Not the value itself: bytes or a list may hold credentials that display_url cannot mask.
        raise InvalidURL(f"URL must be a str, not {type(url).__name__}")
    unsafe = _UNSAFE_URL_CHARS.search(url)
    if unsafe is not None:
        raise _invalid(url, f"it contains the character {unsafe.group()!r}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _invalid(url, str(exc)) from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise _invalid(url, "it has no scheme")
    if not parts.netloc:
        raise _invalid(url, "it has no host")
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.startswith("["):
        literal, bracket, rest = hostport[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise _invalid(url, "the bracketed IPv6 host is malformed")
        if "%" in literal:
            raise _invalid(url, "IPv6 zone identifiers are not allowed")
        try:
            host = str(IPv6Address(literal))
        except ValueError:
            raise _invalid(url, f"{literal!r} is not an IPv6 address") from None
        port = _parse_port(url, rest[1:], scheme)
    else:
        name, _, raw_port = hostport.partition(":")
        if ":" in raw_port:
            raise _invalid(url, "an IPv6 host must be in brackets")
        host = _normalize_host(url, name)
        port = _parse_port(url, raw_port, scheme)
    return Target(scheme=scheme, host=host, port=port, url=url)


#: What a masked credential is shown as, wherever Thorn shows one.
MASK = "***"
#: The end of a URL's authority (RFC 3986): its path, query or fragment begins.
_AUTHORITY_END = re.compile(r"[/?#]")
#: A query parameter carries a secret when its lower-cased name ends in token, secret,
#: password, passwd, signature or apikey (``access_token``, ``clientSecret``,
#: ``X-Amz-Signature``), or its last word is key, pwd, sig or auth (``api-key``).
_SECRET_PARAM = re.compile(
    r"(?:token|secret|password|passwd|signature|apikey|(?:^|[^a-z0-9])(?:key|pwd|sig|auth))$"
)


def _masked_param(param: str) -> str:
    name, eq, _ = param.partition("=")
    if eq and _SECRET_PARAM.search(name.lower()):
        return f"{name}={MASK}"
    return param


def display_url(url: str) -> str:
    """Return ``url`` with its credentials masked, for messages, logs and displays.

    The password of the userinfo is masked (``https://ada:***@host/``), and a userinfo
    without a password is masked whole (``https://***@host/``: a lone name is a token). So
    is the value of each query parameter named like a secret (``?api_key=***``, see
    ``_SECRET_PARAM``). The rest is kept as it is; masking a masked URL changes nothing.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = _AUTHORITY_END.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    userinfo, at, hostport = authority.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}:{MASK}@{hostport}" if colon else f"{MASK}@{hostport}"
    before, question, query = tail.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        params = "&".join(_masked_param(param) for param in query.split("&"))
        tail = f"{before}?{params}{hash_}{fragment}"
    return f"{scheme}://{authority}{tail}"


# ---------------------------------------------------------------------------
# Internal addresses
# ---------------------------------------------------------------------------

_V4 = IPv4Network
_V6 = IPv6Network

# IANA IPv4 special-purpose ranges that are not globally reachable, with a reason.
_IPV4_INTERNAL: tuple[tuple[IPv4Network, str], ...] = (
    (_V4("255.255.255.255/32"), "the broadcast address"),
    (_V4("0.0.0.0/32"), "the unspecified address"),
    (_V4("0.0.0.0/8"), "in 'this network' 0.0.0.0/8"),
    (_V4("127.0.0.0/8"), "a loopback address"),
    (_V4("10.0.0.0/8"), "a private address"),
    (_V4("172.16.0.0/12"), "a private address"),
    (_V4("192.168.0.0/16"), "a private address"),
    (_V4("169.254.169.254/32"), "a link-local address (cloud metadata service)"),
    (_V4("169.254.0.0/16"), "a link-local address"),
    (_V4("100.64.0.0/10"), "a carrier-grade NAT (shared) address"),
    (_V4("192.0.0.0/24"), "an IETF protocol assignment address"),
    (_V4("192.0.2.0/24"), "a documentation address"),
    (_V4("198.51.100.0/24"), "a documentation address"),
    (_V4("203.0.113.0/24"), "a documentation address"),
    (_V4("192.88.99.0/24"), "a deprecated 6to4 relay anycast address"),
    (_V4("198.18.0.0/15"), "a benchmarking address"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
)

# IPv6 ranges refused outright (embedded-IPv4 forms are judged separately, first).
_IPV6_INTERNAL: tuple[tuple[IPv6Network, str], ...] = (
    (_V6("::/128"), "the unspecified address"),
    (_V6("::1/128"), "a loopback address"),
    (_V6("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (_V6("100::/64"), "a discard-only address"),
    (_V6("2001::/32"), "a Teredo tunnel address"),
    (_V6("2001:2::/48"), "a benchmarking address"),
    (_V6("2001:db8::/32"), "a documentation address"),
    (_V6("3fff::/20"), "a documentation address"),
    (_V6("5f00::/16"), "an SRv6 segment identifier address"),
    (_V6("fc00::/7"), "a unique local address"),
    (_V6("fe80::/10"), "a link-local address"),
    (_V6("fec0::/10"), "a site-local address"),
    (_V6("ff00::/8"), "a multicast address"),
)

_IPV4_MAPPED = _V6("::ffff:0:0/96")
_IPV4_TRANSLATED = _V6("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = _V6("::/96")
_NAT64 = _V6("64:ff9b::/96")
_SIX_TO_FOUR = _V6("2002::/16")


def _embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, str] | None:
    """Return the IPv4 address an IPv6 address embeds, and the form's name, if any."""
    if ip in _IPV4_MAPPED:
        return IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-mapped"
    if ip in _IPV4_TRANSLATED:
        return IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-translated"
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-compatible"
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip in _SIX_TO_FOUR:
        return IPv4Address((int(ip) >> 80) & 0xFFFFFFFF), "6to4"
    return None


def _ipv4_reason(ip: IPv4Address) -> str | None:
    for network, reason in _IPV4_INTERNAL:
        if ip in network:
            return reason
    if not ip.is_global:
        return "not a globally routable address"
    return None


def internal_address_reason(ip: IPAddress) -> str | None:
    """Return why ``ip`` is not globally routable (e.g. ``"a loopback address"``), or None.

    IPv4-mapped, -translated and -compatible IPv6 addresses are always refused (a
    public server has no reason to publish them). NAT64 (``64:ff9b::/96``) and 6to4
    (``2002::/16``) addresses are judged by the IPv4 address they embed.
    """
    if isinstance(ip, IPv4Address):
        return _ipv4_reason(ip)
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        v4, form = embedded
        inner = _ipv4_reason(v4)
        if form in ("NAT64", "6to4"):
            return None if inner is None else f"a {form} address embedding {v4}, {inner}"
        suffix = f", {inner}" if inner is not None else ""
        return f"an {form} IPv6 address (embedding {v4}{suffix})"
    for network, reason in _IPV6_INTERNAL:
        if ip in network:
            return reason
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


# ---------------------------------------------------------------------------
# Validator protocols
# ---------------------------------------------------------------------------


@runtime_checkable
class RecipientValidator(Protocol):
    """A configured, immutable recipient check; Thorn's factories build them.

    Implementations also provide one (or more) of ``check_url`` (`URLValidator`),
    ``check_address`` (`AddressValidator`) or ``allows`` (`AllowValidator`).
    """

    def to_spec(self) -> list[Any]:
        """Return a JSON-friendly ``[name, [args...]]`` that `validator_from_spec` rebuilds."""
        ...


@runtime_checkable
class URLValidator(RecipientValidator, Protocol):
    """Checks the parsed URL (scheme, port) before any name resolution."""

    def check_url(self, target: Target) -> str | None:
        """Return why ``target`` is refused, or None if it passes."""
        ...


@runtime_checkable
class AddressValidator(RecipientValidator, Protocol):
    """Checks each address the host resolves to; every address must pass."""

    def check_address(self, ip: IPAddress) -> str | None:
        """Return why ``ip`` is refused, or None if it passes."""
        ...


@runtime_checkable
class AllowValidator(RecipientValidator, Protocol):
    """Exempts addresses from every `AddressValidator` (not from URL validators)."""

    def allows(self, ip: IPAddress) -> bool:
        """Return True if ``ip`` is exempt from address validators."""
        ...


# ---------------------------------------------------------------------------
# Built-in validators
# ---------------------------------------------------------------------------


def _networks_contain(networks: tuple[IPNetwork, ...], ip: IPAddress) -> bool:
    return any(ip in network for network in networks)


@attrs.frozen
class BlockInternalIPs:
    """Refuse any address that is not globally routable; build with `block_internal_ips`."""

    def check_address(self, ip: IPAddress) -> str | None:
        """Return why ``ip`` is internal, or None if it is globally routable."""
        reason = internal_address_reason(ip)
        return None if reason is None else f"{ip} is {reason}"

    def to_spec(self) -> list[Any]:
        """Return ``["block_internal_ips", []]``."""
        return ["block_internal_ips", []]


@attrs.frozen
class EnsureProtocol:
    """Refuse URLs whose scheme is not listed; build with `ensure_protocol`."""

    schemes: tuple[str, ...]

    def check_url(self, target: Target) -> str | None:
        """Return why the scheme of ``target`` is refused, or None."""
        if target.scheme in self.schemes:
            return None
        return f"scheme {target.scheme!r} is not one of {', '.join(self.schemes)}"

    def to_spec(self) -> list[Any]:
        """Return ``["ensure_protocol", [scheme, ...]]``."""
        return ["ensure_protocol", list(self.schemes)]


@attrs.frozen
class EnsurePort:
    """Refuse URLs whose effective port is not listed; build with `ensure_port`."""

    ports: tuple[int, ...]

    def check_url(self, target: Target) -> str | None:
        """Return why the effective port of ``target`` is refused, or None."""
        if target.port in self.ports:
            return None
        allowed = ", ".join(map(str, self.ports))
        if target.port is None:
            return (
                f"it names no port and scheme {target.scheme!r} has no default (allowed: {allowed})"
            )
        return f"port {target.port} is not one of {allowed}"

    def to_spec(self) -> list[Any]:
        """Return ``["ensure_port", [port, ...]]``."""
        return ["ensure_port", list(self.ports)]


@attrs.frozen
class BlockCIDRNetwork:
    """Refuse addresses inside these networks; build with `block_cidr_network`.

    An IPv6 address that embeds an IPv4 address (mapped, compatible, NAT64, 6to4) is
    also refused when the embedded address is in a blocked IPv4 network. Addresses an
    `AllowCIDRNetwork` allows are exempt.
    """

    networks: tuple[IPNetwork, ...]

    def check_address(self, ip: IPAddress) -> str | None:
        """Return why ``ip`` is refused, or None if it is outside every network."""
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, IPv6Address):
            embedded = _embedded_ipv4(ip)
            if embedded is not None:
                candidates.append(embedded[0])
        for candidate in candidates:
            for network in self.networks:
                if candidate in network:
                    return f"{ip} is in the blocked network {network}"
        return None

    def to_spec(self) -> list[Any]:
        """Return ``["block_cidr_network", [cidr, ...]]``."""
        return ["block_cidr_network", [str(network) for network in self.networks]]


@attrs.frozen
class AllowCIDRNetwork:
    """Exempt addresses inside these networks from address validators.

    Build with `allow_cidr_network`. An allowed address skips `block_internal_ips` and
    `block_cidr_network`; scheme and port validators still apply to the URL.
    """

    networks: tuple[IPNetwork, ...]

    def allows(self, ip: IPAddress) -> bool:
        """Return True if ``ip`` is inside one of the allowed networks."""
        return _networks_contain(self.networks, ip)

    def to_spec(self) -> list[Any]:
        """Return ``["allow_cidr_network", [cidr, ...]]``."""
        return ["allow_cidr_network", [str(network) for network in self.networks]]


# ---------------------------------------------------------------------------
# Factories
# ---------------------------------------------------------------------------

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def block_internal_ips() -> BlockInternalIPs:
    """Refuse every address that is not globally routable (see `internal_address_reason`).

    Loopback, private, link-local (including the 169.254.169.254 metadata service),
    carrier-grade NAT, unspecified, reserved, multicast, broadcast, documentation and
    benchmarking ranges; unique-local and site-local IPv6; Teredo; IPv4-mapped,
    -translated and -compatible IPv6; NAT64 and 6to4 addresses embedding such an IPv4
    address. Addresses exempted by `allow_cidr_network` pass.
    """
    return BlockInternalIPs()


def ensure_protocol(*schemes: str) -> EnsureProtocol:
    """Accept only URLs whose (case-insensitive) scheme is one of ``schemes``.

    Raises:
        ImproperlyConfigured: no scheme given, or one is not a valid scheme name.
    """
    if not schemes:
        raise ImproperlyConfigured("ensure_protocol() needs at least one scheme")
    normalized: list[str] = []
    for scheme in schemes:
        if not isinstance(scheme, str) or not _SCHEME.fullmatch(scheme.lower()):
            raise ImproperlyConfigured(f"ensure_protocol(): {scheme!r} is not a URL scheme")
        if scheme.lower() not in normalized:
            normalized.append(scheme.lower())
    return EnsureProtocol(schemes=tuple(normalized))


def ensure_port(*ports: int) -> EnsurePort:
    """Accept only URLs whose effective port (explicit, else 80/443 by scheme) is listed.

    Raises:
        ImproperlyConfigured: no port given, or one is not an int in 1-65535.
    """
    if not ports:
        raise ImproperlyConfigured("ensure_port() needs at least one port")
    normalized: list[int] = []
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ImproperlyConfigured(f"ensure_port(): {port!r} is not a port in 1-65535")
        if port not in normalized:
            normalized.append(port)
    return EnsurePort(ports=tuple(normalized))


def _networks(factory: str, cidrs: tuple[str | IPNetwork, ...]) -> tuple[IPNetwork, ...]:
    if not cidrs:
        raise ImproperlyConfigured(f"{factory}() needs at least one network")
    networks: list[IPNetwork] = []
    for cidr in cidrs:
        if isinstance(cidr, (IPv4Network, IPv6Network)):
            network: IPNetwork = cidr
        elif isinstance(cidr, str):
            try:
                network = ip_network(cidr)
            except ValueError as exc:
                raise ImproperlyConfigured(
                    f"{factory}(): {cidr!r} is not a network: {exc}"
                ) from None
        else:
            raise ImproperlyConfigured(f"{factory}(): {cidr!r} is not a CIDR string")
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def block_cidr_network(*cidrs: str | IPNetwork) -> BlockCIDRNetwork:
    """Refuse addresses inside any of ``cidrs`` (e.g. ``"10.0.0.0/8"``).

    Addresses exempted by `allow_cidr_network` pass.

    Raises:
        ImproperlyConfigured: no network given, or one is malformed or has host bits set.
    """
    return BlockCIDRNetwork(networks=_networks("block_cidr_network", cidrs))


def allow_cidr_network(*cidrs: str | IPNetwork) -> AllowCIDRNetwork:
    """Let an operator reach named ranges on purpose (e.g. ``"127.0.0.0/8"`` in tests).

    An address inside one of ``cidrs`` is exempt from `block_internal_ips` and
    `block_cidr_network`; scheme and port validators still apply.

    Raises:
        ImproperlyConfigured: no network given, or one is malformed or has host bits set.
    """
    return AllowCIDRNetwork(networks=_networks("allow_cidr_network", cidrs))


def default_validators() -> tuple[RecipientValidator, ...]:
    """Return Thorn's defaults: block internal IPs, http/https only, ports 80/443 only."""
    return (block_internal_ips(), ensure_protocol("http", "https"), ensure_port(80, 443))


_FACTORIES: dict[str, Callable[..., RecipientValidator]] = {
    "block_internal_ips": block_internal_ips,
    "ensure_protocol": ensure_protocol,
    "ensure_port": ensure_port,
    "block_cidr_network": block_cidr_network,
    "allow_cidr_network": allow_cidr_network,
}


def validator_from_spec(spec: object) -> RecipientValidator:
    """Rebuild a validator from its `to_spec` form: ``[name, [args...]]``, ``[name]`` or ``name``.

    Raises:
        ImproperlyConfigured: the spec is malformed, names no known validator, or has bad arguments.
    """
    if isinstance(spec, str):
        name: object = spec
        args: object = []
    elif isinstance(spec, (list, tuple)) and len(spec) in (1, 2):
        name = spec[0]
        args = spec[1] if len(spec) == 2 else []
    else:
        raise ImproperlyConfigured(f"validator spec must be [name, [args...]], not {spec!r}")
    if not isinstance(name, str) or name not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES))
        raise ImproperlyConfigured(f"unknown recipient validator {name!r} (known: {known})")
    if not isinstance(args, (list, tuple)):
        raise ImproperlyConfigured(f"arguments of validator {name!r} must be a list, not {args!r}")
    return _FACTORIES[name](*args)


def load_validators(value: object) -> tuple[RecipientValidator, ...]:
    """Build validators from the ``THORN_RECIPIENT_VALIDATORS`` setting.

    ``value`` is a list or tuple whose items are validator objects or specs (see
    `validator_from_spec`).

    Raises:
        ImproperlyConfigured: ``value`` or one of its items is not understood.
    """
    if not isinstance(value, (list, tuple)):
        raise ImproperlyConfigured(
            f"{_SETTING} must be a list of validators or specs, "
            f"not {type(value).__name__}: {value!r}"
        )
    validators: list[RecipientValidator] = []
    for index, item in enumerate(value):
        if isinstance(item, (str, list, tuple)):
            try:
                validators.append(validator_from_spec(item))
            except ImproperlyConfigured as exc:
                raise ImproperlyConfigured(f"{_SETTING}[{index}]: {exc}") from None
        elif isinstance(item, (URLValidator, AddressValidator, AllowValidator)):
            validators.append(item)
        else:
            raise ImproperlyConfigured(
                f"{_SETTING}[{index}] is neither a recipient validator nor a spec: {item!r}"
            )
    return tuple(validators)


# ---------------------------------------------------------------------------
# Resolution and validation
# ---------------------------------------------------------------------------


def _addresses(infos: Sequence[tuple[Any, ...]]) -> tuple[IPAddress, ...]:
    found: dict[IPAddress, None] = {}
    for info in infos:
        found[ip_address(info[4][0])] = None
    return tuple(found)


def system_resolver(host: str, port: int) -> tuple[IPAddress, ...]:
    """Resolve ``host`` the way the operating system would for a TCP connection.

    Numeric forms (``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``) are read
    as numbers with ``AI_NUMERICHOST`` first, without a DNS query; anything else goes
    through ``socket.getaddrinfo``.

    Raises:
        RecipientRefused: ``host`` does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise RecipientRefused(f"cannot resolve {host!r}: {exc}") from None
    return _addresses(infos)


#: Resolutions that may run at once in resolver threads (see :func:`resolve_within`).
RESOLVER_THREADS = 16
_resolver_slots = threading.BoundedSemaphore(RESOLVER_THREADS)


def _new_resolver_slots() -> None:
    """A forked child starts with every slot free (its parent's resolver threads are gone)."""
    global _resolver_slots
    _resolver_slots = threading.BoundedSemaphore(RESOLVER_THREADS)


if hasattr(os, "register_at_fork"):  # pragma: no branch - every POSIX Python has it
    os.register_at_fork(after_in_child=_new_resolver_slots)


def resolve_within(
    resolver: Resolver, host: str, port: int, timeout: float
) -> tuple[IPAddress, ...]:
    """``resolver(host, port)``, waited for at most ``timeout`` seconds.

    ``getaddrinfo`` cannot be cancelled, so the resolver runs in a daemon thread and the
    caller stops waiting at the deadline; a resolver that hangs keeps only its thread. At
    most :data:`RESOLVER_THREADS` resolutions run at once: when that many hang, the next
    ones wait for a free slot within their own timeout, so hung resolvers cannot pile up
    threads without bound.

    Raises:
        ResolutionTimeout: no answer within ``timeout`` seconds.
        RecipientRefused, OSError, UnicodeError: as the resolver raises them.
    """
    deadline = time.monotonic() + timeout
    slots = _resolver_slots
    if not slots.acquire(timeout=max(timeout, 0.0)):
        raise ResolutionTimeout(
            f"cannot resolve {host!r} within {timeout:.3g} s: "
            f"{RESOLVER_THREADS} resolutions are already waiting for the resolver"
        )
    done = threading.Event()
    outcome: list[tuple[IPAddress, ...] | BaseException] = []

    def run() -> None:
        try:
            outcome.append(tuple(resolver(host, port)))
        except BaseException as exc:  # handed to the waiting caller
            outcome.append(exc)
        finally:
            slots.release()
            done.set()

    thread = threading.Thread(target=run, name="thorn-resolver", daemon=True)
    try:
        thread.start()
    except BaseException:
        slots.release()
        raise
    if not done.wait(max(deadline - time.monotonic(), 0.0)):
        raise ResolutionTimeout(f"cannot resolve {host!r} within {timeout:.3g} s")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


@attrs.frozen
class ValidatedRecipient:
    """A URL that passed validation, and the addresses checked (connect only to these).

    ``addresses`` is empty when no address validator is configured (nothing was resolved).
    """

    target: Target
    addresses: tuple[IPAddress, ...]


def _resolve(
    target: Target, resolver: Resolver, timeout: float | None = None
) -> tuple[IPAddress, ...]:
    try:
        literal = ip_address(target.host)
    except ValueError:
        pass
    else:
        return (literal,)
    port = target.port if target.port is not None else 0
    try:
        if timeout is None:
            resolved = tuple(resolver(target.host, port))
        else:
            resolved = resolve_within(resolver, target.host, port, timeout)
    except (RecipientRefused, ResolutionTimeout):
        raise
    except (OSError, UnicodeError) as exc:
        raise RecipientRefused(f"cannot resolve {target.host!r}: {exc}") from None
    if not resolved:
        raise RecipientRefused(f"{target.host!r} resolves to no address")
    return resolved


@attrs.frozen(cache_hash=True)
class ValidatorSet:
    """Validators sorted by kind once, so that a delivery runs no protocol checks.

    Iterating gives the validators in their configured order.
    """

    validators: tuple[RecipientValidator, ...]
    url_checks: tuple[URLValidator, ...] = attrs.field(init=False, eq=False, repr=False)
    address_checks: tuple[AddressValidator, ...] = attrs.field(init=False, eq=False, repr=False)
    allow_checks: tuple[AllowValidator, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        kinds = (
            ("url_checks", URLValidator),
            ("address_checks", AddressValidator),
            ("allow_checks", AllowValidator),
        )
        for name, kind in kinds:
            object.__setattr__(self, name, tuple(v for v in self.validators if isinstance(v, kind)))

    def __iter__(self) -> Iterator[RecipientValidator]:
        return iter(self.validators)

    def __len__(self) -> int:
        return len(self.validators)


@functools.lru_cache(maxsize=256)
def _compiled(validators: tuple[RecipientValidator, ...]) -> ValidatorSet:
    return ValidatorSet(validators)


def compile_validators(
    validators: ValidatorSet | Iterable[RecipientValidator],
) -> ValidatorSet:
    """The :class:`ValidatorSet` of ``validators`` (memoised: configured sets are few)."""
    if isinstance(validators, ValidatorSet):
        return validators
    return _compiled(tuple(validators))


class RecipientCache:
    """Validated recipients kept for ``ttl`` seconds, so a busy sender resolves and checks a
    URL once per ``ttl`` rather than once per delivery.

    Only approvals are kept: a refused URL is checked again every time. Keeping an approval
    is safe against DNS rebinding, since the connection goes to the addresses validated
    then, not to what the name resolves to later.
    """

    MAX_ENTRIES = 4096

    def __init__(self, ttl: float, resolver: Resolver = system_resolver) -> None:
        self.ttl = ttl
        self.resolver = resolver
        self._entries: dict[tuple[str, ValidatorSet], tuple[float, ValidatedRecipient]] = {}

    def validate(
        self, url: str, validators: ValidatorSet, *, timeout: float | None = None
    ) -> ValidatedRecipient:
        """Like :func:`validate_recipient`, answered from the cache while fresh.

        Raises:
            InvalidURL, RecipientRefused, ResolutionTimeout: as :func:`validate_recipient`.
        """
        key = (url, validators)
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        recipient = validate_recipient(url, validators, resolver=self.resolver, timeout=timeout)
        if self.ttl > 0:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now + self.ttl, recipient)
        return recipient

    def clear(self) -> None:
        """Forget every approval."""
        self._entries.clear()


def validate_recipient(
    url: str,
    validators: ValidatorSet | Sequence[RecipientValidator],
    *,
    resolver: Resolver = system_resolver,
    timeout: float | None = None,
) -> ValidatedRecipient:
    """Check ``url`` against ``validators`` before any connection is made.

    Order: parse the URL; run URL validators; then, if any address validator is
    configured, resolve the host and check every address (each must pass unless an
    `AllowValidator` exempts it). IP-literal hosts are not sent to the resolver. With
    ``timeout``, resolution may take that many seconds at most (:func:`resolve_within`).

    Raises:
        InvalidURL: ``url`` is malformed.
        RecipientRefused: a validator refused the URL or an address, or the host does
            not resolve; the message names the URL and the reason.
        ResolutionTimeout: the host did not resolve within ``timeout``.
    """
    target = parse_target(url)
    shown = display_url(url)
    checks = compile_validators(validators)
    url_checks = checks.url_checks
    address_checks = checks.address_checks
    allow_checks = checks.allow_checks
    for url_check in url_checks:
        reason = url_check.check_url(target)
        if reason is not None:
            raise RecipientRefused(f"{shown} refused: {reason}")
    if not address_checks:
        return ValidatedRecipient(target=target, addresses=())
    try:
        addresses = _resolve(target, resolver, timeout)
    except RecipientRefused as exc:
        raise RecipientRefused(f"{shown} refused: {exc}") from None
    except ResolutionTimeout as exc:
        raise ResolutionTimeout(f"{shown}: {exc}") from None
    for ip in addresses:
        if any(allow.allows(ip) for allow in allow_checks):
            continue
        for address_check in address_checks:
            reason = address_check.check_address(ip)
            if reason is not None:
                raise RecipientRefused(f"{shown} refused: {reason}")
    return ValidatedRecipient(target=target, addresses=addresses)
