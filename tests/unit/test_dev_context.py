"""Each local platform has a context of its own in the user's kubeconfig: the default state dir
keeps `yunshang-local`, any other gets a name of its own, and `dev down` takes out only its own
platform's entries, only while they still point at it (temp files only, no cluster)."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from test_cli_basics import cli
from yunshang.dev import controlplane
from yunshang.dev.controlplane import CONTEXT, ControlPlane, context_name

WORK = {
    "apiVersion": "v1", "kind": "Config", "current-context": "work",
    "clusters": [{"name": "work", "cluster": {"server": "https://work.example:6443"}}],
    "users": [{"name": "me", "user": {"token": "t"}}],
    "contexts": [{"name": "work", "context": {"cluster": "work", "user": "me"}}],
}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """The default state dir, under a temp $XDG_STATE_HOME."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "yunshang" / "dev"


@pytest.fixture
def user(tmp_path, monkeypatch) -> Path:
    """The user's kubeconfig ($KUBECONFIG), with a context of their own that is current."""
    path = tmp_path / "user-kubeconfig"
    path.write_text(yaml.safe_dump(WORK, sort_keys=False))
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


def platform(state: Path, port: int) -> ControlPlane:
    """A platform's state dir as `dev up` leaves it (its own kubeconfig), without processes."""
    cp = ControlPlane(state=state, ports={"apiserver": port})
    state.mkdir(parents=True)
    cp.write_kubeconfig(cp.kubeconfig, "admin")
    return cp


def entries(path: Path, name: str) -> dict[str, list[dict]]:
    """The cluster, user and context entries of one platform's context name."""
    cfg = yaml.safe_load(path.read_text())
    return {key: [e for e in cfg.get(key) or [] if e["name"] in (name, f"{name}-admin")]
            for key in ("clusters", "users", "contexts")}


def current(path: Path) -> str:
    return yaml.safe_load(path.read_text())["current-context"]


# ---------------------------------------------------------------------- names

def test_the_default_state_dir_keeps_yunshang_local(home, tmp_path, monkeypatch):
    assert context_name(home) == CONTEXT == "yunshang-local"
    assert context_name(tmp_path / "xdg" / "yunshang" / "other" / ".." / "dev") == CONTEXT  # same dir, spelled otherwise
    monkeypatch.delenv("YUNSHANG_STATE_DIR")
    assert context_name(controlplane.default_state_dir()) == CONTEXT


def test_two_state_dirs_get_two_names(home, tmp_path, monkeypatch):
    a, b = tmp_path / "one" / "dev", tmp_path / "two" / "dev"  # same basename, other directories
    names = {context_name(a), context_name(b)}
    assert len(names) == 2 and CONTEXT not in names
    assert context_name(a) == context_name(a) == context_name(Path(str(a) + "/"))  # deterministic
    for name in names:  # a kubeconfig name anyone can type: yunshang-local-<basename>-<8 hex>
        assert re.fullmatch(r"yunshang-local-dev-[0-9a-f]{8}", name), name
    assert re.fullmatch(r"yunshang-local-x-y-[0-9a-f]{8}", context_name(tmp_path / "X y!"))
    # $YUNSHANG_STATE_DIR is a state dir like --state-dir: a name of its own
    monkeypatch.setenv("YUNSHANG_STATE_DIR", str(tmp_path / "elsewhere"))
    assert context_name(controlplane.default_state_dir()) not in (CONTEXT, *names)


# ---------------------------------------------------------------------- merge

def test_merging_platform_b_does_not_overwrite_platform_a(home, tmp_path, user):
    a, b = platform(home, 6443), platform(tmp_path / "b", 7443)
    _, previous = controlplane.merge_into_user_kubeconfig(a, user)
    assert previous == "work" and current(user) == CONTEXT
    a_entries = entries(user, CONTEXT)
    assert [e["cluster"]["server"] for e in a_entries["clusters"]] == ["https://127.0.0.1:6443"]

    _, previous = controlplane.merge_into_user_kubeconfig(b, user)
    name_b = context_name(b.state)
    assert previous == CONTEXT and current(user) == name_b
    assert entries(user, CONTEXT) == a_entries  # A's context, cluster and user as they were
    b_entries = entries(user, name_b)
    assert [e["cluster"]["server"] for e in b_entries["clusters"]] == ["https://127.0.0.1:7443"]
    assert b_entries["contexts"] == [{"name": name_b, "context": {"cluster": name_b, "user": f"{name_b}-admin"}}]
    assert b_entries["users"][0]["user"]["client-certificate"] == str(b.pki / "admin.crt")

    controlplane.merge_into_user_kubeconfig(b, user)  # again (dev up after a crash): refreshed, no duplicates
    cfg = yaml.safe_load(user.read_text())
    assert sorted(c["name"] for c in cfg["contexts"]) == sorted(["work", CONTEXT, name_b])


# ---------------------------------------------------------------------- remove

def test_down_of_b_leaves_a_and_the_current_context(home, tmp_path, user):
    a, b = platform(home, 6443), platform(tmp_path / "b", 7443)
    controlplane.merge_into_user_kubeconfig(a, user)
    controlplane.merge_into_user_kubeconfig(b, user)
    a_entries = entries(user, CONTEXT)
    cfg = yaml.safe_load(user.read_text())
    cfg["current-context"] = "work"  # the user switched away from B (kubectl config use-context work)
    user.write_text(yaml.safe_dump(cfg, sort_keys=False))

    removal = controlplane.remove_from_user_kubeconfig(b, user)
    name_b = context_name(b.state)
    assert removal.current is None and sorted(removal.removed) == sorted(
        [f"clusters/{name_b}", f"users/{name_b}-admin", f"contexts/{name_b}"])
    assert current(user) == "work" and entries(user, CONTEXT) == a_entries
    assert entries(user, name_b) == {"clusters": [], "users": [], "contexts": []}


def test_down_of_b_while_current_gives_back_the_previous_context(home, tmp_path, user):
    a, b = platform(home, 6443), platform(tmp_path / "b", 7443)
    controlplane.merge_into_user_kubeconfig(a, user)
    controlplane.merge_into_user_kubeconfig(b, user)
    assert controlplane.remove_from_user_kubeconfig(b, user).current == CONTEXT
    assert current(user) == CONTEXT and entries(user, CONTEXT)["clusters"]
    assert controlplane.remove_from_user_kubeconfig(a, user).current == "work"
    assert yaml.safe_load(user.read_text()) == WORK


def test_down_where_nothing_runs_leaves_the_user_kubeconfig_byte_for_byte(home, tmp_path, user):
    a = platform(home, 6443)
    controlplane.merge_into_user_kubeconfig(a, user)
    before = user.read_bytes()
    empty = tmp_path / "never-started"
    removal = controlplane.remove_from_user_kubeconfig(ControlPlane.load(empty), user)
    assert removal.removed == [] and user.read_bytes() == before


def test_entries_that_point_at_another_platform_are_left(home, tmp_path, user):
    b = platform(tmp_path / "b", 7443)
    controlplane.merge_into_user_kubeconfig(b, user)
    b.ports["apiserver"] = 7444  # B started again with --no-kubeconfig: the user's entry still names 7443
    b.write_kubeconfig(b.kubeconfig, "admin")
    before = user.read_bytes()
    assert controlplane.remove_from_user_kubeconfig(b, user).removed == []
    assert user.read_bytes() == before


# ---------------------------------------------------------------------- the commands

def test_dev_down_where_nothing_runs_says_so_and_changes_nothing(home, tmp_path, user, monkeypatch, capfd):
    a = platform(home, 6443)
    controlplane.merge_into_user_kubeconfig(a, user)
    # a platform that was merged and then died: its entries still point at it, but it is not running
    dead = platform(tmp_path / "dead", 7443)
    controlplane.merge_into_user_kubeconfig(dead, user)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (dead.state / "processes.json").write_text(json.dumps({"ports": dead.ports, "pids": {"etcd": gone.pid}}))
    before = user.read_bytes()
    for state in (tmp_path / "never-started", dead.state):
        code, out, _ = cli(monkeypatch, capfd, "dev", "down", "--state-dir", str(state))
        assert code == 0 and "nothing was running" in out and "left unchanged" in out
        assert user.read_bytes() == before


def test_dev_down_of_a_running_b_removes_only_b(home, tmp_path, user, monkeypatch, capfd):
    a, b = platform(home, 6443), platform(tmp_path / "b", 7443)
    controlplane.merge_into_user_kubeconfig(a, user)
    controlplane.merge_into_user_kubeconfig(b, user)
    a_entries = entries(user, CONTEXT)
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)  # stands for B's processes
    try:
        (b.state / "processes.json").write_text(json.dumps({"ports": b.ports, "pids": {"etcd": proc.pid}}))
        code, out, _ = cli(monkeypatch, capfd, "dev", "down", "--state-dir", str(b.state))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    name_b = context_name(b.state)
    assert code == 0 and "stopped: etcd" in out and f"removed context {name_b}" in out
    assert f"current context now {CONTEXT}" in out
    assert current(user) == CONTEXT and entries(user, CONTEXT) == a_entries
    assert entries(user, name_b) == {"clusters": [], "users": [], "contexts": []}


def test_dev_up_says_which_context_is_current_and_that_it_is_separate(home, tmp_path):
    from yunshang.cli.dev import _context_report, _down_command

    name_b = context_name(tmp_path / "b")
    down_b = _down_command(tmp_path / "b")
    assert down_b == f"yunshang dev down --state-dir {tmp_path / 'b'}"  # never the default platform's down
    fields, lines = _context_report(name_b, tmp_path / "config", CONTEXT, down_b)
    assert fields == {"context": name_b, "context_current": True, "separate_from_default": True}
    assert f"{name_b} merged into {tmp_path / 'config'} and now current" in lines[0]
    assert f"back with `{down_b}`" in lines[0]
    assert len(lines) == 2 and "not the default platform's context yunshang-local" in lines[1]

    fields, lines = _context_report(context_name(home), tmp_path / "config", "work")
    assert fields == {"context": CONTEXT, "context_current": True, "separate_from_default": False}
    assert len(lines) == 1 and "yunshang-local merged" in lines[0] and "was work" in lines[0]

    fields, lines = _context_report(name_b, None, None)
    assert fields["context_current"] is False and "none merged" in lines[0]
