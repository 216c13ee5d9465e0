"""Shared fixtures.  The control plane is the tests' own: a throwaway one in a temp dir,
never the user's cluster or kubeconfig."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from yunshang.dev import controlplane, toolchain


def pytest_addoption(parser):
    parser.addoption("--control", default="", help="run only the tests that name this control "
                     "(@pytest.mark.control); with YUNSHANG_KNOCK_OUT=<it> they must fail (tests/knockout.py)")


pytest_plugins = ["knockout_run"]  # the knock-out run beside the suite


def pytest_configure(config):
    _away_from_the_user(config)


def _away_from_the_user(config) -> None:
    """The whole run, and every process it starts, has a HOME, KUBECONFIG and XDG directories of its
    own (issue 30.5): a user's ~/.kube/config, local platforms and Pulumi stacks are never read,
    whatever imported the kubernetes client first (it takes its default kubeconfig's path from the
    environment at import).  The pinned toolchain and the Go caches stay where `make setup` put them."""
    import shutil
    import tempfile

    real_home = Path.home()
    cache = os.environ.get("XDG_CACHE_HOME") or str(real_home / ".cache")
    keep = {"YUNSHANG_CACHE": str(toolchain.cache_root()), "GOPATH": str(real_home / "go"),
            "GOCACHE": str(Path(cache) / "go-build")}
    for k, v in keep.items():
        os.environ.setdefault(k, v)
    home = Path(tempfile.mkdtemp(prefix="yunshang-test-home-"))
    for k, v in {"HOME": home, "KUBECONFIG": home / ".kube" / "config", "XDG_STATE_HOME": home / ".local" / "state",
                 "XDG_CONFIG_HOME": home / ".config", "XDG_CACHE_HOME": home / ".cache"}.items():
        os.environ[k] = str(v)
    for k in ("YUNSHANG_STATE_DIR", "PULUMI_BACKEND_URL", "PULUMI_HOME", "YUNSHANG_KUBECONFIG", "YUNSHANG_CONTEXT"):
        os.environ.pop(k, None)
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))


def pytest_sessionfinish(session):
    """No platform a test started outlives the session, whatever its fixture's teardown did: every
    control plane recorded under this process's temp dirs with a process still running is taken down
    (and named, so that the fixture that lost it can be mended)."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    base = factory.getbasetemp() if factory is not None else None
    if base is None or not base.exists():
        return
    for record in sorted({r.resolve() for r in [*base.glob("*/processes.json"), *base.glob("*/*/processes.json")]}):
        cp = controlplane.ControlPlane.load(record.parent)
        if any(cp.alive(name) for name in cp.pids):
            cp.down()
            session.config.get_terminal_writer().line(f"left running by its fixture, now down: {record.parent}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.cluster)
    wanted = config.getoption("--control")
    if wanted:
        keep = [i for i in items if any(m.args and m.args[0] == wanted for m in i.iter_markers("control"))]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


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


@pytest.fixture(autouse=True)
def _an_event_loop():
    """Every test starts with a current event loop (asyncio.run in one test leaves the thread without
    one, and Pulumi's mocks ask for it): tests pass in any order."""
    import asyncio

    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    yield


SESSION: dict[str, object] = {}  # the session's control plane and admin client, once a test started them


@pytest.fixture(scope="module", autouse=True)
def _own_tenants(request):
    """Each module's tenants are its own: those it created on the session's platform are deleted
    (with their namespaces) when the module ends, so that modules pass alone and in any order."""
    api = SESSION.get("api")
    before = _tenant_names(api) if api is not None else set()
    yield
    api = SESSION.get("api")
    if api is None:
        return
    from kubernetes import client

    from helpers import wait_for

    co = client.CustomObjectsApi(api)
    mine = _tenant_names(api) - before
    for name in mine:
        try:  # Delete: the namespaces and their data go too (a test platform's)
            co.patch_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", name,
                                           {"spec": {"deletionPolicy": "Delete"}})
            co.delete_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", name)
        except client.ApiException as e:
            if e.status != 404:
                raise
    if mine and SESSION.get("operator"):
        wait_for(f"{len(mine)} tenants of {request.module.__name__} gone",
                 lambda: not (_tenant_names(api) & mine), timeout=120, interval=0.25)


def _tenant_names(api) -> set[str]:
    from kubernetes import client

    try:
        items = client.CustomObjectsApi(api).list_cluster_custom_object("platform.yunshang.io", "v1alpha1",
                                                                        "tenants")["items"]
    except client.ApiException:  # the CRD is not installed yet
        return set()
    return {t["metadata"]["name"] for t in items}


@pytest.fixture(scope="session")
def kube_api(control_plane):
    """An admin ApiClient for the test control plane."""
    from kubernetes import config

    api = config.new_client_from_config(str(control_plane.kubeconfig))
    SESSION["api"] = api
    yield api
    SESSION.pop("api", None)
    api.close()


@pytest.fixture(scope="session")
def platform(control_plane, kube_api):
    """The control plane with yunshang's CRDs, RBAC and admission policies installed."""
    from yunshang import platform as plat

    plat.install(kube_api)
    from helpers import knock_out_if_asked

    knock_out_if_asked(kube_api)  # tests/knockout.py: the platform without one control
    return control_plane


@pytest.fixture(autouse=True)
def _no_network_in_unit_tests(request, monkeypatch):
    """A unit test reaches no server it did not start (tests/netguard.py, issue 30.5)."""
    if "unit" not in request.node.path.relative_to(Path(__file__).parent).parts:
        yield None
        return
    import netguard

    yield from netguard.unit_guard(monkeypatch)


@pytest.fixture(autouse=True)
def _no_user_kubeconfig(monkeypatch, tmp_path_factory):
    """Nothing a test runs may read or write the user's kubeconfig, platform state or Pulumi stacks."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("KUBECONFIG", str(base / "user-kubeconfig"))
    monkeypatch.setenv("YUNSHANG_STATE_DIR", str(base / "user-state"))
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    yield


RUNNING: list["OperatorProcess"] = []


class OperatorProcess:
    """The operator as a real process (so tests can kill -9 it and start it again)."""

    def __init__(self, control_plane, log_dir: Path, resync: float = 3.0, extra_env=None, metrics_port=None):
        from yunshang.dev.controlplane import free_port

        self.cp, self.log_dir, self.resync, self.extra_env = control_plane, log_dir, resync, extra_env or {}
        self.proc = None
        self.metrics_port = metrics_port or free_port()  # kept across restarts: Prometheus scrapes it
        self.starts = 0

    def start(self):
        import subprocess
        import sys

        self.starts += 1
        if self not in RUNNING:
            RUNNING.append(self)
        env = {**os.environ, "KUBECONFIG": str(self.cp.kubeconfig), "YUNSHANG_RESYNC_SECONDS": str(self.resync),
               "YUNSHANG_VIEW_SECONDS": "1", **self.extra_env}
        log = (self.log_dir / f"operator-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "yunshang.operator", "--metrics-port", str(self.metrics_port)],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        from helpers import wait_for

        wait_for("operator metrics endpoint", self._metrics_up, timeout=30)
        return self

    def _metrics_up(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited {self.proc.returncode}; see {self.log_dir}")
        try:
            self.metrics()
            return True
        except OSError:
            return False

    def metrics(self) -> dict[str, float]:
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                key = s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
                out[key] = s.value
        return out

    def reconciles(self) -> float:
        """Tenant reconciles completed (each resync adds one per tenant): the positive signal that
        time passed for the operator, for tests that check that nothing happened meanwhile."""
        return sum(v for k, v in self.metrics().items() if k.startswith("yunshang_operator_reconcile_total"))

    def writes(self) -> float:
        return sum(v for k, v in self.metrics().items() if k.startswith("yunshang_operator_api_writes_total"))

    def kill(self):
        import signal

        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except Exception:
                self.kill()


@pytest.fixture(scope="session")
def operator(platform, tmp_path_factory):
    # the platform's own operator: its metrics port is the one Prometheus scrapes, and it serves
    # the audit and Alertmanager webhooks the control plane is configured with
    op = OperatorProcess(platform, tmp_path_factory.mktemp("operator"),
                         extra_env={**platform.operator_env(), "YUNSHANG_AUDIT_ANCHOR_SECONDS": "1",
                                    "YUNSHANG_ALERTING_SECONDS": "1"},
                         metrics_port=platform.ports["operator-metrics"]).start()
    SESSION["operator"] = op
    yield op
    SESSION.pop("operator", None)
    op.stop()


@pytest.fixture(scope="session")
def ops_hook():
    """The platform ops team's webhook (stack config yunshang:alerting.ops on a real platform)."""
    from helpers import Hook

    hook = Hook()
    yield hook
    hook.close()


@pytest.fixture(scope="session")
def monitoring(platform, operator, ops_hook):
    """Prometheus and Alertmanager for the test platform, with short intervals."""
    from yunshang.dev.monitoring import Settings
    from yunshang.models.tenant import Contact

    platform.start_monitoring(Settings(ops=[Contact(name="ops", url=ops_hook.url)],
                                       scrape_interval="1s", evaluation_interval="1s", group_wait="1s",
                                       group_interval="2s"))
    return platform


def prom_query(cp, q: str, raw: bool = False):
    import json
    import urllib.parse
    import urllib.request

    url = f"http://127.0.0.1:{cp.ports['prometheus']}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
    return body if raw else body["data"]["result"]
