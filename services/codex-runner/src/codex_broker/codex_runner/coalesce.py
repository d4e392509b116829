"""Agent text deltas arrive per token; chat surfaces and Redis want far fewer, larger pieces.

The coalescer is pure (the caller passes the clock): it holds text until `flush_bytes` are
pending or `flush_s` have passed since the first pending piece. The runner also flushes before
any other event of the run, so deltas never overtake or trail the events around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DeltaCoalescer:
    flush_s: float = 0.1
    flush_bytes: int = 2048
    _parts: list[str] = field(default_factory=list)
    _size: int = 0
    _since: float | None = None

    @property
    def pending(self) -> bool:
        return self._size > 0

    def add(self, text: str, now: float) -> bool:
        """Hold `text`; True when the held text should be flushed now (size bound reached)."""
        if not text:
            return False
        if self._since is None:
            self._since = now
        self._parts.append(text)
        self._size += len(text.encode())
        return self._size >= self.flush_bytes

    def due_at(self) -> float | None:
        """When the held text must go out at the latest (None when nothing is held)."""
        return None if self._since is None else self._since + self.flush_s

    def is_due(self, now: float) -> bool:
        due = self.due_at()
        return due is not None and now >= due

    def take(self) -> str:
        text = "".join(self._parts)
        self._parts.clear()
        self._size = 0
        self._since = None
        return text
