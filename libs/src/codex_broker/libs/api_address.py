"""The broker API's address as sealed sessions must use it: an IP literal when it is private.

Codex's managed proxy (the only way out of a sealed session's network) admits a local or private
address only when that very literal is allow-listed, and refuses a host *name* that resolves to
one even when the name is listed (a DNS-rebinding defence). In compose and k8s the http-api is
a service name resolving to a private address, so the URL handed to Codex's commands, the
developer instructions and the allow-list name the address it resolves to. k8s Service
ClusterIPs live as long as the Service; compose pins the http-api's address (compose.yaml).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

_pinned: dict[str, str] = {}  # only successful resolutions: a failed one is retried next time


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def pinned_api_base(url: str) -> str:
    """`url` with a host name that resolves to a non-public address replaced by that address."""
    if url in _pinned:
        return _pinned[url]
    parts = urlsplit(url)
    host = parts.hostname
    if host is None or host == "localhost" or is_ip_literal(host):
        return url
    try:
        infos = socket.getaddrinfo(host, parts.port or 80, type=socket.SOCK_STREAM)
    except OSError:
        return url
    address = ipaddress.ip_address(infos[0][4][0])
    if address.is_global:
        return url
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    _pinned[url] = urlunsplit(parts._replace(netloc=netloc))
    return _pinned[url]
