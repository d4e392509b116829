"""Raw traffic logs: every Slack/Feishu envelope, Codex RPC message or HTTP request, verbatim but
bounded and redacted, one JSON line per record in hourly files under DATA_ROOT/logs/raw/<kind>/.

Off by default: raw traffic is verbose and the first thing an operator wants when one thread goes
wrong, so each kind has its own switch. A record carrying a session key is also written to
logs/sessions/<safe key>/raw/<kind>/ so that one thread's traffic can be read on its own.

Order of the treatment matters: inline base64 blobs are replaced by a size marker first (they are
the usual reason a record is huge and never useful in a log), then secrets are redacted, then the
record is cut to LOG_RAW_MAX_BYTES while staying valid JSON.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from codex_broker.libs.logfiles import hourly_name
from codex_broker.libs.logs import REDACTED, Redactor
from codex_broker.libs.paths import safe_name
from codex_broker.libs.settings import CommonSettings

DEFAULT_MAX_BYTES = 131_072
MIN_MAX_BYTES = 1024
# Longer than any secret or token we redact (see render).
_SECRET_MARGIN = 1024

# Kinds used by the services (the directory names under logs/raw/).
KIND_SLACK_EVENTS = "slack-events"
KIND_FEISHU_EVENTS = "feishu-events"
KIND_CODEX_RPC = "codex-rpc"
KIND_HTTP_REQUESTS = "http-requests"


class RawLogSettings(CommonSettings):
    """Inherit this instead of CommonSettings in a service that writes raw logs."""

    log_raw_slack_events: bool = Field(default=False, description="Write raw Slack envelopes to logs/raw")
    log_raw_feishu_events: bool = Field(default=False, description="Write raw Feishu events to logs/raw")
    log_raw_codex_rpc: bool = Field(default=False, description="Write raw Codex app-server RPC to logs/raw")
    log_raw_http_requests: bool = Field(
        default=False, description="Write raw http-api requests and responses to logs/raw"
    )
    log_raw_max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=MIN_MAX_BYTES,
        description="Largest raw log record in bytes; bigger records are truncated (still valid JSON)",
    )

    def raw_log(self, kind: str, redactor: Redactor) -> RawLog:
        """The RawLog of one kind, switched by the matching LOG_RAW_* setting."""
        enabled = {
            KIND_SLACK_EVENTS: self.log_raw_slack_events,
            KIND_FEISHU_EVENTS: self.log_raw_feishu_events,
            KIND_CODEX_RPC: self.log_raw_codex_rpc,
            KIND_HTTP_REQUESTS: self.log_raw_http_requests,
        }[kind]
        return RawLog(kind, self.data_root, enabled, self.log_raw_max_bytes, redactor)


# ---- base64 ---------------------------------------------------------------------------------

# Values under these keys are file contents (Slack/broker uploads, Codex image inputs).
_BASE64_KEY = re.compile(r"(?i)(base64|b64)")
_DATA_URI = re.compile(r"data:([\w.+/-]{1,100});base64,([A-Za-z0-9+/=\s_-]{16,})")
_BASE64_ONLY = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")
# A bare string this long made only of base64 characters is a blob, whatever its key.
_BARE_BASE64_MIN = 1024


def base64_marker(encoded: str) -> str:
    """`[base64 N bytes]` where N is the decoded size."""
    compact = "".join(encoded.split())
    size = max(0, len(compact) * 3 // 4 - compact[-2:].count("="))
    return f"[base64 {size} bytes]"


def _strip_base64_text(value: str, key: str | None) -> str:
    if key is not None and _BASE64_KEY.search(key) and len(value) >= 16:
        return base64_marker(value)
    if "base64," in value:
        value = _DATA_URI.sub(lambda m: f"data:{m.group(1)};base64,{base64_marker(m.group(2))}", value)
    if len(value) >= _BARE_BASE64_MIN and _BASE64_ONLY.match(value) and _mixed(value):
        return base64_marker(value)
    return value


def _mixed(value: str) -> bool:
    """Encoded binary mixes character classes; a long run of one letter or a long number does not."""
    head = value[:256]
    classes = (str.isupper, str.islower, str.isdigit)
    return sum(any(test(c) for c in head) for test in classes) >= 2


def strip_base64(value: Any, key: str | None = None) -> Any:
    """Replace inline base64 file contents (by key name, data: URI, or shape) with a size marker."""
    if isinstance(value, str):
        return _strip_base64_text(value, key)
    if isinstance(value, dict):
        return {k: strip_base64(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_base64(v) for v in value]
    return value


# ---- secrets beyond the shared redactor -----------------------------------------------------

# A record logged as text (a raw stdio line, a request body) keeps "apiKey": "..." as text, where
# the key-name rule of Redactor.value cannot see it.
_INLINE_SECRET_FIELD = re.compile(
    r"(?i)(\"[\w-]*(?:api_?key|secret|token|password)[\w-]*\"\s*:\s*\")((?:[^\"\\]|\\.)+)(\")"
)


def redact_record(value: Any, redactor: Redactor, key: str | None = None) -> Any:
    """Redactor.value, plus secret-named JSON fields inside string values."""
    if isinstance(value, str):
        redacted = redactor.value(value, key)
        if isinstance(redacted, str) and '"' in redacted:
            redacted = _INLINE_SECRET_FIELD.sub(lambda m: m.group(1) + REDACTED + m.group(3), redacted)
        return redacted
    if isinstance(value, dict):
        return {k: redact_record(v, redactor, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_record(v, redactor) for v in value]
    return redactor.value(value, key)


# ---- truncation -----------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


def _size(value: Any) -> int:
    return len(_dumps(value).encode("utf-8"))


def _cap_strings(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        if len(value) <= cap:
            return value
        return value[:cap] + f"…[truncated {len(value) - cap} chars]"
    if isinstance(value, dict):
        return {k: _cap_strings(v, cap) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cap_strings(v, cap) for v in value]
    return value


def _longest_string(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest_string(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return max((_longest_string(v) for v in value), default=0)
    return 0


def truncate_value(value: Any, max_bytes: int, size: int | None = None) -> tuple[Any, bool]:
    """Shrink `value` until its JSON is at most `max_bytes`; returns (value, was_truncated).

    Long strings are cut first (all to the same length, found by bisection, so the structure stays
    readable); a structure too big even then becomes a string preview of its JSON. `size` is the
    JSON size of `value` when the caller already knows it.
    """
    if (_size(value) if size is None else size) <= max_bytes:
        return value, False
    # no string longer than the whole budget can survive: cut those first so that each bisection
    # step serializes at most a few budgets' worth instead of the whole original
    value = _cap_strings(value, max_bytes)
    low, high = 0, min(_longest_string(value), max_bytes)
    best: Any = None
    while low <= high:
        cap = (low + high) // 2
        candidate = _cap_strings(value, cap)
        if _size(candidate) <= max_bytes:
            best, low = candidate, cap + 1
        else:
            high = cap - 1
    if best is not None and low > 32:
        return best, True
    return _preview(_dumps(value), max_bytes), True


def _preview(text: str, max_bytes: int) -> str:
    marker = f"…[truncated, {len(text.encode('utf-8'))} bytes]"
    keep = max(0, max_bytes - len(marker.encode("utf-8")) - 2)
    while keep > 0:
        preview = text[:keep] + marker
        if _size(preview) <= max_bytes:
            return preview
        keep = keep * 9 // 10  # JSON escaping grew it: shrink and retry
    return marker


# ---- the writer -----------------------------------------------------------------------------


class RawLog:
    """Appends treated records of one kind to hourly JSONL files; a no-op when disabled."""

    def __init__(self, kind: str, data_root: Path, enabled: bool, max_bytes: int, redactor: Redactor) -> None:
        self.kind = safe_kind(kind)
        self.logs_root = Path(data_root) / "logs"
        self.enabled = enabled
        self.max_bytes = max(MIN_MAX_BYTES, max_bytes)
        self.redactor = redactor
        self._lock = threading.Lock()  # the Feishu SDK calls from its own thread

    def directory(self) -> Path:
        return self.logs_root / "raw" / self.kind

    def session_directory(self, session_key: str) -> Path:
        return self.logs_root / "sessions" / safe_name(session_key) / "raw" / self.kind

    def write(self, record: dict[str, Any], *, session_key: str | None = None) -> None:
        """Log one record. Never raises: a broken log must not break the traffic it records."""
        if not self.enabled:
            return
        try:
            line = self.render(record, session_key=session_key, at=time.time())
            name = hourly_name(datetime.now(UTC))
            targets = [self.directory()]
            if session_key:
                targets.append(self.session_directory(session_key))
            with self._lock:
                for directory in targets:
                    _append(directory, name, line)
        except Exception:  # pragma: no cover - disk full, permissions: drop the record
            return

    def render(self, record: dict[str, Any], *, session_key: str | None, at: float) -> str:
        """The JSON line for one record (pure: no I/O), at most `max_bytes` long in UTF-8."""
        stripped = strip_base64(record)
        original = _size(stripped)
        # Redacting megabytes that truncation then drops is the costly part: cut every string to the
        # budget first, with a margin so that a secret straddling the cut is never half-written.
        precut = original > self.max_bytes
        if precut:
            stripped = _cap_strings(stripped, self.max_bytes + _SECRET_MARGIN)
        body = redact_record(stripped, self.redactor)
        envelope: dict[str, Any] = {
            "ts": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
            "kind": self.kind,
        }
        if session_key:
            envelope["session_key"] = self.redactor.text(session_key)
        overhead = _size({**envelope, "truncated": True, "original_bytes": 10**12, "record": None})
        budget = max(64, self.max_bytes - overhead + 4)
        body, truncated = truncate_value(body, budget, None if precut else _size(body))
        if truncated:
            envelope["truncated"] = True
            envelope["original_bytes"] = original
        envelope["record"] = body
        return _dumps(envelope)


def safe_kind(kind: str) -> str:
    cleaned = re.sub(r"[^a-z0-9-]+", "-", kind.lower()).strip("-")
    if not cleaned:
        raise ValueError(f"invalid raw log kind {kind!r}")
    return cleaned


def _append(directory: Path, name: str, line: str) -> None:
    data = (line + "\n").encode("utf-8")
    try:
        fh = open(directory / name, "ab")  # noqa: SIM115 - retried below after mkdir
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True)
        fh = open(directory / name, "ab")  # noqa: SIM115
    with fh:
        fh.write(data)  # one write of the whole line: O_APPEND keeps concurrent writers' lines whole
