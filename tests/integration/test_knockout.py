"""The knock-out run, in the suite (issue 23): every security test names the control it proves
(@pytest.mark.control); tests/knockout.py removes each control in turn from a fresh platform and
runs the tests that name it, which must all fail there.  This runs it and fails on any test that
still passes without its control (a test that proves something else than it says)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(3000)
def test_every_security_test_fails_without_the_control_it_names():
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "knockout.py")], cwd=ROOT, capture_output=True,
                       text=True, timeout=3000)
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert rows, r.stdout[-2000:] + r.stderr[-2000:]
    print("\n".join(r.stdout.splitlines()[-len(rows) - 1:]))  # the figures, in the test's output
    broken = {row["control"]: row.get("error_output", row["summary"]) for row in rows if row["errors"]}
    assert not broken, "a knock-out run that broke (no proof either way):\n" + "\n\n".join(
        f"== {c}\n{out}" for c, out in broken.items())
    still = {row["control"]: row["still_passing"] for row in rows if row["passed"] or not row["failed"]}
    assert not still, f"tests that pass without the control they name: {still}"
    assert r.returncode == 0, r.stdout[-2000:]
