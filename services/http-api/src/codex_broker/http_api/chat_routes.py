"""/chat/* (and the legacy /slack/*): history, posts, states and files for Codex's own thread."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api import audit_trail, files, history, outbound, params
from codex_broker.http_api.auth import authorize_session
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError
from codex_broker.http_api.inputs import read_input
from codex_broker.libs.contracts import (
    Coordinates,
    HistoryPayload,
    OutboundAction,
    OutboundResult,
    PostPayload,
    UploadPayload,
    new_id,
)
from codex_broker.libs.paths import repos_root, session_workspace
from codex_broker.libs.records import TurnState, text_of

POST_FORMAT = {"markdown": "markdown", "text": "text", "rich_text": "rich_text", "card": "card"}


def _answer(action: OutboundAction, result: OutboundResult | None) -> Response:
    """ok → 200 with message ids; no reply in time → 202 queued (do not retry: it may still land)."""
    if result is None:
        return JSONResponse({"ok": True, "queued": True, "actionId": action.action_id}, status_code=202)
    if not result.ok:
        raise ApiError(502, "platform_error", detail=(result.error or "unknown")[:300])
    return JSONResponse({"ok": True, "actionId": action.action_id, "messageIds": result.message_ids})


class ChatApi:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def _input(self, request: Request) -> dict:
        return await read_input(request, max_part_bytes=self.ctx.settings.max_body_bytes)

    # ---- history --------------------------------------------------------------------------
    async def thread_history(self, request: Request, *, legacy: bool = False) -> Response:
        query = params.history_query(
            await self._input(request), self.ctx.settings.history_api_max_limit, legacy=legacy
        )
        await authorize_session(self.ctx, request, query.coords.session_key)
        payload = HistoryPayload(before_message_id=query.before_message_id, limit=query.limit)
        _, result = await outbound.request(
            self.ctx, query.coords, payload, timeout_s=self.ctx.settings.rpc_timeout_s
        )
        if result is None:
            raise ApiError(504, "upstream_timeout")
        if not result.ok:
            raise ApiError(502, "platform_error", detail=(result.error or "unknown")[:300])
        if query.format == "text":
            return PlainTextResponse(history.render_text(result.messages))
        messages = [history.message_json(m) for m in result.messages]
        return JSONResponse({"ok": True, "note": history.JSON_NOTE, "messages": messages})

    # ---- posts ----------------------------------------------------------------------------
    async def post_message(self, request: Request, *, legacy: bool = False) -> Response:
        post = params.post_message(await self._input(request), legacy=legacy)
        session_key = await authorize_session(self.ctx, request, post.coords.session_key)
        payload = PostPayload(text=post.text, format=POST_FORMAT[post.format], rich=post.rich)  # type: ignore[arg-type]
        action, result = await outbound.request(
            self.ctx, post.coords, payload, timeout_s=self.ctx.settings.rpc_timeout_s
        )
        response = _answer(action, result)
        if post.kind == "final":
            await self._mark_final_posted(session_key)
        if post.kind in ("block", "wait"):
            await self._record_state(session_key, post.kind, post.reason)
        await outbound.add_timeline(
            self.ctx,
            session_key,
            "codex_post",
            f"Codex posted a {post.kind} message ({len(post.text)} chars)",
        )
        return response

    async def _mark_final_posted(self, session_key: str) -> None:
        """Codex delivered the answer itself: the orchestrator must not post it again."""
        state_key = self.ctx.keys.session_state(session_key)
        run_id = await self.ctx.redis.hget(state_key, "active_run_id")
        if run_id:
            await self.ctx.redis.hset(state_key, mapping=TurnState.final_posted(text_of(run_id)))

    async def _record_state(self, session_key: str, kind: str, reason: str | None) -> None:
        state_key = self.ctx.keys.session_state(session_key)
        run_id = await self.ctx.redis.hget(state_key, "active_run_id")
        report = TurnState.codex_report(
            kind, reason or "", run_id=text_of(run_id) if run_id else "", at_ms=int(time.time() * 1000)
        )
        await self.ctx.redis.hset(state_key, mapping=report)

    async def post_state(self, request: Request) -> Response:
        state = params.post_state(await self._input(request))
        session_key = await authorize_session(self.ctx, request, state.coords.session_key)
        await self._record_state(session_key, state.kind, state.reason)
        await outbound.add_timeline(self.ctx, session_key, "codex_state", f"Codex set state {state.kind}")
        return JSONResponse({"ok": True, "kind": state.kind})

    # ---- files ----------------------------------------------------------------------------
    async def post_file(self, request: Request, *, legacy: bool = False) -> Response:
        spec = params.post_file(await self._input(request), legacy=legacy)
        session_key = await authorize_session(self.ctx, request, spec.coords.session_key)
        action_id = new_id()
        if spec.content is not None:
            assert spec.filename is not None
            filename = spec.filename
            kind = files.upload_kind(
                spec.coords.platform, len(spec.content), filename, spec.content_type, self._limits()
            )
            dest = files.outbox_path(self.ctx.settings.data_root, action_id, filename)
            await asyncio.to_thread(files.write_bytes, dest, spec.content)
        else:
            assert spec.file_path is not None
            dest, filename, kind = await self._copy_path(
                session_key, spec.coords, spec.file_path, spec.filename, spec.content_type, action_id
            )
        payload = UploadPayload(
            path=str(dest),
            filename=filename,
            title=spec.title,
            initial_comment=spec.initial_comment,
            alt_text=spec.alt_text,
            snippet_type=spec.snippet_type,
            content_type=kind.content_type,
        )
        action, result = await outbound.request(
            self.ctx, spec.coords, payload, timeout_s=self.ctx.settings.upload_timeout_s
        )
        if result is not None:  # the ingress is done with the copy
            await asyncio.to_thread(files.remove_outbox, dest)
        await outbound.add_timeline(
            self.ctx, session_key, "codex_file", f"Codex posted a file ({kind.content_type})"
        )
        await audit_trail.file_posted(self.ctx, spec.coords, filename, kind.content_type, action, result)
        return _answer(action, result)

    def _limits(self) -> files.SizeLimits:
        s = self.ctx.settings
        return files.SizeLimits(s.max_upload_bytes, s.feishu_max_image_bytes, s.feishu_max_file_bytes)

    async def _workspace(self, session_key: str) -> Path:
        stored = await self.ctx.redis.hget(self.ctx.keys.session(session_key), "workspace")
        if stored:
            return Path(stored.decode() if isinstance(stored, bytes) else str(stored))
        return session_workspace(self.ctx.settings.data_root, session_key)

    async def _copy_path(
        self,
        session_key: str,
        coords: Coordinates,
        raw: str,
        filename: str | None,
        content_type: str | None,
        action_id: str,
    ) -> tuple[Path, str, files.UploadKind]:
        workspace = await self._workspace(session_key)
        roots = [workspace, repos_root(self.ctx.settings.data_root), *self.ctx.settings.allowed_file_roots]
        limits = self._limits()

        def copy() -> tuple[Path, str, files.UploadKind]:
            real = files.resolve_allowed(raw, workspace, roots)
            fd, size = files.open_allowed(real, roots)
            try:
                name = Path(filename).name if filename else Path(real).name
                kind = files.upload_kind(coords.platform, size, name, content_type, limits)
            except BaseException:
                os.close(fd)
                raise
            dest = files.outbox_path(self.ctx.settings.data_root, action_id, name)
            files.copy_fd_to(fd, dest, size)
            return dest, name, kind

        return await asyncio.to_thread(copy)


def routes(ctx: AppContext) -> list[BaseRoute]:
    api = ChatApi(ctx)

    async def slack_history(request: Request) -> Response:
        return await api.thread_history(request, legacy=True)

    async def slack_post_message(request: Request) -> Response:
        return await api.post_message(request, legacy=True)

    async def slack_post_file(request: Request) -> Response:
        return await api.post_file(request, legacy=True)

    return [
        Route("/chat/thread-history", api.thread_history, methods=["GET"]),
        Route("/chat/post-message", api.post_message, methods=["POST"]),
        Route("/chat/post-state", api.post_state, methods=["POST"]),
        Route("/chat/post-file", api.post_file, methods=["POST"]),
        Route("/slack/thread-history", slack_history, methods=["GET"]),
        Route("/slack/post-message", slack_post_message, methods=["POST"]),
        Route("/slack/post-file", slack_post_file, methods=["POST"]),
    ]
