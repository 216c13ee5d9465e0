"""The knock-out run beside the suite (issue 30): tests/knockout.py, started by the session's own
process when the suite holds its test, goes on while the other tests run; its test
(tests/integration/test_knockout.py), put last, reads the verdict from the run's files.  With
pytest workers (-n) the controller starts it, once the first worker's collection shows the test,
and the workers find its files by the directory named in $YUNSHANG_KNOCKOUT_RUN.  A run nobody
waited for (the test deselected, the suite interrupted) is ended with its platforms.

A plugin of the suite (tests/conftest.py names it in ``pytest_plugins``)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().with_name("knockout.py")
TEST = "test_every_security_test_fails_without_the_control_it_names"


class Background:
    """The whole knock-out run as a process of its own beside the suite: its output and exit code
    are files in ``where`` (the directory the suite names in $YUNSHANG_KNOCKOUT_RUN), so that the
    process that started it and the one whose test reads its verdict need not be the same (pytest
    workers)."""

    def __init__(self, where: Path):
        self.where = where

    @property
    def started(self) -> bool:
        return (self.where / "pid").exists()

    @property
    def done(self) -> bool:
        return (self.where / "returncode").exists()

    def start(self) -> "Background":
        import shlex

        self.where.mkdir(parents=True, exist_ok=True)
        w = self.where
        script = (f"{shlex.quote(sys.executable)} {shlex.quote(str(SCRIPT))} "
                  f"> {shlex.quote(str(w / 'stdout'))} 2> {shlex.quote(str(w / 'stderr'))}; "
                  f"echo $? > {shlex.quote(str(w / 'rc.tmp'))} && mv {shlex.quote(str(w / 'rc.tmp'))} "
                  f"{shlex.quote(str(w / 'returncode'))}")
        proc = subprocess.Popen(["/bin/sh", "-c", script], cwd=ROOT, start_new_session=True,
                                stdin=subprocess.DEVNULL)
        (w / "pid").write_text(str(proc.pid))
        return self

    def result(self, timeout: float) -> tuple[str, str, int]:
        deadline = time.monotonic() + timeout
        while not self.done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the knock-out run ({self.where}) did not end within {timeout:.0f} s")
            time.sleep(1)
        return ((self.where / "stdout").read_text(errors="replace"), (self.where / "stderr").read_text(errors="replace"),
                int((self.where / "returncode").read_text().strip() or 1))

    def stop(self) -> None:
        """At the end of the session: a run nobody waited for (its test deselected, the suite
        interrupted) is ended, with its platforms; the files of one that passed are removed (those
        of one that failed are kept for a look)."""
        import os
        import signal

        if self.done:
            if (self.where / "returncode").read_text().strip() == "0":
                import shutil

                shutil.rmtree(self.where, ignore_errors=True)  # read and passed: nothing to look into
            return
        if not self.started:
            return
        pgid = int((self.where / "pid").read_text())
        try:
            os.killpg(pgid, signal.SIGTERM)
            for _ in range(60):
                time.sleep(1)
                os.killpg(pgid, 0)
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def figures(self) -> list[str]:
        """The run's per-control seconds and totals, for the suite's summary."""
        if not self.done:
            return []
        return [ln for ln in (self.where / "stdout").read_text(errors="replace").splitlines()
                if ln.startswith(("seconds per control", "knock-out run took")) or " tests failed without" in ln]


RUN_ENV = "YUNSHANG_KNOCKOUT_RUN"
KEY = pytest.StashKey[Background]()


def _run(config) -> Background | None:
    """This session's run, named once by the process that runs the session (workers inherit the
    name through the environment, and have none of their own)."""
    if hasattr(config, "workerinput"):
        return None
    run = config.stash.get(KEY, None)
    if run is None:
        import tempfile
        import uuid

        run = Background(Path(tempfile.gettempdir()) / f"yunshang-knockout-{uuid.uuid4().hex[:8]}")
        os.environ[RUN_ENV] = str(run.where)
        config.stash[KEY] = run
        config.add_cleanup(run.stop)
    return run


def _start_if_collected(config, test_ids) -> None:
    run = _run(config)
    if run is not None and not run.started and not config.option.collectonly and \
            any(i.endswith("::" + TEST) for i in test_ids):
        run.start()


def pytest_configure(config):
    _run(config)


@pytest.hookimpl(trylast=True)  # after the shuffle
def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda i: i.name == TEST)  # its test last: it waits for the run's verdict


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    _start_if_collected(session.config, [i.nodeid for i in session.items])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """With pytest workers: what one of them collected decides (the same for all)."""
    _start_if_collected(node.config, ids)


def pytest_terminal_summary(terminalreporter, config):
    run = config.stash.get(KEY, None)
    if run is not None and run.figures():
        terminalreporter.section("knock-out run")
        for line in run.figures():
            terminalreporter.write_line(line)
