"""What `make setup` installs: the pinned toolchain (toolchain.py) and the identity provider
(keycloak.py, on a JDK of its own choosing).

    python -m yunshang.dev.setup [install|check]
"""
from __future__ import annotations

import json
import sys
import time
from typing import Callable

from . import keycloak, toolchain


def install(progress: Callable[[str], None] = print) -> dict[str, float]:
    """Install whatever is missing; idempotent.  Seconds spent per step."""
    timings = toolchain.install(progress)
    if keycloak.missing():
        t0 = time.monotonic()
        log = toolchain.cache_root() / "logs" / f"keycloak-{time.strftime('%Y%m%d-%H%M%S')}.log"
        keycloak.install(log, progress)
        timings["keycloak"] = time.monotonic() - t0
    return timings


def missing() -> list[str]:
    return toolchain.missing() + keycloak.missing()


def versions() -> dict[str, dict[str, str]]:
    """Every tool's path and version (`yunshang dev tools`), the identity provider and its JDK last."""
    out = toolchain.versions()
    java = keycloak.java_home()
    out["keycloak"] = {"path": str(keycloak.home() / "bin" / "kc.sh") if keycloak.installed() else "",
                       "version": keycloak.version() or "missing (run `make setup`)"}
    out["java (for keycloak)"] = {"path": str(java[0] / "bin" / "java") if java else "",
                                  "version": java[1] if java else f"missing: no JDK {keycloak.JAVA_MAJOR}+"}
    return out


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "install"
    if cmd == "install":
        t = install(lambda m: print(f"[setup] {m}", flush=True))
        print("[setup] ready:", json.dumps({k: round(v, 1) for k, v in t.items()}))
    elif cmd == "check":
        gone = missing()
        print("missing: " + ", ".join(gone) if gone else f"all tools present ({toolchain.bin_dir()}, "
              f"{keycloak.home()})")
        sys.exit(1 if gone else 0)
