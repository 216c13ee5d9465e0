"""The knock-out run, in the suite (issue 23): every security test names the control it proves
(@pytest.mark.control); tests/knockout.py removes each control in turn from a fresh platform and
runs the tests that name it, which must all fail there.  This runs it and fails on any test that
still passes without its control (a test that proves something else than it says).

The run is started when the suite starts and goes on beside it (tests/knockout_run.py; its
platforms are its own, the real nodes share the host through helpers.host_lock); this test, put
last, reads its verdict (issue 30).  Run alone, it starts the run itself and waits for it."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

import knockout_run


@pytest.mark.timeout(3000)
def test_every_security_test_fails_without_the_control_it_names():
    run = knockout_run.Background(Path(os.environ.get(knockout_run.RUN_ENV)
                                       or tempfile.mkdtemp(prefix="yunshang-knockout-")))
    if not run.started:  # run alone, or without the suite's start
        run.start()
    out, err, returncode = run.result(timeout=3000)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert rows, out[-2000:] + err[-2000:]
    print("\n".join(out.splitlines()[-len(rows) - 3:]))  # the figures, in the test's output
    broken = {row["control"]: row.get("error_output", row["summary"]) for row in rows if row["errors"]}
    assert not broken, "a knock-out run that broke (no proof either way):\n" + "\n\n".join(
        f"== {c}\n{out}" for c, out in broken.items())
    still = {row["control"]: row["still_passing"] for row in rows if row["passed"] or not row["failed"]}
    assert not still, f"tests that pass without the control they name: {still}"
    assert returncode == 0, out[-2000:]
