"""Plain `pulumi` (the pinned CLI), its Python language host and the real kubernetes provider,
offline, on a two-object project against the tests' own control plane."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from kubernetes import client

from helpers import changes, pulumi

pytestmark = pytest.mark.pulumi
ROOT = Path(__file__).resolve().parents[2]

PROGRAM = '''
import pulumi
import pulumi_kubernetes as k8s

cfg = pulumi.Config()
k = k8s.Provider("k8s", kubeconfig=open(cfg.require("kubeconfig")).read(), cluster_identifier="smoke")
ns = k8s.core.v1.Namespace("ns", metadata={"name": "pulumi-smoke"}, opts=pulumi.ResourceOptions(provider=k))
cm = k8s.core.v1.ConfigMap("cm", metadata={"name": "hello", "namespace": ns.metadata.name},
                           data={"greeting": "云上"}, opts=pulumi.ResourceOptions(provider=k))
pulumi.export("configmap_uid", cm.metadata.uid)
'''


def test_plain_pulumi_up_preview_destroy_through_the_language_host(control_plane, kube_api, tmp_path):
    project = tmp_path / "smoke"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(textwrap.dedent(f"""\
        name: yunshang-smoke
        runtime:
          name: python
          options:
            virtualenv: {ROOT / '.venv'}
        """))
    (project / "__main__.py").write_text(PROGRAM)
    state = tmp_path / "state"
    pulumi(["stack", "init", "smoke"], project, state)
    pulumi(["config", "set", "kubeconfig", str(control_plane.kubeconfig)], project, state)

    up = pulumi(["up", "--yes", "--json"], project, state)
    assert changes(up) == {"create": 4}  # the stack, the provider, 2 objects
    core = client.CoreV1Api(kube_api)
    cm = core.read_namespaced_config_map("hello", "pulumi-smoke")
    assert cm.data == {"greeting": "云上"}
    out = pulumi(["stack", "output", "configmap_uid"], project, state)
    assert out.stdout.strip() == cm.metadata.uid

    assert changes(pulumi(["preview", "--json"], project, state)) == {}

    pulumi(["destroy", "--yes"], project, state)
    with pytest.raises(client.ApiException) as exc:
        core.read_namespace("pulumi-smoke")
    assert exc.value.status == 404


def test_a_program_error_is_reported_not_hung(control_plane, tmp_path):
    project = tmp_path / "broken"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(f"name: broken\nruntime:\n  name: python\n  options:\n"
                                         f"    virtualenv: {ROOT / '.venv'}\n")
    (project / "__main__.py").write_text("import pulumi\nraise pulumi.RunError('config yunshang:x: broken on purpose')\n")
    state = tmp_path / "state"
    pulumi(["stack", "init", "b"], project, state)
    r = pulumi(["preview"], project, state, check=False)
    assert r.returncode != 0
    assert "config yunshang:x: broken on purpose" in r.stdout + r.stderr
