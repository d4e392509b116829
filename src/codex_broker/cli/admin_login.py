"""The admin side of `codex-broker up`: an admin token when none is configured, and a one-time
login code for the admin page.

The code goes into Redis as its sha256 with a short TTL; the http-api's login endpoint redeems
it once (GETDEL) and sets the admin cookie. `up` prints it in a URL fragment (`#code=`), which a
browser never sends to the server, so neither the code nor the token lands in a request log.
"""

from __future__ import annotations

import hashlib
import secrets

from redis.asyncio import Redis

from codex_broker.cli import local_secrets
from codex_broker.cli.config import Settings
from codex_broker.libs.keys import Keys

CODE_TTL_S = 15 * 60
CODE_BYTES = 24
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def ensure_admin_token(settings: Settings, base_env: dict[str, str]) -> list[str]:
    """Without BROKER_ADMIN_TOKEN (environment or .env), put the stored one into the children's
    environment (plan.SECRET_OWNERS passes it to the http-api only); the note to print."""
    if settings.broker_admin_token is not None:
        return []
    token = local_secrets.load_or_create(settings.data_root, local_secrets.ADMIN_TOKEN)
    base_env["BROKER_ADMIN_TOKEN"] = token
    path = local_secrets.secret_path(settings.data_root, local_secrets.ADMIN_TOKEN)
    return [f"BROKER_ADMIN_TOKEN unset: the admin API takes the token stored in {path}"]


def page_url(host: str, port: int) -> str:
    """The admin page's address as a browser on this machine reaches it."""
    shown = "127.0.0.1" if host in WILDCARD_HOSTS else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/admin"


def code_sha256(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


async def issue_code(redis_url: str, keys: Keys, ttl_s: int = CODE_TTL_S) -> str:
    code = secrets.token_urlsafe(CODE_BYTES)
    client = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.set(keys.admin_login_code(code_sha256(code)), "1", ex=ttl_s)
    finally:
        await client.aclose()
    return code
