"""Where the crawler may connect. Every request is http(s); links found inside documents may not
reach loopback, private, link-local, multicast or otherwise non-public addresses.

Two parts, because Scrapy has no single place that sees both the request and the address:

* ``LinkGuard``, a downloader middleware, sees each request (including every redirect, which
  comes back through it) and knows which source it came from (``meta["origin"]``). It refuses
  other schemes, and private IP literals linked from a public source.
* ``GuardedResolver``, the reactor's name resolver, runs when the connection is made, so a name
  that resolved to a public address when it was checked and to 127.0.0.1 a second later (DNS
  rebinding) is still refused. It also applies ``crawl.hosts``, fixed addresses for names.

The rule (see README "Security and limits"): a request may reach a private address when
``crawl.allow_private`` is set, when its host is exactly the host of the source that linked to it
(the operator chose it), or when that source is itself on a private host as written in its URL
(an IP literal in those ranges, ``localhost`` or ``*.localhost``: an intranet or test site).
The resolver cannot tell which source asked, so for host *names* it is a little wider: the host
name of any configured source may resolve privately, and so may a name once let through for a
source on a private host. ``crawl.hosts`` only replaces DNS; the rule applies to its addresses.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.exceptions import CannotResolveHostError, IgnoreRequest
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from zope.interface import implementer, provider

from monitor.normalize import WEB_SCHEMES

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(IgnoreRequest):
    """A request the guard would not send; the message is the reason shown per article."""


def ip_literal(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def is_private_address(address: IPAddress) -> bool:
    """Loopback, RFC 1918 / ULA, link-local (169.254.169.254, the cloud metadata service),
    multicast, reserved, unspecified, and anything else that is not globally routable
    (100.64.0.0/10 carrier NAT, documentation ranges)."""
    return (address.is_loopback or address.is_private or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified
            or not address.is_global)


def is_private_host(host: str) -> bool:
    """A host that is private as written: a private IP literal, localhost or *.localhost."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = ip_literal(name)
    return address is not None and is_private_address(address)


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


@provider(IResolutionReceiver)
class _Filter:
    """Passes resolved addresses on, dropping private ones for a name that may not have them.
    When every address was dropped, the resolver remembers why, for LinkGuard's message."""

    def __init__(self, receiver: Any, name: str, guard: GuardedResolver, allowed: bool) -> None:
        self.receiver, self.name, self.guard, self.allowed = receiver, name, guard, allowed
        self.passed: list[Any] = []
        self.dropped: list[str] = []

    def resolutionBegan(self, resolution: Any) -> None:
        self.receiver.resolutionBegan(resolution)

    def addressResolved(self, address: Any) -> None:
        parsed = ip_literal(getattr(address, "host", ""))
        if not self.allowed and (parsed is None or is_private_address(parsed)):
            self.dropped.append(str(parsed or address))
            return
        self.passed.append(address)
        self.receiver.addressResolved(address)

    def resolutionComplete(self) -> None:
        if self.dropped and not self.passed:
            self.guard.refused[self.name] = self.dropped[0]
        else:
            self.guard.refused.pop(self.name, None)
        self.receiver.resolutionComplete()


@implementer(IHostnameResolver)
class GuardedResolver:
    """The reactor's name resolver while the monitor runs (installed by LinkGuard)."""

    def __init__(self, upstream: Any) -> None:
        self.upstream = upstream
        self.allow_private = False
        self.pins: dict[str, tuple[str, ...]] = {}
        self.trusted: set[str] = set()  # configured source hosts
        self.learned: set[str] = set()  # names let through for sources on private hosts
        self.refused: dict[str, str] = {}  # name → the private address it resolved to

    def configure(self, allow_private: bool, pins: Mapping[str, Sequence[str]],
                  trusted: Iterable[str]) -> None:
        self.allow_private = allow_private
        self.pins = {name.lower(): tuple(addresses) for name, addresses in pins.items()}
        self.trusted = {name.lower() for name in trusted}

    def may_resolve_privately(self, name: str) -> bool:
        return self.allow_private or name in self.trusted or name in self.learned

    def resolveHostName(
        self, resolutionReceiver: Any, hostName: str, portNumber: int = 0,
        addressTypes: Any = None, transportSemantics: str = "TCP",
    ) -> Any:
        name = hostName.lower().rstrip(".")
        receiver = _Filter(resolutionReceiver, name, self, self.may_resolve_privately(name))
        if name in self.pins:
            return self._pinned(receiver, name, portNumber)
        return self.upstream.resolveHostName(receiver, hostName, portNumber, addressTypes,
                                             transportSemantics)

    def _pinned(self, receiver: _Filter, name: str, port: int) -> Any:
        from scrapy.resolver import HostResolution

        resolution = HostResolution(name)
        receiver.resolutionBegan(resolution)
        for text in self.pins[name]:
            address = ipaddress.ip_address(text)
            if address.version == 6:
                receiver.addressResolved(IPv6Address("TCP", text, port))
            else:
                receiver.addressResolved(IPv4Address("TCP", text, port))
        receiver.resolutionComplete()
        return resolution


def install_resolver(allow_private: bool, pins: Mapping[str, Sequence[str]],
                     trusted: Iterable[str]) -> GuardedResolver:
    """Put the guard in front of the reactor's resolver (once) and give it the current config."""
    from twisted.internet import reactor

    current = reactor.nameResolver
    guard = current if isinstance(current, GuardedResolver) else GuardedResolver(current)
    guard.configure(allow_private, pins, trusted)
    if guard is not current:
        reactor.installNameResolver(guard)
    return guard


class LinkGuard:
    """Downloader middleware: refuses requests the rule above does not allow, before they are
    sent, and names the reason when the resolver refused an address at connection time."""

    def __init__(self, guard: GuardedResolver) -> None:
        self.guard = guard

    @classmethod
    def from_crawler(cls, crawler: Any) -> LinkGuard:
        settings = crawler.settings
        return cls(install_resolver(
            settings.getbool("MONITOR_ALLOW_PRIVATE"),
            settings.getdict("MONITOR_HOSTS"),
            settings.getlist("MONITOR_SOURCE_HOSTS"),
        ))

    def process_request(self, request: Request, spider: Any = None) -> None:
        parts = urlparse_cached(request)
        if parts.scheme not in WEB_SCHEMES:
            raise Refused(f"refused: {parts.scheme or 'no'} scheme, only http and https are fetched")
        host = (parts.hostname or "").lower()
        origin = request.meta.get("origin")
        if self.guard.allow_private or origin is None:
            return  # Scrapy's own requests (robots.txt) follow one that passed here
        origin_host = _host(origin)
        if host == origin_host or is_private_host(origin_host):
            # The operator chose this host, or the source is an intranet site: its links may
            # lead to private names, and the resolver must let this one through.
            self.guard.learned.add(host)
            return
        address = ip_literal(host)
        if address is not None and is_private_address(address):
            raise Refused(f"refused: {host} is a private address")

    def process_exception(self, request: Request, exception: BaseException, spider: Any = None) -> None:
        if isinstance(exception, (DNSLookupError, CannotResolveHostError)):
            host = (urlparse_cached(request).hostname or "").lower()
            address = self.guard.refused.pop(host, None)
            if address is not None:
                raise Refused(f"refused: {host} resolves to private address {address}")
