"""Who may call the admin API, as pure rules over request facts.

There is no network exception: a session's commands run on the same machine (loopback) or in
the same cluster, so being near the http-api proves nothing. A caller presents the admin token
(`x-admin-token` or `Authorization: Bearer`), or the admin cookie the login endpoint set after
checking that token (or a one-time code `codex-broker up` printed).

The cookie is what a browser sends by itself, so cookie-authenticated requests get the checks a
header token does not need: the Host must be one this http-api is meant to be reached by (a DNS
rebinding page reaches 127.0.0.1 under its own name), and state-changing requests must be JSON
with an Origin, when one is sent, equal to the Host (cross-site forms cannot send JSON, and a
cross-site fetch of JSON needs a preflight nobody answers).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

ADMIN_TOKEN_HEADER = "x-admin-token"
COOKIE_NAME = "cb_admin"
COOKIE_PATH = "/admin"
COOKIE_VERSION = "v1"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str


AUTH_REQUIRED = Refusal(401, "admin_auth_required")
HOST_REFUSED = Refusal(403, "admin_host_refused")
ORIGIN_MISMATCH = Refusal(403, "admin_origin_mismatch")
JSON_REQUIRED = Refusal(415, "admin_json_required")


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


def token_matches(presented: str | None, expected: str | None) -> bool:
    # compare_digest on bytes keeps the time independent of where the strings differ
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


# ---- the cookie ------------------------------------------------------------------------------
# `v1.<expires unix s>.<nonce>.<hmac>`: stateless, so every http-api replica accepts it, and
# keyed by the admin token, so rotating the token ends every browser session.


def _mac(token: str, payload: str) -> str:
    return hmac.new(token.encode(), f"cb-admin-cookie|{payload}".encode(), hashlib.sha256).hexdigest()


def mint_cookie(token: str, now_s: int, ttl_s: int) -> str:
    payload = f"{COOKIE_VERSION}.{now_s + ttl_s}.{secrets.token_urlsafe(12)}"
    return f"{payload}.{_mac(token, payload)}"


def cookie_valid(value: str | None, token: str | None, now_s: int) -> bool:
    if not value or not token:
        return False
    payload, _, mac = value.rpartition(".")
    version, _, rest = payload.partition(".")
    expires, _, _nonce = rest.partition(".")
    if version != COOKIE_VERSION or not expires.isdigit() or int(expires) <= now_s:
        return False
    return hmac.compare_digest(mac.encode(), _mac(token, payload).encode())


# ---- request shape ---------------------------------------------------------------------------


def host_name(host_header: str | None) -> str:
    """`example.org:3000` → `example.org`, `[::1]:3000` → `::1`, lower-cased."""
    if not host_header:
        return ""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def allowed_hosts(configured: Iterable[str], bind_host: str) -> frozenset[str]:
    """ADMIN_ALLOWED_HOSTS when set, else the loopback names plus the bind address (unless it is
    a wildcard, which names no host)."""
    names = {host_name(name) for name in configured if name.strip()}
    if names:
        return frozenset(names)
    defaults = set(LOOPBACK_NAMES)
    if bind_host not in WILDCARD_HOSTS:
        defaults.add(bind_host.strip("[]").lower())
    return frozenset(defaults)


def origin_matches(origin: str | None, host_header: str | None) -> bool:
    """No Origin (curl, same-origin GETs) passes; otherwise its host[:port] must be the Host."""
    if origin is None:
        return True
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or not host_header:
        return False  # includes `Origin: null` (sandboxed frames, file: pages)
    return parts.netloc.lower() == host_header.strip().lower()


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json"


@dataclass(frozen=True)
class RequestFacts:
    method: str
    headers: Mapping[str, str]
    cookie: str | None
    now_s: int


def decide(facts: RequestFacts, expected_token: str | None, hosts: frozenset[str]) -> Refusal | None:
    """None when the request may go on; else the refusal to answer with."""
    by_header = token_matches(presented_token(facts.headers), expected_token)
    if not by_header:
        if not cookie_valid(facts.cookie, expected_token, facts.now_s):
            return AUTH_REQUIRED
        if host_name(facts.headers.get("host")) not in hosts:
            return HOST_REFUSED
    return shape_refusal(facts)


def shape_refusal(facts: RequestFacts) -> Refusal | None:
    """The checks of a state-changing request (also the login endpoint's, which has no auth yet)."""
    if facts.method.upper() not in STATE_CHANGING:
        return None
    if not origin_matches(facts.headers.get("origin"), facts.headers.get("host")):
        return ORIGIN_MISMATCH
    if not is_json(facts.headers.get("content-type")):
        return JSON_REQUIRED
    return None
