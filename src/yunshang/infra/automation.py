"""Run the platform program through the real Pulumi engine (Automation API, inline program).

The engine is the pinned `pulumi` CLI; the Python SDK serves the program to it, so no
language host binary is needed.  Offline: file backend, passphrase secrets, no downloads.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..dev import controlplane, pulumi_env
from .program import PROJECT_ROOT, main

PROJECT = "yunshang"


def state_dir() -> Path:
    """Pulumi's file backend: beside the local platform's state (`dev up` uses <state>/pulumi)."""
    return controlplane.default_state_dir() / "pulumi"


def stack(name: str = "local", root: Path = PROJECT_ROOT, state: Path | None = None,
          program: Callable[[], None] | None = None, env: dict[str, str] | None = None):
    from pulumi import automation as auto

    envs = pulumi_env.env(state or state_dir())
    if os.environ.get("PULUMI_BACKEND_URL"):
        envs["PULUMI_BACKEND_URL"] = os.environ["PULUMI_BACKEND_URL"]
    envs.update(env or {})
    ws = auto.LocalWorkspace(
        work_dir=str(root),
        program=program or (lambda: main(root)),
        env_vars=envs,
        pulumi_command=pulumi_env.pulumi_command(),
        secrets_provider="passphrase",
    )
    return auto.Stack.create_or_select(name, ws)
