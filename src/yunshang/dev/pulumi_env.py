"""Run the real Pulumi engine fully offline against the local platform.

A file backend and the CLI's home live under the state dir, secrets use a passphrase, and
nothing is downloaded: no update check, no plugin acquisition.  Plugins are found on PATH
(the toolchain's bin and the virtualenv's bin, where `make setup` puts them).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from . import toolchain

LOCAL_PASSPHRASE = "yunshang-local"  # protects only throwaway local stacks


def env(state: Path, passphrase: str | None = None) -> dict[str, str]:
    backend = state / "pulumi-backend"
    home = state / "pulumi-home"
    backend.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(
        [str(toolchain.bin_dir()), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    )
    return {
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_HOME": str(home),
        "PULUMI_CONFIG_PASSPHRASE": passphrase
        or os.environ.get("PULUMI_CONFIG_PASSPHRASE", LOCAL_PASSPHRASE),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        "PATH": path,
    }


def pulumi_command():
    """The Automation API's handle on the pinned CLI."""
    from pulumi import automation as auto

    return auto.PulumiCommand(root=str(toolchain.find("pulumi").parent.parent), skip_version_check=True)
