"""A unit test that reaches a server it did not start fails (issue 30.5: four unit tests reached the
API server of a user's stopped local platform through the kubernetes client's default kubeconfig).

The unit tests' guard (tests/netguard.py, autouse for tests/unit in tests/conftest.py) is run here on tests of its own,
in a pytest of their own, beside a server this test holds open: that server stands for a user's
platform (a process the inner tests did not start)."""
from __future__ import annotations

import socket
from pathlib import Path

pytest_plugins = ["pytester"]
HERE = Path(__file__).resolve().parent

CONFTEST = '''
import pytest

import netguard


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    yield from netguard.unit_guard(monkeypatch)
'''

INNER = '''
import socket
import yaml

from yunshang import kube

PORT = {port}


def kubeconfig(tmp_path, port):
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump({{"apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{{"name": "c", "cluster": {{"server": f"http://127.0.0.1:{{port}}"}}}}],
        "users": [{{"name": "u", "user": {{"token": "t"}}}}],
        "contexts": [{{"name": "c", "context": {{"cluster": "c", "user": "u"}}}}]}}))
    return str(path)


def test_a_platform_it_did_not_start_swallowed(tmp_path):
    # the defect's shape: the client reaches a live API server, the code swallows what happens
    try:
        kube.get(kube.connect(kubeconfig(tmp_path, PORT)), "Namespace", "yunshang-system")
    except Exception:
        pass


def test_another_host():
    try:
        socket.create_connection(("192.0.2.1", 443), timeout=0.2)
    except OSError:
        pass


def test_control_its_own_server_and_a_closed_port(tmp_path):
    own = socket.socket()
    own.bind(("127.0.0.1", 0))
    own.listen()
    with socket.create_connection(("127.0.0.1", own.getsockname()[1]), timeout=2):
        pass
    try:
        socket.create_connection(("127.0.0.1", 1), timeout=2)
    except ConnectionRefusedError:
        pass
    own.close()
'''


def test_a_unit_test_that_reaches_a_server_it_did_not_start_fails(pytester, monkeypatch):
    users_platform = socket.socket()
    users_platform.bind(("127.0.0.1", 0))
    users_platform.listen()
    try:
        pytester.makeconftest(CONFTEST)
        pytester.makepyfile(test_inner=INNER.format(port=users_platform.getsockname()[1]))
        monkeypatch.setenv("PYTHONPATH", str(HERE.parent))  # netguard
        result = pytester.runpytest_subprocess("-p", "no:random_order", "-p", "no:cacheprovider", "-rA")
    finally:
        users_platform.close()
    out = result.stdout.str()
    # the guard's verdict comes at teardown: the two that reached out end in an error there
    result.assert_outcomes(passed=3, errors=2)
    assert "ERROR test_inner.py::test_a_platform_it_did_not_start_swallowed" in out
    assert "ERROR test_inner.py::test_another_host" in out
    assert "ERROR test_inner.py::test_control" not in out  # its own server, a closed port: allowed
    assert "a server this test did not start" in out  # the swallowed one, caught by its record
    assert "192.0.2.1:443 is not this machine's loopback" in out


def test_the_client_takes_kubeconfig_as_it_is_now_not_as_it_was_at_import(tmp_path, monkeypatch):
    """kube.connect reads $KUBECONFIG when it connects (the kubernetes client's own default is the
    value it had when the client was first imported, e.g. a user's ~/.kube/config)."""
    import kubernetes.config  # noqa: F401  (imported before the variable changes)

    from yunshang import kube

    path = tmp_path / "kc"
    path.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                    "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                    "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert kube.connect().configuration.host == "https://127.0.0.1:1"
