"""The knock-out run (tests/knockout.py) can take away every control a test names, and runs every
module that names one: a security test whose control it cannot remove would prove nothing there."""
from __future__ import annotations

import re
from pathlib import Path

import knockout

TESTS = Path(__file__).resolve().parents[1]
NAMED = re.compile(r'mark\.control\("([^"]+)"\)')


def named() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for f in sorted(TESTS.rglob("test_*.py")):
        for control in NAMED.findall(f.read_text()):
            found.setdefault(control, set()).add(str(f.relative_to(TESTS.parent)))
    return found


def test_every_control_a_test_names_can_be_knocked_out():
    found = named()
    assert len(found) >= 20, found  # the finder finds them (it is not matching nothing)
    cannot = sorted(set(found) - set(knockout.CONTROLS))
    assert not cannot, f"controls named by tests that tests/knockout.py cannot remove: {cannot}"
    assert not set(knockout.CONTROLS) - set(found), "a control nobody's test names"


def test_the_run_takes_every_module_that_names_a_control():
    modules = set().union(*named().values())
    assert modules <= set(knockout.SUITES), sorted(modules - set(knockout.SUITES))


def test_each_control_runs_every_module_that_names_it_and_no_other():
    for control, modules in named().items():
        assert set(knockout.suites_naming(control)) == modules, control
