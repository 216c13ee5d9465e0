"""The local node's images are OCI image layouts this project writes itself (dev/images.py)."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

from yunshang.dev import images


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_an_archive_is_a_complete_oci_layout_whose_digests_hold():
    files = [images.File("bin", directory=True, mode=0o755), images.File("bin/hello", b"#!/bin/sh\necho hi\n", 0o755),
             images.File("bin/hi", link="hello")]
    archive = images.oci_archive("yunshang.local/demo:2", [images.layer(files)], ["/bin/hello"])
    got = members(archive)
    assert json.loads(got["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in got.items():  # every blob is named by its content
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    (desc,) = json.loads(got["index.json"])["manifests"]
    assert desc["annotations"]["io.containerd.image.name"] == "yunshang.local/demo:2"
    manifest = json.loads(got["blobs/sha256/" + desc["digest"].split(":")[1]])
    config = json.loads(got["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])
    assert config["config"]["Entrypoint"] == ["/bin/hello"] and config["config"]["User"] == str(images.NOBODY)
    assert config["rootfs"]["diff_ids"] == [d["digest"] for d in manifest["layers"]]
    (layer_desc,) = manifest["layers"]
    with tarfile.open(fileobj=io.BytesIO(got["blobs/sha256/" + layer_desc["digest"].split(":")[1]])) as tar:
        hello, hi = tar.getmember("bin/hello"), tar.getmember("bin/hi")
        assert hello.mode == 0o755 and tar.extractfile(hello).read() == b"#!/bin/sh\necho hi\n"
        assert hi.issym() and hi.linkname == "hello"


def test_the_same_files_make_the_same_image():
    one = images.oci_archive("yunshang.local/x:1", [images.layer([images.File("a", b"1")])], ["/a"])
    two = images.oci_archive("yunshang.local/x:1", [images.layer([images.File("a", b"1")])], ["/a"])
    other = images.oci_archive("yunshang.local/x:1", [images.layer([images.File("a", b"2")])], ["/a"])
    assert one == two and one != other


def test_the_toolbox_links_the_applets_to_busybox():
    got = members(images.toolbox_archive(b"\x7fELF-not-really"))
    index = json.loads(got["index.json"])
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == images.TOOLBOX
    layers = [d for n, d in got.items() if n.startswith("blobs/") and d[:1] != b"{"]
    with tarfile.open(fileobj=io.BytesIO(layers[0])) as tar:
        assert tar.getmember("bin/nc").linkname == "busybox" and tar.getmember("bin/httpd").linkname == "busybox"
        assert tar.getmember("tmp").mode == 0o1777
