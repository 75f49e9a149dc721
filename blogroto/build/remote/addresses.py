"""Which addresses a fetch may connect to: the host is resolved once, here, and refused if ANY of
its addresses is not a public one (SSRF: cloud metadata endpoints, services on the build's network).
The connection is then pinned to the addresses returned (`blogroto.build.remote.connection`)."""

from __future__ import annotations

import ipaddress
import socket

from blogroto.build.remote.policy import RemoteImageError

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_KINDS = [
    ("is_unspecified", "an unspecified"),
    ("is_loopback", "a loopback"),
    ("is_link_local", "a link-local"),
    ("is_multicast", "a multicast"),
    ("is_private", "a private"),
    ("is_reserved", "a reserved"),
]


def checked_addresses(url: str, where: str, host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses `host` resolves to, each one allowed (unless `allow_private`, public only).
    `where` ends each message (the redirect the host came from, if any)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise RemoteImageError(url, f"cannot resolve host {host!r}{where}: {exc}") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise RemoteImageError(url, f"host {host!r} has no addresses{where}")
    if not allow_private:
        # Every address, not just the first: the connection could otherwise land on any of them.
        for address in addresses:
            problem = address_refusal(address)
            if problem:
                raise RemoteImageError(url, f"refused: {host} resolves to {problem}{where}")
    return addresses


def address_refusal(address: str) -> str | None:
    """Why an address may not be fetched from by default, or None when it is a public one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return f"an unparseable address {address!r}"
    candidates = [ip]
    if ip.version == 6:
        # IPv6 forms that carry an IPv4 address the traffic ends up at. Mapped and NAT64 (DNS64
        # on IPv6-only networks) addresses are judged by that IPv4 address alone: the outer
        # prefix counts as "reserved" in some Python versions, which would refuse public hosts.
        if ip.ipv4_mapped is not None:
            candidates = [ip.ipv4_mapped]
        elif ip in _NAT64:
            candidates = [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
        if ip.teredo:
            candidates.extend(ip.teredo)
    for candidate in candidates:
        for attr, label in _KINDS:
            if getattr(candidate, attr):
                return f"{label} address {address}"
        if not candidate.is_global:  # e.g. 100.64/10 carrier-grade NAT
            return f"non-public address {address}"
    return None
