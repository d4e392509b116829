"""Sign-in of the web chat (pure): the admin token once, then a signed HttpOnly cookie.

The cookie holds the user name the person chose (their identity for access control, /usage and
participants), when it was issued, and an HMAC over both. The HMAC key is derived from the admin
token, so rotating the token signs every browser out. Without a token nobody signs in: loopback
is never trusted (a sealed session's proxy, another local user and a DNS-rebound page all come
from it); `up` always makes one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
from enum import Enum

COOKIE_NAME = "cb_web"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class SignIn(Enum):
    ALLOWED = "allowed"
    BAD_TOKEN = "bad_token"
    TOKEN_UNSET = "token_unset"


def cookie_key(admin_token: str | None, stored_random: bytes | None) -> bytes:
    if admin_token:
        return hashlib.sha256(b"codex-broker web cookie\0" + admin_token.encode()).digest()
    assert stored_random, "without an admin token the random key from Redis is needed"
    return stored_random


def code_sha256(code: str) -> str:
    """How `up`'s one-time sign-in codes are stored (cli/admin_login.py): never the code itself."""
    return hashlib.sha256(code.encode()).hexdigest()


def valid_name(name: str) -> bool:
    return bool(NAME_PATTERN.fullmatch(name))


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def decide_sign_in(expected_token: str | None, presented: str, client_host: str | None) -> SignIn:
    """The admin token is required; without one configured nobody signs in (whatever the client)."""
    if not expected_token:
        return SignIn.TOKEN_UNSET
    same = hmac.compare_digest(presented.encode(), expected_token.encode())
    return SignIn.ALLOWED if same else SignIn.BAD_TOKEN


def host_name(host_header: str) -> str:
    """The host of a Host header without its port ('[::1]:3100' → '[::1]')."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def host_allowed(host_header: str, *, token_configured: bool, public_host: str | None) -> bool:
    """Without a token a page on another site could reach the chat through DNS rebinding (its
    own name resolving to 127.0.0.1): then only loopback names (and the configured public one)
    may be the Host. With a token the cookie is what counts."""
    if token_configured:
        return True
    name = host_name(host_header).lower()
    return name in LOOPBACK_HOSTS or (public_host is not None and name == public_host.lower())


def _mac(key: bytes, user: str, issued_s: int) -> str:
    digest = hmac.new(key, f"{user}\0{issued_s}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, user: str, issued_s: int) -> str:
    return f"{user}.{issued_s}.{_mac(key, user, issued_s)}"


def verify(key: bytes, cookie: str | None, *, now_s: int, max_age_s: int) -> str | None:
    """The signed-in user name, or None for a missing, forged or expired cookie."""
    if not cookie:
        return None
    parts = cookie.split(".")
    if len(parts) < 3:
        return None
    mac, issued_raw, user = parts[-1], parts[-2], ".".join(parts[:-2])
    if not valid_name(user) or not issued_raw.isdigit():
        return None
    issued = int(issued_raw)
    if not hmac.compare_digest(mac, _mac(key, user, issued)):
        return None
    if issued > now_s + 60 or now_s - issued > max_age_s:
        return None
    return user
