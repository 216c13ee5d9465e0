"""cli/REFERENCE.md is the CLI's own help, regenerated: it cannot drift from the code."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reference_is_current(tmp_path):
    out = tmp_path / "ref.md"
    typer = Path(sys.executable).parent / "typer"
    r = subprocess.run([str(typer), "yunshang.cli", "utils", "docs", "--name", "yunshang", "--output", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == (ROOT / "cli" / "REFERENCE.md").read_text(), (
        "regenerate: .venv/bin/typer yunshang.cli utils docs --name yunshang --output cli/REFERENCE.md")
