"""`up`'s one-time sign-in codes (cli/admin_login.py), redeemed by the web chat's login."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from codex_broker.ingress_web.auth import code_sha256
from codex_broker.libs.keys import Keys


@dataclass(frozen=True)
class LoginCodes:
    redis: Redis
    keys: Keys

    async def redeem(self, code: str) -> bool:
        """True once per code (GETDEL of its sha256), False for a used, expired or made-up one."""
        return await self.redis.getdel(self.keys.admin_login_code(code_sha256(code))) is not None
