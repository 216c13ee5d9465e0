"""Shared fixtures.  The control plane is the tests' own: a throwaway one in a temp dir,
never the user's cluster or kubeconfig."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from yunshang.dev import controlplane, toolchain


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory) -> controlplane.ControlPlane:
    """A real control plane for the whole test session (started once, stopped at the end)."""
    gone = toolchain.missing(toolchain.CONTROL_PLANE)
    if gone:
        pytest.fail(f"toolchain incomplete, missing {', '.join(gone)}: run `make setup`", pytrace=False)
    cp = controlplane.ControlPlane(state=tmp_path_factory.mktemp("platform"))
    cp.up()
    yield cp
    cp.down()


@pytest.fixture(scope="session")
def kube_api(control_plane):
    """An admin ApiClient for the test control plane."""
    from kubernetes import config

    api = config.new_client_from_config(str(control_plane.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="session")
def platform(control_plane, kube_api):
    """The control plane with yunshang's CRDs, RBAC and admission policies installed."""
    from yunshang import platform as plat

    plat.install(kube_api)
    return control_plane


@pytest.fixture(autouse=True)
def _no_user_kubeconfig(monkeypatch, tmp_path_factory):
    """Nothing a test runs may read or write the user's kubeconfig."""
    fake = tmp_path_factory.getbasetemp() / "user-kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(fake))
    yield
