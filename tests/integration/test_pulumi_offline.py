"""The real Pulumi engine, offline, against the tests' own control plane."""
from __future__ import annotations

import pytest
from kubernetes import client

pytestmark = pytest.mark.pulumi


def test_up_then_destroy_a_namespace_and_configmap(control_plane, kube_api, tmp_path):
    import pulumi
    from pulumi import automation as auto

    from yunshang.dev import pulumi_env
    from yunshang.infra.kube import KubeObject

    kubeconfig = str(control_plane.kubeconfig)

    def program():
        ns = KubeObject("ns", {"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": "pulumi-smoke"}}, kubeconfig=kubeconfig)
        cm = KubeObject("cm", {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "hello", "namespace": "pulumi-smoke"},
                               "data": {"greeting": "云上"}},
                        kubeconfig=kubeconfig, opts=pulumi.ResourceOptions(depends_on=[ns]))
        pulumi.export("configmap_uid", cm.uid)

    stack = auto.create_stack(
        stack_name="smoke",
        project_name="yunshang-smoke",
        program=program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(tmp_path),
            env_vars=pulumi_env.env(tmp_path),
            pulumi_command=pulumi_env.pulumi_command(),
            secrets_provider="passphrase",
        ),
    )
    up = stack.up(on_output=print)
    assert up.summary.result == "succeeded"
    assert up.summary.resource_changes == {"create": 3}  # the stack + 2 objects
    core = client.CoreV1Api(kube_api)
    cm = core.read_namespaced_config_map("hello", "pulumi-smoke")
    assert cm.data == {"greeting": "云上"}
    assert up.outputs["configmap_uid"].value == cm.metadata.uid

    again = stack.up(on_output=print)
    assert again.summary.resource_changes == {"same": 3}

    down = stack.destroy(on_output=print)
    assert down.summary.result == "succeeded"
    with pytest.raises(client.ApiException) as exc:
        core.read_namespace("pulumi-smoke")
    assert exc.value.status == 404
