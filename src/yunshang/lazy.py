"""A module imported on first attribute access.

The CLI answers `--help` and listings without loading what it does not need (the Kubernetes
client, the pydantic models, the Pulumi SDKs): bench/cli_latency.py measures it.
"""
from __future__ import annotations

import importlib
from types import ModuleType


class OnFirstUse:
    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<module {self._name} imported on first use>"
