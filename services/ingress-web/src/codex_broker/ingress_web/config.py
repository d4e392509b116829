"""Settings of ingress-web (read once in `main()` and passed down)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from codex_broker.libs import web_address
from codex_broker.libs.settings import CommonSettings

MB = 1024 * 1024


class Settings(CommonSettings):
    metrics_port: int = Field(default=9106, ge=0, le=65535, description="Port of /metrics and health")

    http_web_host: str = Field(default="127.0.0.1", description="Bind address of the web chat")
    http_web_port: int = Field(default=3100, ge=1, le=65535, description="Port of the web chat")
    web_public_url: str | None = Field(
        default=None, description="URL people open for the web chat (default http://HOST:PORT/)"
    )
    broker_admin_token: SecretStr | None = Field(
        default=None,
        description="Token that signs in to the web chat (and the admin API); unset: nobody signs in "
        "(`up` always makes one)",
    )
    web_cookie_secure: bool = Field(
        default=False,
        description="Mark the sign-in cookie Secure (set it when the chat is served over https)",
    )
    web_session_days: int = Field(default=30, ge=1, le=365, description="Days a browser stays signed in")
    web_max_upload_bytes: int = Field(
        default=20 * MB, ge=1, description="Largest file a browser may attach (413 file_too_large above)"
    )
    web_progress_interval_s: float = Field(
        default=0.5, ge=0.05, le=60, description="Least seconds between two updates of one live view"
    )
    web_feed_maxlen: int = Field(
        default=20_000, ge=100, description="Approximate length of the web feed stream browsers follow"
    )
    outbound_concurrency: int = Field(
        default=8, ge=1, le=256, description="Outbound actions of different threads handled at once"
    )
    outbound_block_ms: int = Field(
        default=2000, ge=10, description="Blocking read time of the outbound stream"
    )

    @property
    def chat_url(self) -> str:
        return web_address.chat_url(self.web_public_url, self.http_web_host, self.http_web_port)

    @property
    def web_root(self) -> Path:
        """The chat's own files: browsers' uploads and the files Codex sent (DATA_ROOT/web)."""
        return Path(self.data_root) / "web"

    @property
    def outbox_root(self) -> Path:
        """The http-api's post-file copies; the only host path an upload is read from."""
        return Path(self.data_root) / "outbox"
