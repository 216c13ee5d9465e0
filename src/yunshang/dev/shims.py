"""Small launchers written into the virtualenv's bin directory at setup.

``pulumi-resource-pulumi-python`` is the plugin the Pulumi engine starts for Python dynamic
providers; it only runs ``python -m pulumi.dynamic`` with this virtualenv's interpreter.
"""
from __future__ import annotations

import sys
from pathlib import Path

SHIMS = {
    "pulumi-resource-pulumi-python": '#!/bin/sh\nexec "{python}" -u -m pulumi.dynamic "$@"\n',
}


def write(bin_dir: Path) -> list[Path]:
    written = []
    for name, text in SHIMS.items():
        p = bin_dir / name
        p.write_text(text.format(python=sys.executable))
        p.chmod(0o755)
        written.append(p)
    return written


if __name__ == "__main__":
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else Path(sys.executable).parent)):
        print(f"[setup] wrote {p}")
