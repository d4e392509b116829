"""Who may call the admin API: the admin token when one is configured, loopback clients otherwise."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from enum import Enum

ADMIN_TOKEN_HEADER = "x-admin-token"


class Access(Enum):
    ALLOWED = "allowed"
    TOKEN_REQUIRED = "token_required"
    LOOPBACK_ONLY = "loopback_only"


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; anything unparsable is not loopback."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The token from `x-admin-token`, else from `Authorization: Bearer <token>`."""
    direct = headers.get(ADMIN_TOKEN_HEADER)
    if direct:
        return direct.strip()
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def token_matches(presented: str | None, expected: str) -> bool:
    # compare_digest on bytes keeps the time independent of where the strings differ
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def decide(expected_token: str | None, presented: str | None, client_host: str | None) -> Access:
    """With a token configured every caller must present it; without one only loopback is served."""
    if expected_token:
        return Access.ALLOWED if token_matches(presented, expected_token) else Access.TOKEN_REQUIRED
    return Access.ALLOWED if is_loopback(client_host) else Access.LOOPBACK_ONLY
