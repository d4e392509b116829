"""/jobs/*: register a background job for a session, its callbacks, cancel and status."""

from __future__ import annotations

import asyncio
import hmac
import os
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from codex_broker.http_api import job_exec, jobs_queue, metrics, params
from codex_broker.http_api.auth import authorize_session, bearer, token_sha256
from codex_broker.http_api.context import AppContext
from codex_broker.http_api.errors import ApiError
from codex_broker.http_api.inputs import read_input
from codex_broker.http_api.jobs import JobRecord, bounded_details, callback_event, public_view
from codex_broker.http_api.jobs_store import JobStore, now_ms
from codex_broker.libs.contracts import new_id
from codex_broker.libs.paths import job_dir, session_workspace

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
JOB_TOKEN_HEADER = "x-job-token"
JOB_TOKEN_FIELDS = ("jobToken", "job_token", "token")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class JobsApi:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.store = JobStore(ctx.redis, ctx.keys, ctx.settings.job_retention_s)

    async def _input(self, request: Request) -> dict:
        return await read_input(request, max_part_bytes=self.ctx.settings.max_body_bytes)

    # ---- register -------------------------------------------------------------------------
    async def register(self, request: Request) -> Response:
        s = self.ctx.settings
        reg = params.job_registration(
            await self._input(request),
            max_timeout_s=s.job_max_timeout_s,
            default_timeout_s=s.job_default_timeout_s,
            max_script_bytes=s.job_max_script_bytes,
        )
        session_key = await authorize_session(self.ctx, request, reg.coords.session_key)
        stored_workspace = await self.ctx.redis.hget(self.ctx.keys.session(session_key), "workspace")
        if not await self.ctx.redis.exists(self.ctx.keys.session(session_key)):
            raise ApiError(404, "unknown_session")
        workspace = (
            Path(_text(stored_workspace)) if stored_workspace else session_workspace(s.data_root, session_key)
        )
        real_workspace, cwd = await asyncio.to_thread(_job_cwd, workspace, reg.cwd)
        record = JobRecord(
            id=new_id(),
            session_key=session_key,
            platform=reg.coords.platform,
            conversation_id=reg.coords.conversation_id,
            root_message_id=reg.coords.root_message_id,
            kind=reg.kind,
            script=reg.script,
            cwd=str(cwd),
            workspace=str(real_workspace),
            restart_on_boot=reg.restart_on_boot,
            timeout_s=reg.timeout_s,
            created_at_ms=now_ms(),
            enqueued_at_ms=now_ms(),
        )
        request.state.job_id = record.id
        await self.store.create(record)
        await asyncio.to_thread(
            jobs_queue.enqueue, self.ctx.sync_client(), self.ctx.keys.rq_queue_name, record
        )
        metrics.JOBS_REGISTERED.labels(kind_bucket="restart" if record.restart_on_boot else "once").inc()
        return JSONResponse(
            {"ok": True, "jobId": record.id, "status": record.status, "timeoutSeconds": record.timeout_s},
            status_code=201,
        )

    # ---- access ---------------------------------------------------------------------------
    async def _job(self, request: Request) -> JobRecord:
        job_id = request.path_params["job_id"]
        if not JOB_ID.match(job_id):
            raise ApiError(404, "unknown_job")
        request.state.job_id = job_id
        record = await self.store.get(job_id)
        if record is None:
            raise ApiError(404, "unknown_job")
        return record

    def _job_token_ok(self, record: JobRecord, token: str) -> bool:
        return bool(record.token_sha256) and hmac.compare_digest(record.token_sha256, token_sha256(token))

    async def _authorized_job(self, request: Request, data: dict, *, session_allowed: bool) -> JobRecord:
        """The job, when the request holds its job token (or, where allowed, its session's token)."""
        record = await self._job(request)
        explicit = request.headers.get(JOB_TOKEN_HEADER) or params.optional_text(data, JOB_TOKEN_FIELDS)
        if explicit:
            if self._job_token_ok(record, explicit):
                return record
            raise ApiError(400, "invalid_job_token")
        token = bearer(request)
        if token and self._job_token_ok(record, token):
            return record
        if session_allowed:
            await authorize_session(self.ctx, request, record.session_key)
            return record
        raise ApiError(400, "invalid_job_token")

    # ---- callbacks ------------------------------------------------------------------------
    async def heartbeat(self, request: Request) -> Response:
        record = await self._authorized_job(request, await self._input(request), session_allowed=False)
        if record.finished:
            raise ApiError(409, "job_finished")
        await self.store.update(record.id, heartbeat_at_ms=now_ms())
        return JSONResponse({"ok": True, "status": record.status})

    async def _callback(self, request: Request, status: str | None, callback: str) -> Response:
        data = await self._input(request)
        record = await self._authorized_job(request, data, session_allowed=False)
        body = params.job_callback(data)
        seq = await self.store.transition(record.id, status, body.summary[:4000])
        if seq <= 0:
            raise ApiError(409, "job_finished")
        event = callback_event(record, callback, seq, body.summary, bounded_details(body.details))
        await self.ctx.bus.publish(self.ctx.keys.job_callback_stream_for(record.session_key), event)
        metrics.JOB_CALLBACKS.labels(status=callback).inc()
        return JSONResponse({"ok": True, "eventId": event.event_id, "status": status or record.status})

    async def event(self, request: Request) -> Response:
        return await self._callback(request, None, "event")

    async def complete(self, request: Request) -> Response:
        return await self._callback(request, "completed", "complete")

    async def fail(self, request: Request) -> Response:
        return await self._callback(request, "failed", "fail")

    async def cancel(self, request: Request) -> Response:
        record = await self._authorized_job(request, await self._input(request), session_allowed=True)
        if record.finished:
            return JSONResponse({"ok": True, "status": record.status})
        await self.store.update(record.id, cancel_requested=1)
        if record.status == "queued":
            await asyncio.to_thread(jobs_queue.cancel, self.ctx.sync_client(), record.rq_job_id())
            await self.store.transition(record.id, "cancelled", "cancelled before start")
            return JSONResponse({"ok": True, "status": "cancelled"})
        return JSONResponse({"ok": True, "status": "cancelling"}, status_code=202)

    async def show(self, request: Request) -> Response:
        record = await self._authorized_job(request, await self._input(request), session_allowed=True)
        output = job_dir(self.ctx.settings.data_root, record.id) / "output.log"
        tail = await asyncio.to_thread(job_exec.tail, output, 2000)
        return JSONResponse({"ok": True, "job": public_view(record, tail)})


def _job_cwd(workspace: Path, raw: str | None) -> tuple[Path, Path]:
    """The real workspace and the job's working directory: an existing directory inside it."""
    workspace.mkdir(parents=True, exist_ok=True)
    real_workspace = os.path.realpath(workspace)
    if not raw:
        return Path(real_workspace), Path(real_workspace)
    if "\x00" in raw:
        raise ApiError(400, "path_not_allowed", field="cwd")
    candidate = os.path.realpath(raw if os.path.isabs(raw) else os.path.join(real_workspace, raw))
    if os.path.commonpath([candidate, real_workspace]) != real_workspace:
        raise ApiError(400, "path_not_allowed", field="cwd")
    if not os.path.isdir(candidate):
        raise ApiError(400, "invalid_cwd", field="cwd")
    return Path(real_workspace), Path(candidate)


def routes(ctx: AppContext) -> list[BaseRoute]:
    api = JobsApi(ctx)
    return [
        Route("/jobs/register", api.register, methods=["POST"]),
        Route("/jobs/{job_id}", api.show, methods=["GET"]),
        Route("/jobs/{job_id}/heartbeat", api.heartbeat, methods=["POST"]),
        Route("/jobs/{job_id}/event", api.event, methods=["POST"]),
        Route("/jobs/{job_id}/complete", api.complete, methods=["POST"]),
        Route("/jobs/{job_id}/fail", api.fail, methods=["POST"]),
        Route("/jobs/{job_id}/cancel", api.cancel, methods=["POST"]),
    ]
