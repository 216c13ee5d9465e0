"""The operator's image, built here from packages: no container daemon, no base image, no registry.

Three layers, each a tar with fixed times and owners, written as one OCI archive
(``images.oci_archive``, gzip layers):

1. **Debian's Python**: ``mmdebstrap --variant=extract`` of ``python3.11-minimal`` and
   ``libpython3.11-stdlib`` with their dependencies (libc, OpenSSL, ...; no shell, no apt, no dpkg
   run), documentation dropped, ``/var/lib/dpkg/status`` naming every package and version (what a
   scanner reads), a user ``yunshang`` (10001), ``/usr/bin/python`` → ``python3.11``;
2. **the operator's dependencies**: the distributions it imports (``OPERATOR_NEEDS`` and what they
   require), at exactly the versions installed beside this project (pinned in ``pyproject.toml``),
   ``pip install --target /app/lib``;
3. **the project's wheel** (``pip wheel .``), installed the same way.

Everything under /usr/lib/python3.11 and /app is compiled with the image's own interpreter
(``compileall --invalidation-mode unchecked-hash``: no timestamps, nothing written at run time, the
root file system stays read-only), then the image is started once in a chroot as its own user
(``python -m yunshang.operator --help``) before it is written.  No entrypoint; the command is
``python -m yunshang.operator --lease yunshang-operator`` (the Deployment gives its own arguments).
"""
from __future__ import annotations

import dataclasses
import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

from . import images

ROOT = Path(__file__).resolve().parents[3]
REPOSITORY = "yunshang.local/operator"  # the local node's name for it; `push` gives it the registry's
SUITE = "bookworm"
MIRRORS = [f"deb http://deb.debian.org/debian {SUITE} main",
           f"deb http://deb.debian.org/debian-security {SUITE}-security main"]
DEBIAN = ["python3.11-minimal", "libpython3.11-stdlib"]
OPERATOR_NEEDS = ["aiohttp", "kubernetes", "pydantic", "prometheus-client", "PyYAML"]  # what it imports
UID = 10001
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"  # coreutils; root runs the build
COMMAND = ["python", "-m", "yunshang.operator", "--lease", "yunshang-operator"]
ENV = ["PATH=/usr/bin:/bin", "PYTHONPATH=/app/lib", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1",
       "LANG=C.UTF-8"]
# what a running operator never reads: documentation, package managers' state and caches, the host's
# files that mmdebstrap copies in (the kubelet mounts its own /etc/hosts, resolv.conf, hostname)
DROP = ("usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/", "usr/share/lintian/",
        "usr/share/bug/", "usr/share/polkit-1/", "var/cache/", "var/lib/apt/", "var/log/", "etc/apt/",
        "etc/hostname", "etc/resolv.conf", "etc/hosts", "etc/cron.daily/", "etc/logrotate.d/",
        "usr/lib/python3.11/ensurepip/", "usr/lib/python3.11/idlelib/", "usr/lib/python3.11/lib2to3/",
        "usr/lib/python3.11/pydoc_data/", "usr/lib/python3.11/tkinter/", "usr/lib/python3.11/turtledemo/")
# the kubernetes client's asyncio twin (68 MB with its bytecode), which nothing of the operator imports:
# removed before the first start, so that start proves it
UNUSED = ("kubernetes/aio",)


@dataclasses.dataclass
class Built:
    path: Path
    ref: str
    digest: str  # the manifest's
    size: int  # bytes of the archive (compressed layers: what a registry stores)
    unpacked: int  # bytes of the three layers unpacked
    seconds: float
    packages: dict[str, str]  # Debian package -> version
    wheels: dict[str, str]  # distribution -> version

    def summary(self) -> dict:
        return {"path": str(self.path), "ref": self.ref, "digest": self.digest, "size_mib": round(self.size / 2**20, 1),
                "unpacked_mib": round(self.unpacked / 2**20, 1), "seconds": round(self.seconds, 1),
                "debian_packages": len(self.packages), "python_distributions": len(self.wheels)}


def requirements(roots: list[str] = OPERATOR_NEEDS) -> dict[str, str]:
    """``roots`` and everything they require (no extras, markers of this interpreter), at the versions
    installed here: name -> version."""
    from packaging.requirements import Requirement  # pip's and setuptools' own, always beside them

    out: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        dist = md.distribution(name)
        key = dist.metadata["Name"]
        if key in out:
            continue
        out[key] = dist.version
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def version() -> str:
    """The project's version (pyproject.toml): the image's default tag."""
    m = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    return m.group(1) if m else "0.0.0"


def debian_root(work: Path, progress: Callable[[str], None]) -> tuple[Path, dict[str, str]]:
    """Debian's Python with its libraries, unpacked under ``work/root``; the packages and versions."""
    if not shutil.which("mmdebstrap"):
        raise RuntimeError("mmdebstrap not found: the operator image's Debian root is made with it "
                           "(apt-get install mmdebstrap, or `yunshang dev setup`)")
    progress(f"image: Debian {SUITE}'s {', '.join(DEBIAN)} with their dependencies (mmdebstrap)")
    tar = work / "debian.tar"
    images.run(["mmdebstrap", "--mode=root", "--variant=extract", "--quiet", f"--include={','.join(DEBIAN)}",
          "--skip=cleanup/apt/cache", SUITE, str(tar), *MIRRORS], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                                      "SOURCE_DATE_EPOCH": "0"})
    root = work / "root"
    root.mkdir()
    with tarfile.open(tar) as t:
        t.extractall(root, filter="fully_trusted")
    tar.unlink()
    packages = {}
    for deb in sorted((root / "var/cache/apt/archives").glob("*.deb")):
        name, ver, _arch = deb.name[:-4].split("_")
        packages[name] = ver.replace("%3a", ":")
    return root, packages


def _status(packages: dict[str, str]) -> bytes:
    """A dpkg status file naming what the image holds (scanners read it; nothing here runs dpkg)."""
    return "".join(f"Package: {n}\nStatus: install ok installed\nVersion: {v}\nArchitecture: amd64\n\n"
                   for n, v in packages.items()).encode()


def _files(tree: Path, prefix: str = "", keep: Callable[[str], bool] = lambda p: True) -> list[images.File]:
    """The files under ``tree`` as image files at ``prefix`` (hard links as copies; owners root)."""
    out = []
    for p in sorted(tree.rglob("*")):
        rel = prefix + p.relative_to(tree).as_posix()
        if not keep(rel + ("/" if p.is_dir() and not p.is_symlink() else "")):
            continue
        if p.is_symlink():
            out.append(images.File(rel, link=str(p.readlink())))
        elif p.is_dir():
            out.append(images.File(rel, directory=True, mode=p.stat().st_mode & 0o7777))
        elif p.is_file():
            out.append(images.File(rel, p.read_bytes(), p.stat().st_mode & 0o7777))
    return out


def _parents(prefix: str) -> list[images.File]:
    parts = prefix.strip("/").split("/")
    return [images.File("/".join(parts[:i]), directory=True, mode=0o755) for i in range(1, len(parts) + 1)]


def build(dest: Path, tag: str | None = None, progress: Callable[[str], None] = print) -> Built:
    """Build the operator image into ``dest`` (``operator-<tag>.oci.tar``)."""
    started = time.monotonic()
    tag = tag or version()
    ref = f"{REPOSITORY}:{tag}"
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="yunshang-image-") as tmp:
        work = Path(tmp)
        root, packages = debian_root(work, progress)
        wheels = requirements()
        progress(f"image: {len(wheels)} Python distributions the operator needs, at this project's pins")
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
        lib = root / "app" / "lib"
        images.run([*pip, "install", "--no-deps", "--no-compile", "--only-binary=:all:", "--target", str(work / "deps"),
              *(f"{n}=={v}" for n, v in wheels.items())])
        progress("image: the project's wheel")
        project = work / "project"  # a clean copy: setuptools' build/ of the checkout may hold stale modules
        shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for f in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / f, project / f)
        images.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(work / "wheel"), str(project)])
        images.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(work / "own"),
              *map(str, (work / "wheel").glob("*.whl"))])
        for d in ("deps", "own"):  # console scripts name the build's interpreter: the image has none of them
            shutil.rmtree(work / d / "bin", ignore_errors=True)
        for info in (work / "own").glob("*.dist-info"):  # it names the wheel's temporary path: not reproducible
            (info / "direct_url.json").unlink(missing_ok=True)
            record = info / "RECORD"
            record.write_text("".join(line for line in record.read_text().splitlines(keepends=True)
                                      if "/direct_url.json," not in line))
        lib.mkdir(parents=True)
        for d in ("deps", "own"):
            for p in (work / d).iterdir():
                shutil.move(str(p), lib / p.name)
        for unused in UNUSED:
            shutil.rmtree(lib / unused)
        progress("image: compiling with the image's own interpreter, then a first start as its user")
        chroot = [CHROOT, "--userspec=0:0", str(root), "/usr/bin/python3.11"]
        images.run([*chroot, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash",
              "/usr/lib/python3.11", "/app/lib"])
        (root / "usr/bin/python").symlink_to("python3.11")
        smoke = subprocess.run([CHROOT, f"--userspec={UID}:{UID}", str(root), "/usr/bin/python", "-m",
                                "yunshang.operator", "--help"], capture_output=True, text=True,
                               env={e.split("=", 1)[0]: e.split("=", 1)[1] for e in ENV})
        if smoke.returncode != 0 or "--lease" not in smoke.stdout:
            raise RuntimeError(f"the image's operator does not start: {(smoke.stderr or smoke.stdout).strip()[-500:]}")
        base = _files(root, keep=lambda r: not r.startswith(("app/", *DROP)) and r != "usr/bin/python")
        base += [images.File("usr/bin/python", link="python3.11"),
                 images.File("etc/passwd", f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                           f"yunshang:x:{UID}:{UID}:yunshang operator:/app:/usr/sbin/nologin\n".encode()),
                 images.File("etc/group", f"root:x:0:\nyunshang:x:{UID}:\n".encode()),
                 images.File("var/lib/dpkg/status", _status(packages)),
                 images.File("tmp", directory=True, mode=0o1777)]
        base = list({f.path: f for f in base}.values())
        own_names = {p.name for p in lib.iterdir() if p.name.startswith("yunshang")}
        deps = [*_parents("app/lib"), *_files(lib, "app/lib/", keep=lambda r: r.split("/")[2] not in own_names)]
        own = [*_parents("app/lib"), *_files(lib, "app/lib/", keep=lambda r: r.split("/")[2] in own_names)]
        layers = [images.layer(base), images.layer(deps), images.layer(own)]
    labels = {"org.opencontainers.image.title": "yunshang-operator", "org.opencontainers.image.version": tag,
              "org.opencontainers.image.source": "https://github.com/yunshang/yunshang",
              "org.opencontainers.image.base.name": f"debian:{SUITE} ({', '.join(DEBIAN)}, mmdebstrap)"}
    archive = images.oci_archive(ref, layers, [], COMMAND, user=UID, env=ENV, labels=labels, gzipped=True)
    path = dest / f"operator-{tag}.oci.tar"
    images._write(path, archive)
    return Built(path, ref, manifest_digest(path), path.stat().st_size, sum(map(len, layers)),
                 time.monotonic() - started, packages, wheels)


def manifest_digest(archive: Path) -> str:
    """The digest of the image's manifest in an OCI archive (what a registry names it by)."""
    with tarfile.open(archive) as t:
        index = json.load(t.extractfile("index.json"))
    return index["manifests"][0]["digest"]


def layers_of(archive: Path) -> list[tuple[str, int]]:
    """(media type, size) of each layer of the archive's image."""
    with tarfile.open(archive) as t:
        index = json.load(t.extractfile("index.json"))
        man = json.load(t.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":", 1)[1]))
    return [(d["mediaType"], d["size"]) for d in man["layers"]]


def retag(archive: Path, ref: str, out: Path) -> Path:
    """The same image under another name (``ref``: repository:tag), written to ``out``."""
    with tarfile.open(archive) as t:
        members = {m.name: t.extractfile(m).read() if m.isfile() else None for m in t.getmembers()}
    index = json.loads(members["index.json"])
    index["manifests"][0]["annotations"] = {"io.containerd.image.name": ref,
                                            "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}
    members["index.json"] = json.dumps(index, sort_keys=True).encode()
    files = [images.File(n, d) if d is not None else images.File(n, directory=True, mode=0o755)
             for n, d in members.items()]
    images._write(out, images.layer(files))
    return out

