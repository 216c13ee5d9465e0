"""`dev up` adds the yunshang-local context to the user's kubeconfig; `dev down` takes it out and
gives back the context that was current."""
from __future__ import annotations

import yaml

from yunshang.dev import controlplane


def test_merge_then_remove_restores_the_previous_context(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # the default state dir: yunshang-local
    cp = controlplane.ControlPlane(state=tmp_path / "yunshang" / "dev", ports={"apiserver": 6443})
    cp.state.mkdir(parents=True)
    cp.write_kubeconfig(cp.kubeconfig, "admin")
    user = tmp_path / "config"
    user.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "work",
        "clusters": [{"name": "work", "cluster": {"server": "https://work.example:6443"}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "work", "context": {"cluster": "work", "user": "me"}}],
    }))
    path, previous = controlplane.merge_into_user_kubeconfig(cp, user)
    cfg = yaml.safe_load(user.read_text())
    assert previous == "work" and cfg["current-context"] == "yunshang-local"
    assert {c["name"] for c in cfg["contexts"]} == {"work", "yunshang-local"}
    controlplane.merge_into_user_kubeconfig(cp, user)  # twice: no duplicates
    assert len(yaml.safe_load(user.read_text())["clusters"]) == 2
    controlplane.remove_from_user_kubeconfig(cp, user)
    cfg = yaml.safe_load(user.read_text())
    assert cfg["current-context"] == "work"
    assert [c["name"] for c in cfg["contexts"]] == ["work"] and [u["name"] for u in cfg["users"]] == ["me"]
