"""Thin async adapter over lark-oapi's REST client: one method per Feishu call we make.

Errors are classified once here (rate limit → retried with backoff, expired token → refreshed,
transient → retried a little, anything else → `FeishuError(permanent=True)`) so callers only
decide what a permanent failure means for them.

The tenant token is kept per adapter (lark's own cache is process-wide and keyed by app id only)
and fetched without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import lark_oapi as lark
from lark_oapi.api.cardkit.v1 import Card as CardkitCard
from lark_oapi.api.cardkit.v1 import (
    ContentCardElementRequest,
    ContentCardElementRequestBody,
    CreateCardRequest,
    CreateCardRequestBody,
    SettingsCardRequest,
    SettingsCardRequestBody,
    UpdateCardRequest,
    UpdateCardRequestBody,
)
from lark_oapi.api.contact.v3 import GetUserRequest
from lark_oapi.api.im.v1 import (
    CreateFileRequest,
    CreateFileRequestBody,
    CreateImageRequest,
    CreateImageRequestBody,
    CreateMessageReactionRequest,
    CreateMessageReactionRequestBody,
    CreateMessageRequest,
    CreateMessageRequestBody,
    DeleteMessageReactionRequest,
    Emoji,
    GetMessageRequest,
    GetMessageResourceRequest,
    ListMessageRequest,
    PatchMessageRequest,
    PatchMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
    UpdateMessageRequest,
    UpdateMessageRequestBody,
)

from codex_broker.ingress_feishu import metrics
from codex_broker.libs.ingress_kit.platform import PlatformError

log = logging.getLogger(__name__)

RATE_LIMIT_CODES = frozenset({99991400, 11232, 11233, 230020})
TOKEN_CODES = frozenset({99991661, 99991663, 99991664, 99991665, 99991668, 99991671})
TOKEN_REFRESH_MARGIN_S = 300


@dataclass
class FeishuError(PlatformError):
    """A `PlatformError`, so the ingress kit applies its failure policy to it as it is; `error`
    (what a requester is answered) names the Feishu code."""

    op: str
    code: int
    msg: str
    status: int = 0
    rate_limited: bool = False
    transient: bool = False

    def __post_init__(self) -> None:
        PlatformError.__init__(
            self,
            f"feishu_error:{self.code}: {self.msg}",
            permanent=not (self.rate_limited or self.transient),
            method=self.op,
        )

    def __str__(self) -> str:
        return f"feishu {self.op} failed: code={self.code} status={self.status} {self.msg}"


@dataclass(frozen=True)
class RetryPolicy:
    rate_limit_attempts: int = 5
    transient_attempts: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0


@dataclass(frozen=True)
class Downloaded:
    data: bytes
    content_type: str
    file_name: str | None


class FeishuApi:
    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        domain: str,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.app_id = app_id
        self._client = (
            lark.Client.builder()
            .app_id(app_id)
            .app_secret(app_secret)
            .domain(domain)
            .timeout(timeout_s)
            .enable_set_token(True)
            .log_level(lark.LogLevel.WARNING)
            .build()
        )
        self._retry = retry or RetryPolicy()
        self._token: str = ""
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()

    # ---- token ---------------------------------------------------------------------------

    async def _tenant_token(self) -> str:
        if self._token and time.time() < self._token_expires_at:
            return self._token
        async with self._token_lock:
            if self._token and time.time() < self._token_expires_at:
                return self._token
            request = (
                lark.BaseRequest.builder()
                .http_method(lark.HttpMethod.POST)
                .uri("/open-apis/auth/v3/tenant_access_token/internal")
                .body({"app_id": self.app_id, "app_secret": self._client.config.app_secret})  # type: ignore[union-attr]
                .build()
            )
            started = time.perf_counter()
            response = await self._client.arequest(request)
            body = _json_body(response)
            metrics.API_SECONDS.labels(op="tenant_token").observe(time.perf_counter() - started)
            if body.get("code") != 0 or not body.get("tenant_access_token"):
                metrics.API_CALLS.labels(op="tenant_token", outcome="error").inc()
                raise _error("tenant_token", response, body)
            metrics.API_CALLS.labels(op="tenant_token", outcome="ok").inc()
            self._token = str(body["tenant_access_token"])
            expire = int(body.get("expire") or 7200)
            self._token_expires_at = time.time() + max(expire - TOKEN_REFRESH_MARGIN_S, 30)
            return self._token

    def _drop_token(self) -> None:
        self._token = ""
        self._token_expires_at = 0.0

    # ---- the call wrapper ----------------------------------------------------------------

    async def _call(
        self, op: str, send: Callable[[lark.RequestOption], Awaitable[Any]], *, retry: bool = True
    ) -> dict[str, Any]:
        """Run one call with retries; returns the JSON body's `data` (or the whole body).

        `retry=False`: only an expired token is retried (for callers that would rather fall back
        than wait)."""
        rate_limited = transient = 0
        token_refreshed = False
        backoff = self._retry.backoff_initial_s
        while True:
            try:
                return await self._call_once(op, send)
            except FeishuError as exc:
                if exc.code in TOKEN_CODES and not token_refreshed:
                    token_refreshed = True
                    self._drop_token()
                    metrics.API_RETRIES.labels(op=op, reason="token").inc()
                    continue
                if not retry:
                    raise
                if exc.rate_limited and rate_limited + 1 < self._retry.rate_limit_attempts:
                    rate_limited += 1
                    reason = "rate_limit"
                elif exc.transient and transient + 1 < self._retry.transient_attempts:
                    transient += 1
                    reason = "transient"
                else:
                    raise
                metrics.API_RETRIES.labels(op=op, reason=reason).inc()
                delay = min(backoff, self._retry.backoff_max_s) * (0.5 + random.random())
                log.info(
                    "feishu call retried", extra={"op": op, "code": exc.code, "delay_s": round(delay, 2)}
                )
                await asyncio.sleep(delay)
                backoff *= 2

    async def _call_once(
        self, op: str, send: Callable[[lark.RequestOption], Awaitable[Any]]
    ) -> dict[str, Any]:
        option = lark.RequestOption.builder().tenant_access_token(await self._tenant_token()).build()
        started = time.perf_counter()
        try:
            response = await send(option)
        except (httpx.HTTPError, OSError, ValueError) as exc:
            # network trouble, or a body that is not JSON (a proxy's error page)
            metrics.API_CALLS.labels(op=op, outcome="transient").inc()
            raise FeishuError(op, -1, f"{type(exc).__name__}: {exc}"[:300], transient=True) from exc
        finally:
            metrics.API_SECONDS.labels(op=op).observe(time.perf_counter() - started)
        if getattr(response, "code", None) == 0 and getattr(response, "file", None) is not None:
            metrics.API_CALLS.labels(op=op, outcome="ok").inc()
            return {}  # a binary download: the body is the file, not a JSON envelope
        body = _json_body(response)
        if getattr(response, "code", None) == 0 and body.get("code", 0) == 0:
            metrics.API_CALLS.labels(op=op, outcome="ok").inc()
            data = body.get("data")
            return data if isinstance(data, dict) else body
        error = _error(op, response, body)
        metrics.API_CALLS.labels(
            op=op,
            outcome="rate_limited" if error.rate_limited else "transient" if error.transient else "error",
        ).inc()
        raise error

    # ---- bot -----------------------------------------------------------------------------

    async def bot_open_id(self) -> str:
        request = (
            lark.BaseRequest.builder()
            .http_method(lark.HttpMethod.GET)
            .uri("/open-apis/bot/v3/info")
            .token_types({lark.AccessTokenType.TENANT})
            .build()
        )
        body = await self._call("bot_info", lambda o: self._client.arequest(request, o))
        bot = body.get("bot") or {}
        open_id = str(bot.get("open_id") or "")
        if not open_id:
            raise FeishuError("bot_info", -1, "bot info has no open_id")
        return open_id

    # ---- contact -------------------------------------------------------------------------

    async def user_name(self, open_id: str) -> str:
        """The user's name from contact/v3 (empty when the app may not see it); one attempt."""
        request = GetUserRequest.builder().user_id(open_id).user_id_type("open_id").build()
        data = await self._call(
            "user_get", lambda o: self._client.contact.v3.user.aget(request, o), retry=False
        )
        user = data.get("user") or {}
        return str(user.get("name") or user.get("en_name") or user.get("nickname") or "")

    # ---- messages --------------------------------------------------------------------------

    async def send_message(
        self,
        *,
        chat_id: str,
        reply_to: str | None,
        msg_type: str,
        content: dict[str, Any],
        uuid: str | None = None,
        in_thread: bool = True,
    ) -> str:
        """Reply in the thread of `reply_to`, or post to the chat; returns the new message id.

        `uuid` makes the send idempotent on Feishu's side (same uuid within an hour → one message).
        """
        payload = json.dumps(content, ensure_ascii=False)
        if reply_to:
            reply_body = ReplyMessageRequestBody.builder().msg_type(msg_type).content(payload)
            reply_body = reply_body.reply_in_thread(in_thread)
            if uuid:
                reply_body = reply_body.uuid(uuid)
            reply = (
                ReplyMessageRequest.builder().message_id(reply_to).request_body(reply_body.build()).build()
            )
            data = await self._call("message_reply", lambda o: self._client.im.v1.message.areply(reply, o))
        else:
            create_body = (
                CreateMessageRequestBody.builder().receive_id(chat_id).msg_type(msg_type).content(payload)
            )
            if uuid:
                create_body = create_body.uuid(uuid)
            create = (
                CreateMessageRequest.builder()
                .receive_id_type("chat_id")
                .request_body(create_body.build())
                .build()
            )
            data = await self._call("message_create", lambda o: self._client.im.v1.message.acreate(create, o))
        return str(data.get("message_id") or "")

    async def patch_card_message(self, message_id: str, card: dict[str, Any]) -> None:
        body = PatchMessageRequestBody.builder().content(json.dumps(card, ensure_ascii=False)).build()
        request = PatchMessageRequest.builder().message_id(message_id).request_body(body).build()
        await self._call("message_patch", lambda o: self._client.im.v1.message.apatch(request, o))

    async def edit_message(self, message_id: str, msg_type: str, content: dict[str, Any]) -> None:
        body = (
            UpdateMessageRequestBody.builder()
            .msg_type(msg_type)
            .content(json.dumps(content, ensure_ascii=False))
            .build()
        )
        request = UpdateMessageRequest.builder().message_id(message_id).request_body(body).build()
        await self._call("message_update", lambda o: self._client.im.v1.message.aupdate(request, o))

    async def get_message(self, message_id: str) -> dict[str, Any]:
        request = GetMessageRequest.builder().message_id(message_id).build()
        data = await self._call("message_get", lambda o: self._client.im.v1.message.aget(request, o))
        items = data.get("items") or []
        return items[0] if items and isinstance(items[0], dict) else {}

    async def list_messages(
        self, *, container_type: str, container_id: str, page_token: str | None, page_size: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page, newest first; returns (items, next page token or None)."""
        builder = (
            ListMessageRequest.builder()
            .container_id_type(container_type)
            .container_id(container_id)
            .sort_type("ByCreateTimeDesc")
            .page_size(page_size)
        )
        if page_token:
            builder = builder.page_token(page_token)
        request = builder.build()
        data = await self._call("message_list", lambda o: self._client.im.v1.message.alist(request, o))
        items = [item for item in data.get("items") or [] if isinstance(item, dict)]
        next_token = data.get("page_token") if data.get("has_more") else None
        return items, (str(next_token) if next_token else None)

    # ---- reactions ---------------------------------------------------------------------------

    async def add_reaction(self, message_id: str, emoji_type: str) -> str:
        body = (
            CreateMessageReactionRequestBody.builder()
            .reaction_type(Emoji.builder().emoji_type(emoji_type).build())
            .build()
        )
        request = CreateMessageReactionRequest.builder().message_id(message_id).request_body(body).build()
        data = await self._call(
            "reaction_create", lambda o: self._client.im.v1.message_reaction.acreate(request, o)
        )
        return str(data.get("reaction_id") or "")

    async def delete_reaction(self, message_id: str, reaction_id: str) -> None:
        request = (
            DeleteMessageReactionRequest.builder().message_id(message_id).reaction_id(reaction_id).build()
        )
        await self._call("reaction_delete", lambda o: self._client.im.v1.message_reaction.adelete(request, o))

    # ---- CardKit -------------------------------------------------------------------------------

    async def create_card(self, card: dict[str, Any]) -> str:
        body = (
            CreateCardRequestBody.builder()
            .type("card_json")
            .data(json.dumps(card, ensure_ascii=False))
            .build()
        )
        request = CreateCardRequest.builder().request_body(body).build()
        data = await self._call("card_create", lambda o: self._client.cardkit.v1.card.acreate(request, o))
        card_id = str(data.get("card_id") or "")
        if not card_id:
            raise FeishuError("card_create", -1, "no card_id in response")
        return card_id

    async def set_element_content(self, card_id: str, element_id: str, content: str, sequence: int) -> None:
        body = ContentCardElementRequestBody.builder().content(content).sequence(sequence).build()
        request = (
            ContentCardElementRequest.builder()
            .card_id(card_id)
            .element_id(element_id)
            .request_body(body)
            .build()
        )
        await self._call(
            "card_element_content", lambda o: self._client.cardkit.v1.card_element.acontent(request, o)
        )

    async def set_card_settings(self, card_id: str, settings: dict[str, Any], sequence: int) -> None:
        body = (
            SettingsCardRequestBody.builder()
            .settings(json.dumps(settings, ensure_ascii=False))
            .sequence(sequence)
            .build()
        )
        request = SettingsCardRequest.builder().card_id(card_id).request_body(body).build()
        await self._call("card_settings", lambda o: self._client.cardkit.v1.card.asettings(request, o))

    async def update_card(self, card_id: str, card: dict[str, Any], sequence: int) -> None:
        entity = CardkitCard.builder().type("card_json").data(json.dumps(card, ensure_ascii=False)).build()
        body = UpdateCardRequestBody.builder().card(entity).sequence(sequence).build()
        request = UpdateCardRequest.builder().card_id(card_id).request_body(body).build()
        await self._call("card_update", lambda o: self._client.cardkit.v1.card.aupdate(request, o))

    # ---- files ---------------------------------------------------------------------------------

    async def upload_image(self, data: bytes) -> str:
        def send(option: lark.RequestOption) -> Awaitable[Any]:
            body = CreateImageRequestBody.builder().image_type("message").image(io.BytesIO(data)).build()
            return self._client.im.v1.image.acreate(
                CreateImageRequest.builder().request_body(body).build(), option
            )

        result = await self._call("image_upload", send)
        return str(result.get("image_key") or "")

    async def upload_file(self, name: str, data: bytes, file_type: str) -> str:
        def send(option: lark.RequestOption) -> Awaitable[Any]:
            body = (
                CreateFileRequestBody.builder()
                .file_type(file_type)
                .file_name(name)
                .file(io.BytesIO(data))
                .build()
            )
            return self._client.im.v1.file.acreate(
                CreateFileRequest.builder().request_body(body).build(), option
            )

        result = await self._call("file_upload", send)
        return str(result.get("file_key") or "")

    async def download_resource(self, message_id: str, file_key: str, kind: str) -> Downloaded:
        request = (
            GetMessageResourceRequest.builder().message_id(message_id).file_key(file_key).type(kind).build()
        )
        holder: dict[str, Any] = {}

        async def send(option: lark.RequestOption) -> Any:
            response = await self._client.im.v1.message_resource.aget(request, option)
            holder["response"] = response
            return response

        await self._call("resource_get", send)
        response = holder["response"]
        raw = response.raw
        return Downloaded(
            data=response.file.getvalue() if response.file is not None else b"",
            content_type=str(
                (raw.headers or {}).get("Content-Type") or (raw.headers or {}).get("content-type") or ""
            ),
            file_name=response.file_name,
        )


def _json_body(response: Any) -> dict[str, Any]:
    raw = getattr(response, "raw", None)
    content = getattr(raw, "content", None)
    if not content:
        return {}
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def _error(op: str, response: Any, body: dict[str, Any]) -> FeishuError:
    raw = getattr(response, "raw", None)
    status = int(getattr(raw, "status_code", 0) or 0)
    code = body.get("code", getattr(response, "code", None))
    code = (
        int(code) if isinstance(code, int) or (isinstance(code, str) and code.lstrip("-").isdigit()) else -1
    )
    msg = str(body.get("msg") or getattr(response, "msg", "") or "")[:300]
    return FeishuError(
        op,
        code,
        msg,
        status=status,
        rate_limited=status == 429 or code in RATE_LIMIT_CODES,
        transient=status >= 500 or (code == -1 and status == 0),
    )
