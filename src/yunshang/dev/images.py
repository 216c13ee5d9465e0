"""Images without a registry: the local node's pods run images this project builds itself.

Each image is an OCI image layout written as one tar (``oci-layout``, ``index.json``, blobs), made
from Debian's packages and a C compiler, never pulled:

- ``yunshang.local/pause:1``: the pod sandbox — a static C program that waits for signals and
  reaps children (what the upstream pause does), compiled here with gcc -static;
- ``yunshang.local/toolbox:1``: Debian's busybox-static (``nc``, ``httpd``, ``sh``) for the demo
  exchange API, the tests' servers and clients.

Builds are deterministic (fixed mtimes and owners), cached by content under the toolchain, and
imported into containerd with ``ctr images import``; pods use them with ``imagePullPolicy: Never``.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Iterable

REGISTRY = "yunshang.local"
PAUSE = f"{REGISTRY}/pause:1"
TOOLBOX = f"{REGISTRY}/toolbox:1"
COREDNS = f"{REGISTRY}/coredns:1"
NOBODY = 65534  # the images' default user: pods in restricted namespaces run as non-root anyway

PAUSE_C = r"""
/* yunshang's pod sandbox: hold the pod's namespaces, reap orphans, exit on SIGINT/SIGTERM. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
    struct sigaction q = {.sa_handler = quit}, r = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &q, NULL);
    sigaction(SIGTERM, &q, NULL);
    sigaction(SIGCHLD, &r, NULL);
    for (;;) pause();
}
"""

# the busybox applets the toolbox links (what tests and the demo use; busybox has them all)
APPLETS = ["sh", "nc", "httpd", "sleep", "cat", "echo", "ls", "nslookup", "printf", "timeout", "true", "false",
           "env", "id", "hostname", "ps", "kill", "mkdir", "head", "tail", "wc", "dd", "seq", "yes", "grep", "sed",
           "awk", "wget", "chmod"]


@dataclasses.dataclass(frozen=True)
class File:
    path: str  # inside the image, without the leading slash
    data: bytes = b""
    mode: int = 0o644
    link: str = ""  # a symlink's target
    directory: bool = False
    owner: int = 0  # uid and gid


def layer(files: Iterable[File]) -> bytes:
    """One uncompressed layer: a tar of ``files`` with fixed owners and times (same files, same bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(files, key=lambda f: f.path):
            info = tarfile.TarInfo(f.path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, f.owner, f.owner, "", ""
            info.mode = f.mode
            if f.directory:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif f.link:
                info.type, info.linkname = tarfile.SYMTYPE, f.link
                tar.addfile(info)
            else:
                info.size = len(f.data)
                tar.addfile(info, io.BytesIO(f.data))
    return buf.getvalue()


def _blob(blobs: dict[str, bytes], data: bytes, media_type: str) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def oci_archive(name: str, layers: list[bytes], entrypoint: list[str], cmd: list[str] | None = None,
                user: int = NOBODY, env: list[str] | None = None, labels: dict[str, str] | None = None,
                gzipped: bool = False) -> bytes:
    """An OCI image layout as a tar: what ``ctr images import``, skopeo (``oci-archive:``) and crane
    take, named ``name``.  ``gzipped``: layers stored compressed (what a registry should get)."""
    blobs: dict[str, bytes] = {}
    if gzipped:  # mtime 0 and no file name in the header: the same layer, the same bytes
        layer_descs = [_blob(blobs, gzip.compress(data, compresslevel=6, mtime=0),
                             "application/vnd.oci.image.layer.v1.tar+gzip") for data in layers]
    else:
        layer_descs = [_blob(blobs, data, "application/vnd.oci.image.layer.v1.tar") for data in layers]
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Entrypoint": entrypoint, "Cmd": cmd or [], "User": str(user),
                         "Env": env or ["PATH=/bin"], "WorkingDir": "/", **({"Labels": labels} if labels else {})},
              "rootfs": {"type": "layers",  # a layer's diff_id: the digest of its uncompressed tar
                         "diff_ids": ["sha256:" + hashlib.sha256(data).hexdigest() for data in layers]}}
    config_desc = _blob(blobs, json.dumps(config, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": layer_descs}
    manifest_desc = _blob(blobs, json.dumps(manifest, sort_keys=True).encode(),
                          "application/vnd.oci.image.manifest.v1+json")
    manifest_desc["annotations"] = {"io.containerd.image.name": name,
                                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [manifest_desc]}
    files = [File("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
             File("index.json", json.dumps(index, sort_keys=True).encode()),
             File("blobs", directory=True, mode=0o755), File("blobs/sha256", directory=True, mode=0o755),
             *(File(f"blobs/sha256/{d.split(':', 1)[1]}", data) for d, data in blobs.items())]
    return layer(files)


def _base() -> list[File]:
    """What every image has: a root with /tmp, /etc/passwd naming nobody, and /etc/hosts' place."""
    return [File("etc", directory=True, mode=0o755), File("tmp", directory=True, mode=0o1777),
            File("etc/passwd", f"root:x:0:0:root:/:/bin/sh\nnobody:x:{NOBODY}:{NOBODY}:nobody:/:/bin/sh\n".encode()),
            File("etc/group", f"root:x:0:\nnogroup:x:{NOBODY}:\n".encode())]


def pause_archive(work: Path, run: Callable[[list[str], Path], None]) -> bytes:
    src = work / "pause.c"
    src.write_text(PAUSE_C)
    run(["gcc", "-static", "-Os", "-s", "-o", str(work / "pause"), str(src)], work)
    files = [*_base(), File("pause", (work / "pause").read_bytes(), 0o755)]
    return oci_archive(PAUSE, [layer(files)], ["/pause"])


def toolbox_archive(busybox: bytes) -> bytes:
    files = [*_base(), File("bin", directory=True, mode=0o755), File("bin/busybox", busybox, 0o755),
             *(File(f"bin/{a}", link="busybox") for a in APPLETS), File("www", directory=True, mode=0o755),
             File("www/index.html", b"yunshang toolbox\n")]
    return oci_archive(TOOLBOX, [layer(files)], ["/bin/sh"], ["-c", "sleep 2147483647"])


def coredns_archive(binary: bytes) -> bytes:
    """The node's DNS: the CoreDNS this project builds (only the plugins it uses), alone."""
    files = [*_base(), File("coredns", binary, 0o755), File("etc/coredns", directory=True, mode=0o755)]
    return oci_archive(COREDNS, [layer(files)], ["/coredns"], ["-conf", "/etc/coredns/Corefile"])


def busybox_static(work: Path, run: Callable[[list[str], Path], None]) -> bytes:
    """Debian's busybox-static binary, taken from its package (downloaded, not installed on the host)."""
    root, _ = _debian_package(work, run, "busybox-static")
    return (root / "bin" / "busybox").read_bytes()


PROMETHEUS_REPO, ALERTMANAGER_REPO = f"{REGISTRY}/prometheus", f"{REGISTRY}/alertmanager"
# what of Debian's libc6 a Go program linked against it loads (the loader, libc; GODEBUG netdns=go:
# the Go resolver, no NSS modules)
LIBC = ["lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libpthread.so.0", "lib/x86_64-linux-gnu/libresolv.so.2"]


def _debian_package(work: Path, run: Callable[[list[str], Path], None], package: str) -> tuple[Path, str]:
    """Debian's ``package`` downloaded (not installed) and unpacked under work/<package>; its upstream version."""
    try:
        run(["apt-get", "download", "-qq", package], work)
    except RuntimeError:  # no package lists yet on a fresh machine
        run(["apt-get", "update", "-qq"], work)
        run(["apt-get", "download", "-qq", package], work)
    deb = next(work.glob(f"{package}_*.deb"))
    run(["dpkg-deb", "-x", str(deb), str(work / package)], work)
    upstream = deb.name.split("_")[1].split(":")[-1].split("-")[0].split("+")[0]
    return work / package, upstream


def _go_program(root: Path, binary: str, libc: Path, name: str, entry: list[str], cmd: list[str],
                data: tuple[str, ...] = ()) -> bytes:
    """A Go program of Debian's with the part of libc it loads (and ``data``: files of its package it
    reads), run as nobody."""
    files = [*_base(), File("lib", directory=True, mode=0o755), File("lib/x86_64-linux-gnu", directory=True, mode=0o755),
             File("lib64", directory=True, mode=0o755),
             File("lib64/ld-linux-x86-64.so.2", link="/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
             *(File(f, (libc / f).read_bytes(), 0o755) for f in LIBC),
             File("bin", directory=True, mode=0o755),
             File(f"bin/{Path(binary).name}", (root / binary).read_bytes(), 0o755)]
    dirs = {str(Path(d).parents[i]) for d in data for i in range(len(Path(d).parents) - 1)}
    files += [File(d, directory=True, mode=0o755) for d in sorted(dirs)]
    files += [File(d, (root / d).read_bytes()) for d in data]
    return oci_archive(name, [layer(files)], entry, cmd, env=["PATH=/bin", "GODEBUG=netdns=go"], gzipped=True)


def monitoring_images(dest: Path, progress: Callable[[str], None] = print) -> dict[str, Path]:
    """Prometheus and Alertmanager as images, from Debian's packages (their binaries and libc): for
    the platform program's in-cluster monitoring (stack config yunshang:monitoring.mode deploy)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        progress("images: Prometheus and Alertmanager from Debian's packages")
        libc, _ = _debian_package(work, run, "libc6")
        prom, prom_v = _debian_package(work, run, "prometheus")
        am, am_v = _debian_package(work, run, "prometheus-alertmanager")
        out = {f"{PROMETHEUS_REPO}:{prom_v}": dest / f"prometheus-{prom_v}.oci.tar",
               f"{ALERTMANAGER_REPO}:{am_v}": dest / f"alertmanager-{am_v}.oci.tar"}
        (p_ref, p_path), (a_ref, a_path) = out.items()
        _write(p_path, _go_program(prom, "usr/bin/prometheus", libc, p_ref, ["/bin/prometheus"], []))
        _write(a_path, _go_program(am, "usr/bin/prometheus-alertmanager", libc, a_ref, ["/bin/prometheus-alertmanager"],
                                   [], data=("usr/share/prometheus/alertmanager/default.tmpl",  # where Debian's reads
                                             "usr/share/prometheus/alertmanager/email.tmpl")))
    return out


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> str:
    """``cmd``'s output; a failure as one line naming the command and the end of what it said."""
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd[:6])}` failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-400:]}")
    return r.stdout



def build(dest: Path, progress: Callable[[str], None] = print, coredns: Path | None = None) -> dict[str, Path]:
    """The images as OCI archives under ``dest`` (kept: built once per toolchain); CoreDNS's where
    its binary is given (built by the toolchain)."""
    dest.mkdir(parents=True, exist_ok=True)
    def named(stem: str, *parts: str) -> Path:  # by what goes in: a change of source, a new archive
        return dest / f"{stem}-{hashlib.sha256(chr(0).join(parts).encode()).hexdigest()[:12]}.oci.tar"
    out = {PAUSE: named("pause", PAUSE_C), TOOLBOX: named("toolbox", *APPLETS)}
    if coredns is not None:
        out[COREDNS] = dest / f"coredns-{hashlib.sha256(coredns.read_bytes()).hexdigest()[:12]}.oci.tar"
        if not out[COREDNS].exists():
            progress("images: building the CoreDNS image")
            _write(out[COREDNS], coredns_archive(coredns.read_bytes()))
    if all(p.exists() for p in out.values()):
        return out
    for tool in ("gcc", "apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found: the local node's images are built with it (Debian: apt-get install {tool})")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        progress("images: building the pause image (gcc -static)")
        _write(out[PAUSE], pause_archive(work, run))
        progress("images: building the toolbox image (Debian's busybox-static)")
        _write(out[TOOLBOX], toolbox_archive(busybox_static(work, run)))
    return out


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.rename(path)
