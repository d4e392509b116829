"""Settings of the http-api and its rq worker (read once in `main()`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from codex_broker.libs import web_address
from codex_broker.libs.budgets import BudgetSettings
from codex_broker.libs.rawlog import RawLogSettings

MB = 1024 * 1024
FIVE_HOURS_S = 5 * 3600


class Settings(RawLogSettings, BudgetSettings):
    history_api_max_limit: int = Field(
        default=50, ge=1, le=1000, description="Upper clamp of `limit` on thread-history requests"
    )
    max_body_bytes: int = Field(
        default=48 * MB,
        ge=1024,
        description="Largest accepted request body (413 above); fits a 30 MB file as base64",
    )
    max_upload_bytes: int = Field(
        default=100 * MB, ge=1, description="Largest file /chat/post-file accepts for Slack"
    )
    feishu_max_image_bytes: int = Field(
        default=10 * MB, ge=1, description="Feishu: images up to this size are sent as image messages"
    )
    feishu_max_file_bytes: int = Field(
        default=30 * MB, ge=1, description="Feishu: largest file upload (400 file_too_large above)"
    )
    allowed_file_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Extra directories post-file may read from (comma separated absolute paths)",
    )
    broker_admin_token: SecretStr | None = Field(
        default=None,
        description="Token for /admin/api/* (unset: every admin call is refused; `up` makes one)",
    )
    admin_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Host names the admin page may be reached by with its cookie (comma separated; "
            "default: localhost, 127.0.0.1, ::1 and HTTP_API_HOST unless it is a wildcard)"
        ),
    )
    admin_session_ttl_s: int = Field(
        default=12 * 3600, ge=60, le=30 * 86400, description="Lifetime of the admin page's login cookie"
    )
    rpc_timeout_s: float = Field(
        default=20.0, gt=0, le=300, description="Seconds to wait for the ingress to answer history/post"
    )
    upload_timeout_s: float = Field(
        default=120.0, gt=0, le=600, description="Seconds to wait for the ingress to confirm an upload"
    )
    ready_services: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["orchestrator", "codex-runner"],
        description="Services whose fresh heartbeat /readyz requires (comma separated)",
    )
    job_max_timeout_s: int = Field(
        default=FIVE_HOURS_S, ge=1, le=FIVE_HOURS_S, description="Longest a background job may run"
    )
    job_default_timeout_s: int = Field(
        default=FIVE_HOURS_S, ge=1, le=FIVE_HOURS_S, description="Job time limit when none is given"
    )
    job_retention_s: int = Field(
        default=7 * 86400, ge=60, description="How long finished job records are kept"
    )
    job_max_script_bytes: int = Field(
        default=64 * 1024, ge=64, description="Largest script or command a job may register"
    )
    job_kill_grace_s: float = Field(
        default=5.0, gt=0, le=60, description="Seconds between SIGTERM and SIGKILL of a job's processes"
    )
    job_workers: int = Field(default=4, ge=1, le=64, description="Background jobs run at the same time")
    job_stale_after_s: float = Field(
        default=15.0, gt=0, description="A running job unseen by its worker this long is re-enqueued"
    )
    job_recover_interval_s: float = Field(
        default=10.0, gt=0, description="Seconds between the worker's checks for orphaned jobs"
    )
    worker_name: str | None = Field(default=None, description="Name of this rq worker (default: INSTANCE_ID)")
    codex_bin: str | None = Field(
        default=None, description="Codex CLI executable (default: the pinned one in .tools, then PATH)"
    )
    # on by default, as for the session's commands: a job reports back through the broker's API
    network_access: bool = Field(
        default=True, description="Network access inside the sandbox (Codex's shell → the broker API)"
    )
    jobs_unsandboxed: bool = Field(
        default=False,
        description="Where Codex's sandbox cannot start (no user namespaces), run background jobs "
        "without it instead of refusing them; see docs/security.md",
    )

    # where the web chat is (ingress-web serves it): the admin page links web sessions to it
    http_web_host: str = Field(default="127.0.0.1", description="Bind address of the web chat")
    http_web_port: int = Field(default=3100, ge=1, le=65535, description="Port of the web chat")
    web_public_url: str | None = Field(
        default=None, description="URL people open for the web chat (default http://HOST:PORT/)"
    )

    @property
    def web_chat_url(self) -> str:
        return web_address.chat_url(self.web_public_url, self.http_web_host, self.http_web_port)

    @field_validator("allowed_file_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(part.strip()) for part in value.split(",") if part.strip()]
        return value

    @field_validator("ready_services", "admin_allowed_hosts", mode="before")
    @classmethod
    def _split_services(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_file_roots")
    @classmethod
    def _absolute_roots(cls, value: list[Path]) -> list[Path]:
        for root in value:
            if not root.is_absolute():
                raise ValueError(f"{root} is not an absolute path")
        return value
