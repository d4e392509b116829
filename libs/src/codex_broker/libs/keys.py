"""Every Redis stream and key name in one place.

Keys used together in one MULTI/EXEC or Lua script share a hash tag (`{...}`) so that a
deployment can move to Redis Cluster without code changes. Streams are single keys and are
never touched together with other keys in one transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DEFAULT_PREFIX = "cb"
DEFAULT_SHARD_COUNT = 8

# Consumer group names
GROUP_ORCHESTRATOR = "orchestrator"
GROUP_RUNNERS = "codex-runners"
GROUP_INGRESS = "ingress"


def shard_of(session_key: str, shard_count: int) -> int:
    """Stable shard for a session: every service computes the same one."""
    digest = hashlib.blake2b(session_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


def session_key_of(platform: str, conversation_id: str, root_message_id: str) -> str:
    return f"{platform}:{conversation_id}:{root_message_id}"


@dataclass(frozen=True)
class Keys:
    """Key builder bound to a prefix (one deployment, or one test, per prefix)."""

    prefix: str = DEFAULT_PREFIX
    shard_count: int = DEFAULT_SHARD_COUNT

    # ---- streams -------------------------------------------------------------------------
    def inbound_stream(self, shard: int) -> str:
        """Platform InboundEvents (`message`, `action`) for sessions of one shard (ingress-* →
        orchestrator). Never a job callback: those have `job_callback_stream`."""
        return f"{self.prefix}:stream:inbound:{shard}"

    def inbound_stream_for(self, session_key: str) -> str:
        return self.inbound_stream(shard_of(session_key, self.shard_count))

    def job_callback_stream(self, shard: int) -> str:
        """InboundEvents of kind `job_callback` for sessions of one shard (http-api, rq worker,
        the orchestrator's workspace wakes → orchestrator). A stream of their own, so that the
        http-api and the worker need no write access to the platform inbound streams."""
        return f"{self.prefix}:stream:job-callbacks:{shard}"

    def job_callback_stream_for(self, session_key: str) -> str:
        return self.job_callback_stream(shard_of(session_key, self.shard_count))

    def run_events_stream(self, shard: int) -> str:
        """RunEvents for sessions of one shard (codex-runner → orchestrator)."""
        return f"{self.prefix}:stream:run-events:{shard}"

    def run_events_stream_for(self, session_key: str) -> str:
        return self.run_events_stream(shard_of(session_key, self.shard_count))

    @property
    def runs_stream(self) -> str:
        """RunRequests (orchestrator → any codex-runner with a free slot)."""
        return f"{self.prefix}:stream:runs"

    def runner_runs_stream(self, runner_id: str) -> str:
        """RunRequests handed to one runner because its app-server holds the Codex thread
        (Codex lets one process at a time write a thread); read only by that runner."""
        return f"{self.prefix}:stream:runs:{runner_id}"

    def runner_control_stream(self, runner_id: str) -> str:
        """RunControls for the runs one runner holds (orchestrator → that runner)."""
        return f"{self.prefix}:stream:control:{runner_id}"

    def outbound_stream(self, platform: str) -> str:
        """OutboundActions for one platform (orchestrator, http-api → ingress-<platform>)."""
        return f"{self.prefix}:stream:outbound:{platform}"

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.prefix}:stream:dead-letter"

    @property
    def admin_events_stream(self) -> str:
        """Operator-visible events (cleanups, restarts, dead letters) for the admin page."""
        return f"{self.prefix}:stream:admin-events"

    @property
    def audit_stream(self) -> str:
        """Append-only AuditRecords (orchestrator, http-api); retention AUDIT_RETENTION_DAYS and
        AUDIT_MAXLEN; read by the admin page's audit search and its JSONL export."""
        return f"{self.prefix}:stream:audit"

    def all_shard_streams(self) -> list[str]:
        shards = range(self.shard_count)
        return [
            *(self.inbound_stream(s) for s in shards),
            *(self.job_callback_stream(s) for s in shards),
            *(self.run_events_stream(s) for s in shards),
        ]

    # ---- leases, heartbeats, idempotency ---------------------------------------------------
    def shard_lease(self, shard: int) -> str:
        return f"{self.prefix}:lease:shard:{shard}"

    def lease(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}"

    def heartbeat(self, service: str, instance: str) -> str:
        return f"{self.prefix}:hb:{service}:{instance}"

    def heartbeat_pattern(self) -> str:
        return f"{self.prefix}:hb:*"

    def idempotency(self, scope: str, key: str) -> str:
        return f"{self.prefix}:idem:{scope}:{key}"

    def rpc_reply(self, request_id: str) -> str:
        return f"{self.prefix}:rpc:reply:{request_id}"

    # ---- sessions (hash tag = session key) --------------------------------------------------
    def _session(self, session_key: str, what: str) -> str:
        return f"{self.prefix}:{{s:{session_key}}}:{what}"

    def session(self, session_key: str) -> str:
        """Hash: codex thread id, auth profile, workspace, status, timestamps, usage totals."""
        return self._session(session_key, "session")

    def session_state(self, session_key: str) -> str:
        """Hash: the per-session state machine (idle/debouncing/running), active run id."""
        return self._session(session_key, "state")

    def session_queue(self, session_key: str) -> str:
        """List of pending InboundEvent JSON waiting for the next turn."""
        return self._session(session_key, "queue")

    def session_participants(self, session_key: str) -> str:
        """Hash: platform user id → display name of humans who spoke in the thread."""
        return self._session(session_key, "participants")

    def session_timeline(self, session_key: str) -> str:
        """Capped list of timeline entries for the admin page."""
        return self._session(session_key, "timeline")

    def session_token_hash(self, session_key: str) -> str:
        """The sha256 of the session's current http-api capability token."""
        return self._session(session_key, "token")

    def session_seen(self, session_key: str) -> str:
        """Sorted set: inbound event ids already handled for the session (capped), for redelivery."""
        return self._session(session_key, "seen")

    @property
    def sessions_index(self) -> str:
        """Sorted set: session key scored by last activity (ms)."""
        return f"{self.prefix}:sessions"

    def session_by_token(self, token_sha256: str) -> str:
        """String: session key for a capability token's sha256."""
        return f"{self.prefix}:session-token:{token_sha256}"

    # ---- runs ------------------------------------------------------------------------------
    def run(self, run_id: str) -> str:
        """Hash: session key, runner id, status, timestamps of one run."""
        return f"{self.prefix}:run:{run_id}"

    def codex_thread_runner(self, thread_id: str) -> str:
        """String: the runner whose app-server last loaded this Codex thread (its writer)."""
        return f"{self.prefix}:codex-thread:{thread_id}:runner"

    @property
    def active_runs(self) -> str:
        """Sorted set: run id scored by start time (ms), for reconciliation and MAX_ACTIVE_RUNS."""
        return f"{self.prefix}:runs:active"

    @property
    def runs_waiting(self) -> str:
        """Sorted set: session keys waiting for a MAX_ACTIVE_RUNS slot, scored by arrival (ms).

        The hash tag is the name of `active_runs`, so both land in one cluster slot and the
        admission script may touch them together.
        """
        return f"{{{self.prefix}:runs:active}}:waiting"

    # ---- orchestrator replicas and timers ----------------------------------------------------
    @property
    def redis_epoch(self) -> str:
        """String without expiry: gone means Redis lost its data (a restart without persistence,
        a flush), so every heartbeat read from it is as fresh as that restart (reconcile.py)."""
        return f"{self.prefix}:redis-epoch"

    @property
    def job_callback_streams_since(self) -> str:
        """String (ms on Redis's clock) without expiry: when the first orchestrator reading the
        job-callback streams took a shard. A job callback still on a platform inbound stream
        from before (the rolling upgrade) is handled only if its entry is older than this plus
        the rollout window (orchestrator/stream_admission.py); any later one is refused."""
        return f"{self.prefix}:job-callbacks:since"

    @property
    def orchestrator_members(self) -> str:
        """Sorted set: live orchestrator replica ids scored by membership expiry (ms)."""
        return f"{self.prefix}:orch:members"

    def orchestrator_timers(self, shard: int) -> str:
        """Sorted set: '<kind>|<session key>' scored by due time (ms) for sessions of one shard."""
        return f"{self.prefix}:orch:due:{shard}"

    def orchestrator_wake(self, shard: int) -> str:
        """List: a nudge for the timer of the replica holding `shard` (BLPOP wakes it)."""
        return f"{self.prefix}:orch:wake:{shard}"

    # ---- outbound bookkeeping (owned by each ingress) --------------------------------------
    def outbound_ref(self, platform: str, ref: str) -> str:
        """Hash: platform message ids / stream state behind a logical ref (e.g. a progress id)."""
        return f"{self.prefix}:out:{platform}:{ref}"

    def live_view(self, platform: str, view_id: str) -> str:
        """Hash: one live view's applied seq, pace, platform handle and parked snapshot (ingress kit)."""
        return self.outbound_ref(platform, f"view:{view_id}")

    def message_ref(self, platform: str, ref: str) -> str:
        """Hash: the platform message ids behind a logical `ref` of a post (ingress kit)."""
        return self.outbound_ref(platform, f"kref:{ref}")

    def platform_capability(self, platform: str, workspace: str, capability: str) -> str:
        """String: a learned capability ('yes'/'no'), e.g. native streaming refused."""
        return f"{self.prefix}:cap:{platform}:{workspace}:{capability}"

    # ---- Discord (owned by ingress-discord; all below `out:discord:`, its ACL pattern) -----------
    def discord_channel(self, channel_id: str) -> str:
        """String (JSON): a session channel's parent channel and, for a task thread, its name and
        whether the thread was created yet."""
        return self.outbound_ref("discord", f"channel:{channel_id}")

    def discord_last(self, channel_id: str) -> str:
        """String: the id of the last message of a session channel stored on its inbound stream
        (where the backfill after a reconnect starts)."""
        return self.outbound_ref("discord", f"last:{channel_id}")

    @property
    def discord_active(self) -> str:
        """Sorted set: session channel id scored by its last stored message (ms); the backfill's list."""
        return self.outbound_ref("discord", "active")

    def discord_interaction(self, channel_id: str, user_id: str) -> str:
        """String (JSON) with TTL: the token of a user's last `/codex` interaction in a channel,
        for the ephemeral follow-up that answers it."""
        return self.outbound_ref("discord", f"ix:{channel_id}:{user_id}")

    def discord_parts(self, parts_id: str) -> str:
        """Hash: piece index → Discord message id of a long post, so a redelivery resumes it."""
        return self.outbound_ref("discord", f"parts:{parts_id}")

    # ---- the web chat (owned by ingress-web; the thread store is its "platform") ------------
    @property
    def web_threads(self) -> str:
        """Sorted set: web thread root id scored by last activity (ms)."""
        return f"{self.prefix}:web:threads"

    def web_thread(self, root: str) -> str:
        """Hash: a web thread's title, creator, created/updated ms, status."""
        return f"{self.prefix}:web:thread:{root}"

    def web_messages(self, root: str) -> str:
        """Hash: message id → message JSON (author, text, html, buttons, files, view) of one thread."""
        return f"{self.prefix}:web:messages:{root}"

    @property
    def web_feed(self) -> str:
        """Stream: every change of any web thread (a message JSON upsert); browsers follow it by SSE."""
        return f"{self.prefix}:stream:web-feed"

    @property
    def web_message_ids(self) -> str:
        """String counter: the next web message id (ids sort in the order they were given)."""
        return f"{self.prefix}:web:ids"

    @property
    def web_cookie_key(self) -> str:
        """String: the random key signing sign-in cookies when no admin token is configured."""
        return f"{self.prefix}:web:cookie-key"

    def web_client_message(self, client_id: str) -> str:
        """String: the message id given to a browser's send (its retry gets the same one)."""
        return f"{self.prefix}:web:client:{client_id}"

    def web_file(self, file_id: str) -> str:
        """Hash: a stored file's name, type, size, path and thread (uploads both ways)."""
        return f"{self.prefix}:web:file:{file_id}"

    # ---- workspace mode (orchestrator) ---------------------------------------------------------
    def workspace_home(self, platform: str, conversation_id: str) -> str:
        """String: root message id of a home channel's operator thread (its first message)."""
        return f"{self.prefix}:ws:home:{platform}:{conversation_id}"

    def workspace_delegations(self, operator_session: str) -> str:
        """Hash: delegation id → JSON record (cwd, task session, mode, group, status, result)."""
        return self._session(operator_session, "delegations")

    def workspace_task(self, task_session: str) -> str:
        """String: JSON {operator, delegation} — the session is a delegated task."""
        return self._session(task_session, "delegation")

    # ---- jobs, people ----------------------------------------------------------------------
    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    @property
    def jobs_index(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def rq_queue_name(self) -> str:
        return f"{self.prefix}-jobs"

    def user_name(self, platform: str, user_id: str) -> str:
        """String with TTL: a platform user's display name as looked up by its ingress."""
        return f"{self.prefix}:user-name:{platform}:{user_id}"

    def github_authors(self, platform: str) -> str:
        """Hash: platform user id → JSON {name, email, source: manual|inferred}."""
        return f"{self.prefix}:github-authors:{platform}"

    # ---- co-authors of Codex's commits (git identity) -----------------------------------------
    def session_coauthors(self, session_key: str) -> str:
        """Hash: the session's co-author answer (excluded user ids, allow_missing, who, when)."""
        return self._session(session_key, "coauthors")

    def coauthor_prompt_cooldown(self, session_key: str, user_id: str) -> str:
        """String with TTL: a 'Configure co-authors' prompt went to this user recently."""
        return self._session(session_key, f"coauthor-prompt:{user_id}")

    def session_git_hook_token(self, session_key: str) -> str:
        """String: sha256 of the session's commit-hook token (narrow: co-author endpoints only)."""
        return self._session(session_key, "git-hook-token")

    def git_hook_token(self, token_sha256: str) -> str:
        """String: session key for a commit-hook token's sha256."""
        return f"{self.prefix}:git-hook-token:{token_sha256}"

    def user_usage(self, platform: str, user_id: str, day: str) -> str:
        return f"{self.prefix}:usage:{platform}:{user_id}:{day}"

    # ---- budgets and usage over time (libs.usage_counters) -------------------------------------
    def budget_counter(self, scope: str, subject: str, period_id: str) -> str:
        """Hash: tokens, micro_usd, input, cached, output, turns of one subject in one period
        (`d2026-12-03` / `m2026-12`, UTC); HINCRBY only, so replicas count exactly."""
        return f"{self.prefix}:budget:{scope}:{subject}:{period_id}"

    def budget_top(self, scope: str, period_id: str) -> str:
        """Sorted set: subjects of a scope that used tokens in a period, scored by tokens."""
        return f"{self.prefix}:budget-top:{scope}:{period_id}"

    @property
    def budget_overrides(self) -> str:
        """Hash: `<scope>.<period>.<unit>|<subject>` → an admin's limit (counter units; 0 = none)."""
        return f"{self.prefix}:budget:overrides"

    @property
    def budget_exempt(self) -> str:
        """Set: `<scope>|<subject>` an admin exempted from that scope's budgets."""
        return f"{self.prefix}:budget:exempt"

    def metrics_bucket(self, slot: int) -> str:
        """Hash: turn latency and run queue samples of one time slot (epoch seconds // 300). The
        hash tag is `active_runs`' name, so the sampling script reads those sets and writes here."""
        return f"{{{self.prefix}:runs:active}}:metrics:{slot}"

    @property
    def auth_profiles(self) -> str:
        """Hash: profile name → JSON metadata (kind, created_at); secrets live on disk (0600)."""
        return f"{self.prefix}:auth-profiles"

    @property
    def active_auth_profile(self) -> str:
        return f"{self.prefix}:auth-profile:active"

    @property
    def channel_defaults(self) -> str:
        """Hash: `<platform>:<conversation id>` → JSON per-channel defaults (repo, model, sandbox,
        allowed repos and models), edited by admins in the admin API."""
        return f"{self.prefix}:channel-defaults"

    def admin_login_code(self, code_sha256: str) -> str:
        """String: a one-time admin login code `up` prints (sha256 of it), redeemed once by the
        http-api's login endpoint (GETDEL)."""
        return f"{self.prefix}:admin:login-code:{code_sha256}"
