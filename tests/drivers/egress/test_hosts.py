"""Which hosts an agent's sandbox may reach (drivers/egress/hosts.py): the setting's entries, how a
host and port are matched, and which addresses a name may lead to (real lookups, real sockets)."""

from __future__ import annotations

import ipaddress

import pytest

from drivers.egress import Refused, parse_allowed_hosts
from drivers.egress.hosts import never_reached, not_followed, resolve


def test_entries_are_names_wildcards_and_addresses_with_or_without_a_port() -> None:
    allowed = parse_allowed_hosts(" PyPI.org., *.npmjs.org ,registry.example.com:8443, 10.0.5.7:8081,[2001:db8::1]:443")
    assert str(allowed) == "pypi.org,*.npmjs.org,registry.example.com:8443,10.0.5.7:8081,[2001:db8::1]:443"
    # A bare host allows the web ports only.
    assert allowed.allows("pypi.org", 443) and allowed.allows("pypi.org", 80)
    assert not allowed.allows("pypi.org", 22) and not allowed.allows("files.pypi.org", 443)
    # A wildcard is its subdomains, at any depth, not the domain itself nor a look-alike.
    assert allowed.allows("registry.npmjs.org", 443) and allowed.allows("a.b.npmjs.org", 80)
    assert not allowed.allows("npmjs.org", 443) and not allowed.allows("evilnpmjs.org", 443)
    assert allowed.allows("registry.example.com", 8443) and not allowed.allows("registry.example.com", 443)
    assert allowed.allows("10.0.5.7", 8081) and not allowed.allows("10.0.5.8", 8081)
    assert allowed.allows("2001:db8::1", 443)
    assert not parse_allowed_hosts("").allows("pypi.org", 443)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("127.0.0.1:8000", "'127.0.0.1:8000' is a loopback address (the server itself), which no agent may reach"),
        ("169.254.169.254", "is a link-local address (where cloud metadata services answer)"),
        ("[fe80::1]:80", "is a link-local address"),
        ("[::ffff:127.0.0.1]", "is a loopback address"),
        ("0.0.0.0", "the unspecified address"),
        ("pypi.org:http", "the port must be a number from 1 to 65535"),
        ("pypi.org:70000", "the port must be a number from 1 to 65535"),
        ("*.10.0.0.1", "a wildcard takes a domain name"),
        ("*.org", "a wildcard needs a domain with a dot"),
        ("pypi.org/simple", "is not a host name or an IP address"),
        ("user@pypi.org", "is not a host name or an IP address"),
    ],
)
def test_a_malformed_or_forbidden_entry_is_refused_with_what_is_wrong(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        parse_allowed_hosts(value)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "::1", "169.254.169.254", "fe80::1", "0.0.0.0", "::", "224.0.0.1", "::ffff:127.0.0.1"],
)
def test_loopback_link_local_unspecified_and_multicast_are_never_reached(address: str) -> None:
    assert never_reached(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00:ec2::254", "2002:a00:1::"]
)
def test_a_name_is_not_followed_to_a_private_address_but_the_address_may_be_listed(address: str) -> None:
    assert not_followed(ipaddress.ip_address(address))
    assert never_reached(ipaddress.ip_address(address)) is None


async def test_a_name_is_refused_when_any_of_its_addresses_may_not_be_reached() -> None:
    # localhost has 127.0.0.1 (and ::1): refused, whatever else it has.
    with pytest.raises(Refused, match=r"localhost resolves to .*, a loopback address"):
        await resolve("localhost", 443)


async def test_an_address_of_the_server_itself_is_refused_even_when_listed() -> None:
    own = _own_address()
    with pytest.raises(Refused, match=f"{own} is an address of the server itself"):
        await resolve(own, 443)


async def test_an_unknown_name_is_refused_with_what_the_lookup_said() -> None:
    with pytest.raises(Refused, match=r"no-such-host\.invalid could not be resolved"):
        await resolve("no-such-host.invalid", 443)


async def test_a_listed_address_is_connected_to_as_it_is() -> None:
    assert await resolve("203.0.113.9", 443) == [ipaddress.ip_address("203.0.113.9")]


def _own_address() -> str:
    """An address of this machine's other than loopback (the one its default route leaves from)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.123", 9))  # no packet is sent: it only picks the route
        own: str = probe.getsockname()[0]
    if ipaddress.ip_address(own).is_loopback:
        pytest.skip("this machine has no address but loopback")
    return own
