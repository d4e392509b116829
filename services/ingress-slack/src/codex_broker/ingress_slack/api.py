"""The one way this service calls the Slack Web API: retries, Retry-After, metrics, typed errors."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from codex_broker.ingress_slack import metrics
from codex_broker.ingress_slack.errors import SlackCallError, classify, metric_error

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def make_web_client(
    token: str, base_url: str, *, timeout_s: float, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """Without `session`, slack_sdk opens a new HTTP session — a new TCP (and TLS) connection —
    for every call; give it a long-lived one (created with the call timeout) to reuse connections."""
    # retry_handlers=[]: SlackApi does all retrying, so attempts and waits are counted once
    return AsyncWebClient(
        token=token, base_url=base_url, timeout=int(max(1, timeout_s)), session=session, retry_handlers=[]
    )


def api_session(timeout_s: float) -> aiohttp.ClientSession:
    """The long-lived HTTP session of a web client (keep-alive connections to the Slack API)."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max(1.0, timeout_s)))


class SlackApi:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        max_retries: int = 3,
        retry_after_max_s: float = 60.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.client = client
        self.max_retries = max_retries
        self.retry_after_max_s = retry_after_max_s
        self._sleep = sleep

    async def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call `method` (e.g. "chat.postMessage"); returns the response data or raises SlackCallError."""
        func = getattr(self.client, method.replace(".", "_"))
        attempt = 0
        while True:
            error = await self._attempt(method, func, kwargs)
            if isinstance(error, dict):
                return error
            attempt += 1
            if error.verdict in ("permanent", "refused") or attempt > self.max_retries:
                raise error
            if error.verdict == "ratelimited":
                wait = error.retry_after_s if error.retry_after_s is not None else 1.0
                if wait > self.retry_after_max_s:
                    raise error
                metrics.RATE_LIMITED.labels(method=method).inc()
                log.info("slack rate limited; waiting", extra={"method": method, "retry_after_s": wait})
            else:
                wait = min(8.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random())
            await self._sleep(wait)

    async def _attempt(
        self, method: str, func: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]
    ) -> dict[str, Any] | SlackCallError:
        metrics.API_CALLS.labels(method=method).inc()
        started = time.perf_counter()
        try:
            response = await func(**kwargs)
            return dict(response.data) if isinstance(response.data, dict) else {"ok": True}
        except SlackApiError as exc:
            failure = _from_api_error(method, exc)
        except SlackRequestError as exc:
            failure = SlackCallError(method, "upload_failed", "transient")
            log.warning("slack request failed", extra={"method": method, "error": str(exc)[:300]})
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failure = SlackCallError(method, "connection_error", "transient")
            log.warning(
                "slack unreachable", extra={"method": method, "error": f"{type(exc).__name__}: {exc}"}
            )
        finally:
            metrics.API_SECONDS.labels(method=method).observe(time.perf_counter() - started)
        metrics.API_ERRORS.labels(method=method, error=metric_error(failure.error)).inc()
        return failure


def _from_api_error(method: str, exc: SlackApiError) -> SlackCallError:
    response = exc.response
    status = getattr(response, "status_code", None)
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    error = str(data.get("error") or (f"http_{status}" if status else "unknown"))
    if status is not None and status >= 500 and error.startswith("http_"):
        error = "http_error"
    retry_after = None
    headers = getattr(response, "headers", None) or {}
    raw = _header(headers, "retry-after")
    if raw is not None:
        try:
            retry_after = max(0.0, float(raw))
        except ValueError:
            retry_after = None
    return SlackCallError(method, error, classify(error, status), retry_after_s=retry_after)


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers).items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list | tuple) else value)
    return None
