"""The pinned toolchain: what yunshang builds or installs, and where it lives.

Everything comes from the three registries this project may use (PyPI, the Go module
proxy, Debian).  Go binaries are built in small wrapper modules, one per group, so
their dependency versions never mix; the wrappers, the Go caches and the binaries live
outside the repository, under ``$YUNSHANG_CACHE`` (default ``~/.cache/yunshang``).

A user who already has binaries points the project at them with ``YUNSHANG_BIN_DIR``
(a directory searched before the cache) or one variable per binary, e.g.
``YUNSHANG_KUBE_APISERVER=/usr/local/bin/kube-apiserver``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from . import images, langhost

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.8"  # the etcd release k8s.io/kubernetes v1.36.3 itself requires
KWOK_VERSION = "v0.7.0"  # v0.8.0 (go 1.26.0) exists too; bumping rebuilds the whole toolchain
PULUMI_VERSION = "v3.259.0"  # the CLI; the Python SDK (pyproject) is pinned to the same version
# pulumi-kubernetes: the proxy serves provider/v4 only as the pseudo-version of the v4.25.0 tag's commit;
# PyPI's pulumi-kubernetes==4.25.0 (pyproject) asks the engine for exactly this plugin version
PULUMI_KUBERNETES_VERSION = "4.25.0"
PULUMI_KUBERNETES_MODULE = "v4.0.0-20260115033456-f47bc2d6f199"

# The pinned versions decide the toolchain directory, so a new pin never mixes with an old build.
PINS = {
    "kubernetes": KUBERNETES_VERSION,
    "etcd": ETCD_VERSION,
    "kwok": KWOK_VERSION,
    "pulumi": PULUMI_VERSION,
    "pulumi-kubernetes": f"{PULUMI_KUBERNETES_VERSION}@{PULUMI_KUBERNETES_MODULE}",
}
TOOLCHAIN_ID = hashlib.sha256(json.dumps(PINS, sort_keys=True).encode()).hexdigest()[:10]
# the real node's Go parts that are not Kubernetes' own: pinned apart, in a directory of their own, so
# that a pin here never rebuilds the control plane (and the reverse)
KUBE_ROUTER_VERSION = "v2.1.0"  # the only version the proxy serves; its advisory is in the service proxy: kept off
COREDNS_VERSION = "v1.15.0"  # built with only the plugins the node's DNS uses (a main of ours, below)
NODE_PINS = {"kube-router": KUBE_ROUTER_VERSION, "coredns": COREDNS_VERSION}
NODE_ID = hashlib.sha256(json.dumps(NODE_PINS, sort_keys=True).encode()).hexdigest()[:10]

DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "chromium": "chromium",  # headless, for the dashboard test and screenshots
    # the local real node's runtime (dev/node.py): Debian's containerd 1.6, runc 1.1, CNI plugins 1.1
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "cni-bridge": "containernetworking-plugins",
    "ipset": "ipset",  # kube-router's firewall keeps its address sets there
    "iptables": "iptables",  # the guard, kube-proxy and kube-router, in the node's namespace
    "mmdebstrap": "mmdebstrap",  # the operator image's Debian root (dev/operator_image.py)
    "skopeo": "skopeo",  # pushes the image to a registry (README; tested against docker-registry on loopback)
    "docker-registry": "docker-registry",
}
DEBIAN_PATHS = {
    "prometheus": "/usr/bin/prometheus",
    "promtool": "/usr/bin/promtool",
    "alertmanager": "/usr/bin/prometheus-alertmanager",
    "amtool": "/usr/bin/amtool",
    "chromium": "/usr/bin/chromium",
    "containerd": "/usr/bin/containerd",
    "ctr": "/usr/bin/ctr",
    "runc": "/usr/sbin/runc",
    "cni-bridge": "/usr/lib/cni/bridge",
    "ipset": "/usr/sbin/ipset",
    "iptables": "/usr/sbin/iptables",
    "mmdebstrap": "/usr/bin/mmdebstrap",
    "skopeo": "/usr/bin/skopeo",
    "docker-registry": "/usr/bin/docker-registry",
}
# installed with the tools, not looked up as binaries: CJK glyphs for department names in screenshots
DEBIAN_EXTRAS = ["fonts-wqy-microhei"]


def cache_root() -> Path:
    return Path(os.environ.get("YUNSHANG_CACHE", Path.home() / ".cache" / "yunshang"))


def toolchain_dir() -> Path:
    return cache_root() / f"toolchain-{TOOLCHAIN_ID}"


def bin_dir() -> Path:
    return toolchain_dir() / "bin"


KUBERNETES_PLUGIN = "pulumi-resource-kubernetes"


def plugin_dir() -> Path:
    """The provider, laid out as in Pulumi's plugin cache (PULUMI_HOME/plugins links here).  Not in
    bin/: an executable provider on PATH would be taken by the engine without a version check."""
    return toolchain_dir() / "plugins" / f"resource-kubernetes-v{PULUMI_KUBERNETES_VERSION}"


def node_bin_dir() -> Path:
    return cache_root() / f"node-{NODE_ID}" / "bin"


NODE_GO_TOOLS = ["kube-router", "coredns"]


def _home(tool: str) -> Path:
    if tool == KUBERNETES_PLUGIN:
        return plugin_dir()
    return node_bin_dir() if tool in NODE_GO_TOOLS else bin_dir()


class ToolMissing(RuntimeError):
    """A binary the platform needs is not installed."""


def _env_name(tool: str) -> str:
    return "YUNSHANG_" + tool.upper().replace("-", "_")


def find(tool: str) -> Path:
    """Where a tool's binary is: an explicit variable, YUNSHANG_BIN_DIR, the cache, Debian's path."""
    explicit = os.environ.get(_env_name(tool))
    if explicit:
        p = Path(explicit)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise ToolMissing(f"{_env_name(tool)}={explicit} is not an executable file; fix or unset it")
    candidates: list[Path] = []
    if os.environ.get("YUNSHANG_BIN_DIR"):
        candidates.append(Path(os.environ["YUNSHANG_BIN_DIR"]) / tool)
    candidates.append(_home(tool) / tool)
    if tool in DEBIAN_PATHS:
        candidates.append(Path(DEBIAN_PATHS[tool]))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise ToolMissing(
        f"{tool} not found (looked in {', '.join(str(c) for c in candidates)}); "
        f"run `make setup`, or set {_env_name(tool)} or YUNSHANG_BIN_DIR"
    )


# --------------------------------------------------------------------------- go builds

def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("GOFLAGS", "-mod=mod")
    env["CGO_ENABLED"] = env.get("CGO_ENABLED", "0")
    return env


def _run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> None:
    with log.open("a") as fh:
        fh.write(f"\n$ (cd {cwd} && {' '.join(cmd)})\n")
        fh.flush()
        rc = subprocess.call(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env or _go_env())
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {rc}) in {cwd}; log: {log}\n" + "\n".join(tail))


@functools.lru_cache(maxsize=None)
def _module_info(mod: str) -> dict[str, str]:
    """`go mod download -json MOD@VER`: where the module's files and go.mod are in the module cache."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", mod], capture_output=True, text=True, env=_go_env(), check=False
    )
    info = json.loads(out.stdout or "{}")
    if "Error" in info or not info.get("GoMod"):
        raise RuntimeError(f"go mod download {mod}: {info.get('Error', out.stderr.strip())}")
    return info


def _module_gomod(mod: str) -> str:
    return Path(_module_info(mod)["GoMod"]).read_text()


def _module_dir(mod: str) -> Path:
    return Path(_module_info(mod)["Dir"])


@dataclasses.dataclass
class GoGroup:
    """One wrapper module: a go.mod requiring upstream modules, built into several binaries."""

    name: str
    requires: dict[str, str]
    binaries: dict[str, str]  # binary name -> package path
    ldflags: list[str] = dataclasses.field(default_factory=list)
    replaces: Callable[[], dict[str, str]] = dict
    header: Callable[[], list[str]] = list
    # writes sources into the wrapper before it is resolved (a binary's package "." is the wrapper)
    prepare: Callable[[Path, Path], None] | None = None
    dest: Callable[[], Path] = bin_dir
    pins_id: str = TOOLCHAIN_ID  # the pins its wrapper is built from (a new pin: a new wrapper)

    def workdir(self) -> Path:
        return cache_root() / "build" / f"{self.name}-{self.pins_id}"

    def write_module(self) -> Path:
        wd = self.workdir()
        wd.mkdir(parents=True, exist_ok=True)
        lines = [f"module yunshang.local/toolchain/{self.name}", "", "go 1.26.0", *self.header(), ""]
        lines.append("require (")
        lines += [f"\t{m} {v}" for m, v in sorted(self.requires.items())]
        lines.append(")")
        rep = self.replaces()
        if rep:
            lines += ["", "replace ("]
            lines += [f"\t{a} => {b}" for a, b in sorted(rep.items())]
            lines.append(")")
        (wd / "go.mod").write_text("\n".join(lines) + "\n")
        pkgs = sorted({p for p in self.binaries.values() if p != "."})
        if pkgs:
            imports = "\n".join(f'\t_ "{p}"' for p in pkgs)
            (wd / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")
        return wd

    def build(self, log: Path, progress: Callable[[str], None]) -> None:
        wd = self.write_module()
        dest = self.dest()
        dest.mkdir(parents=True, exist_ok=True)
        stamp = wd / ".tidy-ok"
        if not stamp.exists():
            progress(f"{self.name}: resolving modules")
            if self.prepare:
                self.prepare(wd, log)
            _run(["go", "mod", "tidy"], wd, log)
            stamp.write_text("ok\n")
        for binary, pkg in self.binaries.items():
            if (dest / binary).exists():
                continue
            progress(f"{self.name}: building {binary} (cold: minutes; cached: seconds)")
            tmp = dest / f".{binary}.tmp"
            flags = " ".join(["-s", "-w", *self.ldflags])
            _run(["go", "build", "-trimpath", "-ldflags", flags, "-o", str(tmp), pkg], wd, log)
            tmp.rename(dest / binary)


def _k8s_replaces() -> dict[str, str]:
    gomod = _module_gomod(f"k8s.io/kubernetes@{KUBERNETES_VERSION}")
    minor_patch = KUBERNETES_VERSION.removeprefix("v1.")
    out = {}
    for line in gomod.splitlines():
        line = line.strip()
        if "=> ./staging/src/" in line:
            mod = line.split("=>")[0].strip()
            out[mod] = f"{mod} v0.{minor_patch}"
    return out


def _k8s_header() -> list[str]:
    gomod = _module_gomod(f"k8s.io/kubernetes@{KUBERNETES_VERSION}")
    return [line for line in gomod.splitlines() if line.startswith("godebug")]


def _k8s_version_ldflags() -> list[str]:
    major, minor, _ = KUBERNETES_VERSION.removeprefix("v").split(".")
    pkg = "k8s.io/component-base/version"
    return [
        f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
        f"-X {pkg}.gitMajor={major}",
        f"-X {pkg}.gitMinor={minor}",
        f"-X {pkg}.gitTreeState=clean",
    ]


def _pulumi_replaces() -> dict[str, str]:
    gomod = _module_gomod(f"github.com/pulumi/pulumi/pkg/v3@{PULUMI_VERSION}")
    out = {}
    in_block = False
    for raw in gomod.splitlines():
        line = raw.strip()
        if line.startswith("replace ("):
            in_block = True
            continue
        if in_block and line == ")":
            in_block = False
            continue
        if line.startswith("replace "):
            line = line.removeprefix("replace ").strip()
        elif not in_block:
            continue
        if "=>" not in line:
            continue
        left, right = (s.strip() for s in line.split("=>"))
        if right.startswith("."):
            continue  # local path (../sdk): required at the same release instead
        out[left] = right
    return out


def _prepare_kubernetes_provider(wd: Path, log: Path) -> None:
    """The provider's main package go:embeds a versioned schema that is generated, not shipped:
    take main.go, generate.go and the two JSON sources from the module cache (at build time,
    into the wrapper outside the repo) and generate the embedded files for our version."""
    src = _module_dir(f"github.com/pulumi/pulumi-kubernetes/provider/v4@{PULUMI_KUBERNETES_MODULE}")
    for name in ("main.go", "generate.go", "schema.json", "terraform-mapping.json"):
        target = wd / name
        target.write_bytes((src / "cmd" / KUBERNETES_PLUGIN / name).read_bytes())
        target.chmod(0o644)
    _run(["go", "mod", "tidy"], wd, log)
    _run(["go", "run", "generate.go"], wd, log, env={**_go_env(), "VERSION": PULUMI_KUBERNETES_VERSION})


COREDNS_MAIN = """// yunshang's CoreDNS: the cluster's names from the API server, cached; nothing forwarded upstream
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

func init() { dnsserver.Directives = []string{"errors", "cache", "kubernetes"} }

func main() { coremain.Run() }
"""


def _prepare_coredns(wd: Path, log: Path) -> None:
    (wd / "main.go").write_text(COREDNS_MAIN)


GROUPS = [
    GoGroup(
        name="kubernetes",
        requires={"k8s.io/kubernetes": KUBERNETES_VERSION, "go.etcd.io/etcd/server/v3": ETCD_VERSION},
        binaries={
            "etcd": "go.etcd.io/etcd/server/v3",
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
            "kubelet": "k8s.io/kubernetes/cmd/kubelet",  # the local real node (dev/node.py)
            "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
        },
        ldflags=_k8s_version_ldflags(),
        replaces=_k8s_replaces,
        header=_k8s_header,
    ),
    GoGroup(
        name="kube-router",  # NetworkPolicy on the real node: its firewall only (dev/node.py)
        requires={"github.com/cloudnativelabs/kube-router/v2": KUBE_ROUTER_VERSION},
        binaries={"kube-router": "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"},
        ldflags=[f"-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version={KUBE_ROUTER_VERSION}"],
        dest=node_bin_dir,
        pins_id=NODE_ID,
    ),
    GoGroup(
        name="coredns",  # the real node's DNS (dev/node.py), in an image of its own (dev/images.py)
        requires={"github.com/coredns/coredns": COREDNS_VERSION},
        binaries={"coredns": "."},
        ldflags=[f"-X github.com/coredns/coredns/coremain.GitCommit={COREDNS_VERSION}"],
        prepare=_prepare_coredns,
        dest=node_bin_dir,
        pins_id=NODE_ID,
    ),
    GoGroup(
        name="kwok",
        requires={"sigs.k8s.io/kwok": KWOK_VERSION},
        binaries={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
        ldflags=[f"-X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}"],
    ),
    GoGroup(
        name="pulumi",
        requires={
            "github.com/pulumi/pulumi/pkg/v3": PULUMI_VERSION,
            "github.com/pulumi/pulumi/sdk/v3": PULUMI_VERSION,
        },
        binaries={"pulumi": "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"},
        ldflags=[f"-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version={PULUMI_VERSION}"],
        replaces=_pulumi_replaces,
    ),
    GoGroup(
        name="pulumi-kubernetes",
        requires={
            "github.com/pulumi/pulumi-kubernetes/provider/v4": PULUMI_KUBERNETES_MODULE,
            # not the v4.24.0 the provider names: resources it creates itself ask for their SDK's version
            "github.com/pulumi/pulumi-kubernetes/sdk/v4": f"v{PULUMI_KUBERNETES_VERSION}",
        },
        binaries={KUBERNETES_PLUGIN: "."},
        ldflags=[f"-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version={PULUMI_KUBERNETES_VERSION}"],
        prepare=_prepare_kubernetes_provider,
        dest=plugin_dir,
    ),
]


# --------------------------------------------------------------------------- install

def _apt_install(packages: list[str], log: Path, progress: Callable[[str], None]) -> None:
    if not shutil.which("apt-get"):
        raise ToolMissing(f"apt-get not found: install {' '.join(packages)} yourself, or set YUNSHANG_BIN_DIR")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    progress(f"debian: apt-get install {' '.join(packages)}")
    lists = Path("/var/lib/apt/lists")
    if not any(lists.glob("*Packages*")):
        _run([*sudo, "apt-get", "update", "-qq"], Path("/"), log, env)
    try:
        _run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], Path("/"), log, env)
    except RuntimeError:
        _run([*sudo, "apt-get", "update", "-qq"], Path("/"), log, env)
        _run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], Path("/"), log, env)


LANGUAGE_HOST = ["pulumi-language-python", langhost.EXEC_SCRIPT]  # next to the pinned pulumi
ALL_TOOLS = [*(b for g in GROUPS for b in g.binaries), *LANGUAGE_HOST, *DEBIAN_PATHS]
CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]


def find_or_none(tool: str) -> Path | None:
    try:
        return find(tool)
    except ToolMissing:
        return None


def missing(tools: list[str] | None = None) -> list[str]:
    """Names of the tools (default: all of them) that cannot be found."""
    out = []
    for tool in tools or ALL_TOOLS:
        try:
            find(tool)
        except ToolMissing:
            out.append(tool)
    return out


def install(progress: Callable[[str], None] = print) -> dict[str, float]:
    """Install every missing tool; idempotent. Returns seconds spent per step."""
    timings: dict[str, float] = {}
    dest = bin_dir()
    dest.mkdir(parents=True, exist_ok=True)
    logs = cache_root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"install-{time.strftime('%Y%m%d-%H%M%S')}.log"
    need = set(missing())
    apt = sorted({DEBIAN_PACKAGES[t] for t in need if t in DEBIAN_PACKAGES})
    if apt or not Path("/usr/share/fonts/truetype/wqy").exists():
        apt = sorted({*apt, *DEBIAN_EXTRAS}) if shutil.which("apt-get") else apt
    if apt:
        t0 = time.monotonic()
        _apt_install(apt, log, progress)
        timings["debian"] = time.monotonic() - t0
    for group in GROUPS:
        if not need & set(group.binaries):
            continue
        t0 = time.monotonic()
        group.build(log, progress)
        timings[group.name] = time.monotonic() - t0
    # the launcher names the virtualenv that ran setup (its fallback): written every time, cheap
    t0 = time.monotonic()
    sdk = _module_dir(f"github.com/pulumi/pulumi/sdk/v3@{PULUMI_VERSION}")
    langhost.install(dest, sdk / "python" / "cmd" / langhost.EXEC_SCRIPT)
    timings["language-host"] = time.monotonic() - t0
    # the real node's images (dev/images.py): built from Debian's packages, never pulled
    t0 = time.monotonic()
    images.build(toolchain_dir() / "images", progress, coredns=find_or_none("coredns"))
    timings["images"] = time.monotonic() - t0
    still = missing()
    if still:
        raise ToolMissing(f"still missing after install: {', '.join(still)}; log: {log}")
    return timings


VERSION_ARGS = {"etcd": ["--version"], "kube-apiserver": ["--version"], "kube-controller-manager": ["--version"],
                "kube-scheduler": ["--version"], "kubelet": ["--version"], "kube-proxy": ["--version"], "containerd": ["--version"],
                "runc": ["--version"], "kwok": ["--version"], "pulumi": ["version"],
                "prometheus": ["--version"], "alertmanager": ["--version"], "promtool": ["--version"]}


def versions() -> dict[str, dict[str, str]]:
    """Every tool: the binary it resolves to (YUNSHANG_<TOOL>, YUNSHANG_BIN_DIR, the cache, PATH) and,
    where the tool says it, its version."""
    out: dict[str, dict[str, str]] = {}
    for tool in ALL_TOOLS:
        try:
            path = str(find(tool))
        except ToolMissing as e:
            out[tool] = {"path": "", "version": f"missing ({e})"}
            continue
        version = ""
        if tool in VERSION_ARGS:
            try:
                r = subprocess.run([path, *VERSION_ARGS[tool]], capture_output=True, text=True, timeout=20)
                version = ((r.stdout or r.stderr).strip().splitlines() or [""])[0]
            except (OSError, subprocess.TimeoutExpired) as e:
                version = f"does not run ({e})"
        out[tool] = {"path": path, "version": version}
    return out


if __name__ == "__main__":  # python -m yunshang.dev.toolchain [install|check]
    cmd = sys.argv[1] if len(sys.argv) > 1 else "install"
    if cmd == "install":
        t = install(lambda m: print(f"[setup] {m}", flush=True))
        print("[setup] toolchain ready in", bin_dir(), json.dumps({k: round(v, 1) for k, v in t.items()}))
    elif cmd == "check":
        gone = missing()
        print("missing: " + ", ".join(gone) if gone else f"all tools present ({bin_dir()})")
        sys.exit(1 if gone else 0)
