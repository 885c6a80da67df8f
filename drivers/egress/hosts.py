"""Which hosts an agent's sandbox may reach, and which addresses the egress proxy may connect to.

No Django imports. ``CLAUDE_AGENT_ALLOWED_HOSTS`` is parsed here (:func:`parse_allowed_hosts`);
:func:`resolve` turns an allowed host into the addresses the proxy connects to, after checking
every one of them. The rules:

- a host name (``pypi.org``, ``*.example.com``) is followed only to global addresses: a name whose
  DNS an outsider controls must not lead to the server's loopback, the cloud's metadata service
  (169.254.169.254, link-local) or the company's private network;
- an address listed itself (``10.0.5.7:8081``) is the admin's explicit choice and may be private,
  but never loopback, link-local, unspecified or multicast;
- no address of the server's own (of any of its interfaces) is ever reached: a listener on all
  interfaces answers there as on loopback;
- the proxy connects to the address it checked, never to the name again (a second lookup could
  answer something else).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# A bare host allows the two web ports; any other port is named (``host:port``).
WEB_PORTS = (80, 443)
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


class Refused(Exception):
    """A destination the sandbox may not reach; the text says why, for the agent to read."""


def normal_host(host: str) -> str:
    """``host`` in the form rules compare: lower case, no trailing dot, an IPv6 address without its
    brackets and compressed. Raises ValueError for anything that is neither a name nor an address."""
    text = host.strip().lower().removesuffix(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not text or len(text) > 253 or not all(_LABEL.fullmatch(label) for label in text.split(".")):
        raise ValueError(f"{host!r} is not a host name or an IP address")
    return text


def address_of(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo), which is where it leads."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
    return address


def never_reached(address: Address) -> str | None:
    """Why no agent ever reaches ``address``, whoever allowed it; None if it may be listed."""
    address = _embedded(address)
    if address.is_loopback:
        return "a loopback address (the server itself)"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    return None


def not_followed(address: Address) -> str | None:
    """Why a host *name* may not lead to ``address``; None for a global address."""
    if reason := never_reached(address):
        return reason
    if not _embedded(address).is_global:
        return "a private or reserved address (list the address itself to allow an internal host)"
    return None


def is_own(address: Address) -> bool:
    """Whether ``address`` is one of this machine's: only then can a socket be bound to it. (With
    ``ip_nonlocal_bind`` set, every address binds, so every one is refused: the safe side.)"""
    family = socket.AF_INET6 if isinstance(address, ipaddress.IPv6Address) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Rule:
    """One entry of the setting: a name, ``*.`` and a domain (its subdomains), or an address; a port or
    None for the web ports."""

    host: str
    port: int | None

    def matches(self, host: str, port: int) -> bool:
        if port not in ((self.port,) if self.port is not None else WEB_PORTS):
            return False
        if self.host.startswith("*."):
            return address_of(host) is None and host.endswith(self.host[1:])
        return host == self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True)
class AllowedHosts:
    rules: tuple[Rule, ...] = ()

    def allows(self, host: str, port: int) -> bool:
        """Whether ``host`` (as :func:`normal_host` gives it) and ``port`` are listed."""
        return any(rule.matches(host, port) for rule in self.rules)

    def __str__(self) -> str:
        return ",".join(map(str, self.rules))


def _entry(text: str) -> Rule:
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: write an IPv6 address as [address] or [address]:port")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    wildcard = host.startswith("*.")
    name = normal_host(host[2:] if wildcard else host)
    number = None
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
        number = int(port)
    address = address_of(name)
    if address is not None:
        if wildcard:
            raise ValueError(f"{text!r}: a wildcard takes a domain name, not an address")
        if reason := never_reached(address):
            raise ValueError(f"{text!r} is {reason}, which no agent may reach")
    if wildcard and "." not in name:
        raise ValueError(f"{text!r}: a wildcard needs a domain with a dot in it (*.example.com)")
    return Rule(f"*.{name}" if wildcard else name, number)


def parse_allowed_hosts(text: str) -> AllowedHosts:
    """``host``, ``host:port``, ``*.domain`` or an address (``10.0.5.7:8081``, ``[2001:db8::1]:443``),
    comma-separated; raises ValueError saying which entry is wrong."""
    return AllowedHosts(tuple(_entry(part.strip()) for part in text.split(",") if part.strip()))


async def resolve(host: str, port: int) -> list[Address]:
    """The addresses to connect to for ``host`` (already allowed), each checked; raises :class:`Refused`
    if any address the name has may not be reached (the whole name is refused then)."""
    literal = address_of(host)
    if literal is not None:
        if reason := never_reached(literal):
            raise Refused(f"{host} is {reason}")
        if is_own(literal):
            raise Refused(f"{host} is an address of the server itself")
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Refused(f"{host} could not be resolved: {exc.strerror or exc}") from None
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if reason := not_followed(address):
            raise Refused(f"{host} resolves to {address}, {reason}")
        if is_own(address):
            raise Refused(f"{host} resolves to {address}, an address of the server itself")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Refused(f"{host} has no address")
    return addresses
