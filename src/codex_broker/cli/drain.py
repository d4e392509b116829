"""`codex-broker drain <runner instance>`: what SIGTERM does to one codex-runner, on demand.

For a host or node going down while its pod or container stays, or to empty a runner before an
upgrade by hand. The control itself is libs.drain (the admin page's Drain button sends the same).
"""

from __future__ import annotations

from codex_broker.libs.drain import RUNNER_SERVICE, DrainError, drain

__all__ = ["RUNNER_SERVICE", "DrainError", "drain"]
