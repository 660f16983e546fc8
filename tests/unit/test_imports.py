"""The import graph of gridfactor has no cycle (what `lint-imports` also checks in CI)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_no_import_cycles_between_modules_or_packages():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "import_cycles.py"), str(REPO / "src")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("0 import cycles between modules"), proc.stdout
