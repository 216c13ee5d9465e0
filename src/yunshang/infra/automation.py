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


class UnknownStack(ValueError):
    """A stack name with no stacks/Pulumi.<name>.yaml: refused before Pulumi runs (it would create
    the stack and write its file, then deploy over whatever another stack manages)."""


def known_stacks(root: Path = PROJECT_ROOT) -> list[str]:
    """The stacks there are: one file stacks/Pulumi.<name>.yaml each."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (root / "stacks").glob("Pulumi.*.yaml"))


def check_stack(name: str, root: Path = PROJECT_ROOT) -> str:
    stacks = known_stacks(root)
    if name not in stacks:
        raise UnknownStack(f"--stack {name!r}: no such stack (the stacks are {', '.join(stacks) or 'none'}: "
                           f"stacks/Pulumi.<name>.yaml); a new stack is made on purpose with "
                           f"`yunshang platform pulumi stack init NAME` and its own stacks/Pulumi.NAME.yaml")
    return name


def stack(name: str = "local", root: Path = PROJECT_ROOT, state: Path | None = None,
          env: dict[str, str] | None = None):
    """The stack ``name`` of the project; only one of stacks/Pulumi.<name>.yaml (UnknownStack else)."""
    from pulumi import automation as auto

    check_stack(name, root)

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
