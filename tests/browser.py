"""Debian's Chromium for the browser tests (driven by Playwright), and when they may be skipped.

Chromium is a Debian package: `./run test` cannot install it everywhere (no root, no apt), so on
a developer's machine without it the browser tests are skipped with the command that fixes it.
`.ci/run` installs it and sets CB_REQUIRE_BROWSER=1: there a missing browser fails the tests
(they try to launch it) instead of skipping them silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CB_REQUIRE_BROWSER"),
    reason="/usr/bin/chromium is not installed (apt-get install -y chromium)",
)
