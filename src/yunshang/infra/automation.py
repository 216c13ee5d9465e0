"""`yunshang platform up|preview|destroy`: the project's Pulumi program (Pulumi.yaml) through the
Automation API and the pinned CLI, offline: the same run as `pulumi up` after
`eval "$(yunshang dev env)"` (file backend, passphrase secrets, no downloads)."""
from __future__ import annotations

import os
from pathlib import Path

from ..dev import controlplane, pulumi_env
from .config import PROJECT_ROOT

PROJECT = "yunshang"


def state_dir() -> Path:
    """Pulumi's file backend: beside the local platform's state (`dev up` uses <state>/pulumi)."""
    return controlplane.default_state_dir() / "pulumi"


def stack(name: str = "local", root: Path = PROJECT_ROOT, state: Path | None = None,
          env: dict[str, str] | None = None):
    from pulumi import automation as auto

    envs = pulumi_env.env(state or state_dir())
    if os.environ.get("PULUMI_BACKEND_URL"):
        envs["PULUMI_BACKEND_URL"] = os.environ["PULUMI_BACKEND_URL"]
    envs.update(env or {})
    ws = auto.LocalWorkspace(
        work_dir=str(root),
        env_vars=envs,
        pulumi_command=pulumi_env.pulumi_command(),
        secrets_provider="passphrase",
    )
    return auto.Stack.create_or_select(name, ws)
