"""runtime.private_data_root, in a child process (it sets the process umask)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

CHILD = """
import sys
from pathlib import Path
from codex_broker.libs.runtime import private_data_root
root = Path(sys.argv[1])
private_data_root(root)
(root / "logs" / "svc").mkdir(parents=True)
(root / "logs" / "svc" / "x.log").write_text("line")
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_process_creates_only_private_entries_and_closes_an_open_data_root(tmp_path: Path) -> None:
    fresh, old = tmp_path / "fresh" / "data", tmp_path / "old"
    old.mkdir(mode=0o755)
    old.chmod(0o755)
    for root in (fresh, old):
        subprocess.run([sys.executable, "-c", CHILD, str(root)], check=True, timeout=60)
        assert _mode(root) == 0o700
        assert _mode(root / "logs") == _mode(root / "logs" / "svc") == 0o700
        assert _mode(root / "logs" / "svc" / "x.log") == 0o600
