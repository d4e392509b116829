"""One run: resume or start the Codex thread, start the turn, stream its events, end it once.

The hot path is short: for a thread already loaded in the warm app-server it is one
`turn/start` request; the claim's Redis round trip runs concurrently with the thread step, and
events leave through the shared publisher without being awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codex_broker.codex_runner import dynamic_tools, metrics, project_docs, repo_clone
from codex_broker.codex_runner.app_server import METHOD_NOT_FOUND, AppServer, AppServerError, AppServerGone
from codex_broker.codex_runner.coalesce import DeltaCoalescer
from codex_broker.codex_runner.config import Settings
from codex_broker.codex_runner.events import EventPublisher, wait_published
from codex_broker.codex_runner.protocol import generated as p
from codex_broker.codex_runner.supervisor import Supervisor
from codex_broker.codex_runner.translate import (
    APPROVAL_METHODS,
    Emit,
    TurnTranslator,
    approval_policy,
    approval_request,
    approval_response,
    desired_settings,
    dump,
    effective_settings,
    is_thread_not_found,
    thread_config,
    turn_overrides,
    user_inputs,
)
from codex_broker.libs import sealing
from codex_broker.libs.contracts import (
    TERMINAL_RUN_EVENTS,
    ApprovalDecision,
    RunControl,
    RunEvent,
    RunRequest,
    Sandbox,
)
from codex_broker.libs.keys import Keys
from codex_broker.libs.records import RunRecord
from codex_broker.libs.run_fence import ClaimResult

log = logging.getLogger(__name__)

INTERRUPT_GRACE_S = 10.0  # after turn/interrupt, report the turn interrupted even if Codex stays silent
ACTIVE_WRITER = "already has an active writer"  # Codex 0.169: the thread is loaded in another process
WRITER_WAIT_S = 10.0  # how long a resume waits for another process to let go of the thread


class ThreadNotFound(Exception):
    pass


class SandboxRefused(Exception):
    """The run asks for a sandbox mode the runner's own policy does not run."""


class SandboxUnavailable(Exception):
    """The boot probe found that Codex's sandbox cannot start on this host."""


def steer_rejected(control: RunControl, *, runner_id: str, reason: str) -> RunEvent:
    """The report of a steer that no turn took: the orchestrator puts its message back in the
    session queue. Outside the run's sequence (seq 0): a runner that no longer holds the run
    cannot know its seq, and the orchestrator keys the report by `control_id`."""
    return RunEvent(
        run_id=control.run_id,
        session_key=control.session_key,
        seq=0,
        kind="steer_rejected",
        runner_id=runner_id,
        control_id=control.control_id,
        text=reason[:1000],
    )


@dataclass
class _PendingApproval:
    server: AppServer
    server_request_id: Any
    method: str
    params: dict[str, Any]
    timer: asyncio.TimerHandle


class TurnRun:
    def __init__(
        self,
        request: RunRequest,
        *,
        runner_id: str,
        keys: Keys,
        settings: Settings,
        supervisor: Supervisor,
        publisher: EventPublisher,
        on_thread_loaded: Callable[[str], None] | None = None,
        api_token_ready: asyncio.Future[None] | None = None,
        sandbox_problem: str | None = None,
    ) -> None:
        self.sandbox_problem = sandbox_problem
        self.request = request
        # the session's token file is written beside thread/start and awaited before turn/start:
        # no command of the turn runs before it exists
        self.api_token_ready = api_token_ready
        self.on_thread_loaded = on_thread_loaded
        self.runner_id = runner_id
        self.keys = keys
        self.settings = settings
        self.supervisor = supervisor
        self.publisher = publisher
        self.stream = keys.run_events_stream_for(request.session_key)
        self.seq = 1  # seq 0 (`accepted`) goes out with the claim
        self.thread_id: str | None = request.thread_id
        self.turn_id: str | None = None
        self.translator: TurnTranslator | None = None
        self.coalescer = DeltaCoalescer(settings.delta_flush_ms / 1000, settings.delta_flush_bytes)
        self.terminal: str | None = None
        self.finished = asyncio.Event()
        self.started_at = time.monotonic()
        self.last_activity = self.started_at
        self._server: AppServer | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._terminal_published: asyncio.Future[None] | None = None
        self._interrupt_reason: str | None = None
        self._queued_steers: list[RunControl] = []
        self._approvals: dict[str, _PendingApproval] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def run_id(self) -> str:
        return self.request.run_id

    # ---- driving ---------------------------------------------------------------------------
    async def drive(self, claim: asyncio.Future[ClaimResult]) -> None:
        """Run the turn to its terminal event. `claim` resolves to the claim's outcome: a run
        the orchestrator fenced (reported lost) ends here without a word — it was never ours."""
        metrics.TURNS_STARTED.inc()
        try:
            try:
                self._check_sandbox_mode()
                server = await self.supervisor.get(self.settings.request_timeout_s)
                self._server = server
                loaded_before = self.request.thread_id in self.supervisor.loaded_threads
                thread_id = await self._ensure_thread(server)
                if not loaded_before and self.on_thread_loaded is not None:
                    self.on_thread_loaded(thread_id)
            finally:
                claimed = await claim
            if claimed == "fenced":
                return
            if claimed == "cancelled":
                self._finish("interrupted", "cancelled before the turn started")
                return
            self.thread_id = thread_id
            self.translator = TurnTranslator(thread_id, tail_chars=self.settings.output_tail_chars)
            self.supervisor.bind(thread_id, self)
            if self.api_token_ready is not None:
                await self.api_token_ready
            turn = await self._turn_start(server, thread_id)
            self._emit_all(self.translator.turn_started(turn.id))
            self.turn_id = turn.id
            await self._apply_queued_controls()
            await self.finished.wait()
        except ThreadNotFound as exc:
            self._finish("failed", f"thread_not_found: {exc}")
        except repo_clone.CloneFailed as exc:
            self._finish("failed", f"clone_failed: {exc}")
        except SandboxRefused as exc:
            self._finish("failed", f"sandbox_refused: {exc}")
        except SandboxUnavailable as exc:
            self._finish(
                "failed",
                f"sandbox_unavailable: Codex's sandbox cannot seal this session's commands on this "
                f"runner ({exc}); the operator must fix the host or set SEAL_SESSIONS=false",
            )
        except sealing.WorkspaceRefused as exc:
            log.warning("run refused: foreign workspace", extra={"run_id": self.run_id, "error": str(exc)})
            self._finish("failed", f"workspace_refused: {exc}")
        except AppServerError as exc:
            self._finish("failed", f"Codex refused {exc.method}: {exc.message}")
        except AppServerGone as exc:
            self._finish("failed", str(exc))
        except asyncio.CancelledError:
            self._finish("interrupted", "codex-runner stopped")
            raise
        except Exception as exc:
            if not claim.done() or claim.exception() is not None:
                log.exception("could not claim run", extra={"run_id": self.run_id})
                return  # nothing was published; the request stays pending for an operator
            log.exception("run failed inside codex-runner", extra={"run_id": self.run_id})
            self._finish("failed", f"internal error in codex-runner: {type(exc).__name__}: {exc}")
        finally:
            await self._cleanup()

    async def _ensure_thread(self, server: AppServer) -> str:
        request = self.request
        if request.thread_id:
            if request.thread_id not in self.supervisor.loaded_threads:
                await self._resume(server, request.thread_id)
            return request.thread_id
        await repo_clone.prepare_workspace(request, self.settings.data_root)
        sandbox, config = self._thread_sandbox()
        params = p.ThreadStartParams(
            cwd=request.workspace,
            approvalPolicy=approval_policy(request.approval_policy),
            sandbox=sandbox,
            config=config,
            developerInstructions=request.developer_instructions,
            model=request.model,
        )
        body = {**dump(params), **dynamic_tools.thread_start_tools(request.dynamic_tools)}
        raw = await server.request("thread/start", body, timeout_s=self.settings.request_timeout_s)
        response = p.ThreadStartResponse.model_validate(raw)
        self.supervisor.loaded_threads[response.thread.id] = effective_settings(response)
        return response.thread.id

    @property
    def sealed(self) -> bool:
        """Whether this run's commands are sealed in the session's own permission profile
        (the default for `workspace-write`; `read-only` and `danger-full-access` are the
        operator's explicit choices and keep Codex's own meaning)."""
        return self.settings.seal_sessions and self.request.sandbox == "workspace-write"

    def _check_sandbox_mode(self) -> None:
        """The runner's own policy decides which unsealed modes it runs (never the stream entry
        alone): `read-only` reads every session's files, `danger-full-access` everything."""
        mode = self.request.sandbox
        if mode != "workspace-write" and mode not in self.settings.unsealed_sandboxes:
            raise SandboxRefused(
                f"this runner runs only sealed workspace-write sessions, not {mode} "
                f"(the operator may allow it with UNSEALED_SANDBOXES)"
            )

    def allowed_hosts(self) -> list[str]:
        return sealing.allowed_hosts(self.settings.api_base, self.settings.network_allowed_domains)

    def _thread_sandbox(self) -> tuple[Sandbox | None, dict[str, Any] | None]:
        """`sandbox` and `config` of thread/start and thread/resume. A sealed thread names no
        legacy sandbox mode: Codex would use it instead of the permission profile."""
        request = self.request
        if not self.sealed:
            return request.sandbox, thread_config(request.sandbox, request.network_access)
        if self.sandbox_problem is not None:
            raise SandboxUnavailable(self.sandbox_problem)
        data_root = self.settings.data_root
        workspace = sealing.check_workspace(data_root, request.session_key, request.workspace)
        config = sealing.sealed_config(
            data_root,
            request.session_key,
            workspace,
            self.supervisor.profile.codex_home,
            network_access=request.network_access,
            allowed_hosts=self.allowed_hosts(),
        )
        # absent project docs are said in the config: each look would be a sandboxed helper
        config |= project_docs.thread_config(
            workspace, self.supervisor.profile.codex_home, self.settings.codex_config_overrides
        )
        return None, config

    async def _resume(self, server: AppServer, thread_id: str) -> None:
        request = self.request
        await repo_clone.prepare_workspace(request, self.settings.data_root)
        sandbox, config = self._thread_sandbox()
        params = p.ThreadResumeParams(
            threadId=thread_id,
            cwd=request.workspace,
            approvalPolicy=approval_policy(request.approval_policy),
            sandbox=sandbox,
            config=config,
            developerInstructions=request.developer_instructions,
            model=request.model,
            excludeTurns=True,
        )
        deadline = time.monotonic() + WRITER_WAIT_S
        delay = 0.1
        while True:
            try:
                raw = await server.request(
                    "thread/resume", dump(params), timeout_s=self.settings.request_timeout_s
                )
                break
            except AppServerError as exc:
                if is_thread_not_found(exc.message):
                    raise ThreadNotFound(exc.message) from exc
                # Another app-server still holds the thread (its runner is going away, or
                # it is closing it): wait a little for the lock instead of failing the turn.
                if ACTIVE_WRITER not in exc.message or time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        self.supervisor.loaded_threads[thread_id] = effective_settings(
            p.ThreadResumeResponse.model_validate(raw)
        )

    async def _turn_start(self, server: AppServer, thread_id: str) -> p.Turn:
        try:
            raw = await self._send_turn_start(server, thread_id)
        except AppServerError as exc:
            if not is_thread_not_found(exc.message):
                raise
            # Codex unloaded the idle thread since we last used it: load it again, once.
            self.supervisor.loaded_threads.pop(thread_id, None)
            await self._resume(server, thread_id)
            raw = await self._send_turn_start(server, thread_id)
        return p.TurnStartResponse.model_validate(raw).turn

    async def _send_turn_start(self, server: AppServer, thread_id: str) -> Any:
        request = self.request
        wanted = desired_settings(
            request.workspace, request.sandbox, request.network_access, request.approval_policy, request.model
        )
        loaded = self.supervisor.loaded_threads
        params = {
            "threadId": thread_id,
            "input": [dump(item) for item in user_inputs(request.input)],
            **turn_overrides(loaded.get(thread_id), wanted, request.sandbox, sealed=self.sealed),
        }
        p.TurnStartParams.model_validate(params)  # what we send is what the schema allows
        raw = await server.request("turn/start", params, timeout_s=self.settings.request_timeout_s)
        loaded[thread_id] = wanted  # overrides apply to this and later turns
        return raw

    # ---- from the app-server (synchronous: called by the stdout reader) ---------------------
    def on_notification(self, method: str, params: dict[str, Any]) -> None:
        self.last_activity = time.monotonic()
        if method == "serverRequest/resolved":
            self._withdrawn(params.get("requestId"))
            return
        if self.translator is None or self.terminal is not None:
            return
        turn_id = params.get("turnId")
        if turn_id is not None and self.turn_id is not None and turn_id != self.turn_id:
            return  # a late event of an earlier turn of this thread
        self._emit_all(self.translator.notification(method, params))
        if self.turn_id is None:
            self.turn_id = self.translator.turn_id

    def on_server_request(
        self, server: AppServer, request_id: Any, method: str, params: dict[str, Any]
    ) -> None:
        self.last_activity = time.monotonic()
        if method == dynamic_tools.METHOD:
            self._spawn(self._tool_call(server, request_id, params))
            return
        if method not in APPROVAL_METHODS or self.translator is None or self.terminal is not None:
            self._spawn(server.respond_error(request_id, METHOD_NOT_FOUND, f"{method} is not supported here"))
            return
        approval_id = uuid.uuid4().hex[:12]
        approval = approval_request(method, params, approval_id, self.translator.file_paths)
        timer = asyncio.get_running_loop().call_later(
            self.settings.approval_timeout_s, self._approval_timed_out, approval_id
        )
        self._approvals[approval_id] = _PendingApproval(server, request_id, method, params, timer)
        self._emit(Emit("approval_requested", approval=approval))

    async def _tool_call(self, server: AppServer, request_id: Any, params: dict[str, Any]) -> None:
        """Forward a dynamic tool call to the orchestrator (outside the run's seq, like a
        rejected steer) and give Codex its answer; the runner itself decides nothing."""
        reply_to = self.keys.rpc_reply(uuid.uuid4().hex)
        try:
            event = RunEvent(
                run_id=self.run_id,
                session_key=self.request.session_key,
                seq=0,
                kind="tool_call",
                runner_id=self.runner_id,
                thread_id=self.thread_id,
                turn_id=self.turn_id,
                tool_call=dynamic_tools.tool_call(params, reply_to),
            )
            self.publisher.publish(self.stream, event)
            answer = await dynamic_tools.await_answer(
                self.publisher.redis, reply_to, timeout_s=self.settings.tool_call_timeout_s
            )
        except Exception as exc:  # Codex waits for an answer: it must get one, never silence
            log.exception("dynamic tool call not forwarded", extra={"run_id": self.run_id})
            answer = dynamic_tools.response(f"the broker could not forward this call: {exc}", success=False)
        self.last_activity = time.monotonic()
        await server.respond(request_id, answer)

    def on_app_server_exit(self, reason: str) -> None:
        self._finish("failed", f"{reason}; the turn was lost")

    # ---- controls ----------------------------------------------------------------------------
    async def interrupt(self, reason: str | None = None) -> None:
        if reason and self._interrupt_reason is None:
            self._interrupt_reason = reason
        if self.terminal is not None:
            return
        if self.turn_id is None:
            if self._interrupt_reason is None:
                self._interrupt_reason = "interrupted"
            return  # applied once the turn has an id
        server = self._server
        if server is not None and server.alive:
            try:
                await server.request(
                    "turn/interrupt",
                    dump(p.TurnInterruptParams(threadId=self.thread_id or "", turnId=self.turn_id)),
                    timeout_s=INTERRUPT_GRACE_S,
                )
            except (AppServerError, AppServerGone) as exc:
                log.warning("turn/interrupt failed", extra={"run_id": self.run_id, "error": str(exc)})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.finished.wait(), INTERRUPT_GRACE_S)
        self._finish("interrupted", self._interrupt_reason or "interrupted")

    async def steer(self, control: RunControl) -> None:
        """Add input to the running turn; whatever Codex does not take is reported back, never
        dropped (the orchestrator then runs it as the next turn)."""
        if self.terminal is not None:
            self._reject_steer(control, f"the turn already ended ({self.terminal})")
            return
        if self.turn_id is None or self._server is None:
            self._queued_steers.append(control)  # applied once the turn has an id, else rejected
            return
        params = p.TurnSteerParams(
            threadId=self.thread_id or "", expectedTurnId=self.turn_id, input=user_inputs(control.input)
        )
        try:
            await self._server.request("turn/steer", dump(params), timeout_s=self.settings.request_timeout_s)
        except (AppServerError, AppServerGone) as exc:
            # typically the turn ended while the steer was on its way ("no active turn")
            log.warning("turn/steer failed", extra={"run_id": self.run_id, "error": str(exc)})
            detail = exc.message if isinstance(exc, AppServerError) else str(exc)
            self._reject_steer(control, f"turn/steer failed: {detail}")

    def _reject_steer(self, control: RunControl, reason: str) -> None:
        log.info("steer rejected", extra={"run_id": self.run_id, "control_id": control.control_id})
        # through the run's publisher: it reaches Redis after every event queued before it
        self.publisher.publish(self.stream, steer_rejected(control, runner_id=self.runner_id, reason=reason))

    def decide(self, decision: ApprovalDecision, *, text: str | None = None) -> bool:
        pending = self._approvals.pop(decision.request_id, None)
        if pending is None:
            return False
        pending.timer.cancel()
        response = approval_response(pending.method, pending.params, decision)
        self._spawn(pending.server.respond(pending.server_request_id, response))
        metrics.APPROVALS.labels(decision=decision.decision).inc()
        self.last_activity = time.monotonic()
        self._emit(Emit("approval_resolved", decision=decision, text=text))
        return True

    def _approval_timed_out(self, approval_id: str) -> None:
        seconds = f"{self.settings.approval_timeout_s:g}"
        self.decide(
            ApprovalDecision(request_id=approval_id, decision="decline", decided_by="timeout"),
            text=f"no decision within {seconds}s; declined",
        )

    def _withdrawn(self, server_request_id: Any) -> None:
        for approval_id, pending in list(self._approvals.items()):
            if pending.server_request_id == server_request_id:
                del self._approvals[approval_id]
                pending.timer.cancel()
                decision = ApprovalDecision(request_id=approval_id, decision="decline", decided_by="codex")
                self._emit(Emit("approval_resolved", decision=decision, text="request withdrawn by Codex"))

    async def _apply_queued_controls(self) -> None:
        if self._interrupt_reason is not None:
            await self.interrupt()
            return
        steers, self._queued_steers = self._queued_steers, []
        for control in steers:
            await self.steer(control)

    # ---- events ------------------------------------------------------------------------------
    def _emit_all(self, emits: list[Emit]) -> None:
        for emit in emits:
            self._emit(emit)

    def _emit(self, emit: Emit) -> None:
        if self.terminal is not None:
            return
        if emit.kind == "text_delta":
            self._add_delta(emit.text or "")
            return
        if emit.kind in TERMINAL_RUN_EVENTS:
            self._finish(emit.kind, emit.text, turn_id=emit.turn_id)
            return
        self._flush_deltas()
        self._publish(emit)

    def _add_delta(self, text: str) -> None:
        if self.coalescer.add(text, time.monotonic()):
            self._flush_deltas()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                self.coalescer.flush_s, self._flush_deltas
            )

    def _flush_deltas(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self.coalescer.pending:
            self._publish(Emit("text_delta", text=self.coalescer.take()))

    def _publish(self, emit: Emit, *, final: bool = False) -> None:
        event = RunEvent(
            run_id=self.run_id,
            session_key=self.request.session_key,
            seq=self.seq,
            kind=emit.kind,
            runner_id=self.runner_id,
            thread_id=emit.thread_id,
            turn_id=emit.turn_id,
            text=emit.text,
            item=emit.item,
            approval=emit.approval,
            decision=emit.decision,
            usage=emit.usage,
        )
        self.seq += 1
        if not final:
            self.publisher.publish(self.stream, event)
            return
        fields = RunRecord.encode_fields(
            status=emit.kind, finished_at_ms=int(time.time() * 1000), thread_id=self.thread_id or None
        )
        self._terminal_published = self.publisher.publish(
            self.stream, event, hash_key=self.keys.run(self.run_id), hash_fields=fields, wait=True
        )

    def _finish(self, kind: str, text: str | None, *, turn_id: str | None = None) -> None:
        """Publish the one terminal event of this run (later calls are no-ops)."""
        if self.terminal is not None:
            return
        self._flush_deltas()
        translator = self.translator
        usage = translator.usage if translator is not None else None
        if usage is not None:
            self._publish(Emit("token_usage", usage=usage))
            metrics.TOKENS.labels(direction="in").inc(usage.input_tokens)
            metrics.TOKENS.labels(direction="out").inc(usage.output_tokens)
        if kind == "interrupted" and self._interrupt_reason:
            text = self._interrupt_reason
        self.terminal = kind
        self._publish(
            Emit(kind, text=text, thread_id=self.thread_id, turn_id=turn_id or self.turn_id),  # type: ignore[arg-type]
            final=True,
        )
        metrics.TURNS_FINISHED.labels(outcome=kind).inc()
        metrics.TURN_SECONDS.labels(outcome=kind).observe(time.monotonic() - self.started_at)
        self.finished.set()
        steers, self._queued_steers = self._queued_steers, []
        for control in steers:  # the turn ended before it had an id (or with an interrupt pending)
            self._reject_steer(control, f"the turn ended ({kind}) before the steer was applied")

    async def _cleanup(self) -> None:
        if self.thread_id:
            self.supervisor.unbind(self.thread_id, self)
        for approval_id in list(self._approvals):
            self.decide(
                ApprovalDecision(request_id=approval_id, decision="decline", decided_by="codex-runner")
            )
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        await wait_published(self._terminal_published, timeout_s=10.0)
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 2)

    def _spawn(self, awaitable: Any) -> None:
        async def quiet() -> None:
            with contextlib.suppress(AppServerGone, Exception):
                await awaitable

        task = asyncio.get_running_loop().create_task(quiet())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
