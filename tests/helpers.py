"""Test helpers: waiting on conditions with deadlines, and acting as another identity."""
from __future__ import annotations

import contextlib

import json
import time
from pathlib import Path
from typing import Any, Callable

import urllib3
from kubernetes import client


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (client.ApiException, AssertionError, OSError) as e:  # OSError: a server not listening yet
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Impersonated:
    """Requests made by the admin client on behalf of ``user`` in ``groups`` (Impersonate-* headers).

    The Python client keeps headers in a plain dict, which cannot repeat Impersonate-Group, so this
    sends through the client's own connection pool with a multi-valued header dict.
    """

    def __init__(self, api: client.ApiClient, user: str, groups: list[str]):
        self.api, self.user, self.groups = api, user, groups

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json"):
        h = urllib3.HTTPHeaderDict()
        h.add("Impersonate-User", self.user)
        for g in self.groups:
            h.add("Impersonate-Group", g)
        h.add("Accept", "application/json")
        h.add("Content-Type", content_type)
        r = self.api.rest_client.pool_manager.request(
            method, self.api.configuration.host + path,
            body=json.dumps(body).encode() if body is not None else None, headers=h,
        )
        try:
            data = json.loads(r.data or b"{}")
        except ValueError:  # not a Status (e.g. the API server's 500 when an authorizer cannot be asked)
            data = {"message": r.data.decode(errors="replace")}
        return r.status, data

    def create(self, path: str, body: Any):
        return self.request("POST", path, body)

    def merge_patch(self, path: str, body: Any):
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path: str):
        return self.request("DELETE", path)


def make_project(root, kubeconfig, config: dict | None = None):
    """A copy of the project (Pulumi.yaml, infra/, tenants/, the virtualenv linked) with a stack
    `test` configured like `local` but for this control plane (``config``: more of the stack's
    settings, e.g. ``{"yunshang:operator": {...}}``)."""
    import shutil

    import yaml

    root = Path(root)
    here = Path(__file__).resolve().parents[1]
    (root / "stacks").mkdir(parents=True)
    shutil.copy(here / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copytree(here / "tenants", root / "tenants")
    shutil.copytree(here / "infra", root / "infra")
    (root / ".venv").symlink_to(here / ".venv")
    cfg = yaml.safe_load((here / "stacks" / "Pulumi.local.yaml").read_text())
    cfg["config"]["yunshang:kubeconfig"] = str(kubeconfig)
    cfg["config"]["yunshang:cluster"] = "test"
    cfg["config"].update(config or {})
    cfg.pop("encryptionsalt", None)
    (root / "stacks" / "Pulumi.test.yaml").write_text(yaml.safe_dump(cfg))
    return root


def pulumi(args: list[str], cwd, state, env: dict[str, str] | None = None, check: bool = True):
    """The pinned `pulumi` CLI as a platform engineer runs it after `eval "$(yunshang dev env)"`:
    offline, a file backend under ``state``, the language host and provider from the toolchain.
    With ``--json`` the parsed document is returned, else the CompletedProcess."""
    import os
    import subprocess

    from yunshang.dev import pulumi_env, toolchain

    full = {**os.environ, **pulumi_env.env(state), **(env or {})}
    r = subprocess.run([str(toolchain.find("pulumi")), *args, "--non-interactive"], cwd=cwd, env=full,
                       capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"pulumi {' '.join(args)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return _json_result(r.stdout) if "--json" in args and r.returncode == 0 else r


def _json_result(text: str) -> dict[str, Any]:
    """`preview --json` prints one document; `up --json` the preview's and then its engine events:
    the changes it made are those of the summary event."""
    decoder, i, docs = json.JSONDecoder(), 0, []
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text):
            doc, i = decoder.raw_decode(text, i)
            docs.append(doc)
    summary = [d["summaryEvent"] for d in docs if "summaryEvent" in d]
    if summary:
        return {"changeSummary": summary[-1]["resourceChanges"], "events": docs}
    return docs[0] if len(docs) == 1 else {"documents": docs}


def changes(doc: dict[str, Any]) -> dict[str, int]:
    """A `pulumi preview/up --json` change summary without the unchanged ones."""
    return {k: v for k, v in (doc.get("changeSummary") or {}).items() if k != "same" and v}


class Hook:
    """A webhook receiver on 127.0.0.1 (an on-call person's chat hook): keeps what Alertmanager posts."""

    def __init__(self) -> None:
        import http.server
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[tuple[str, str]]:
        """(alertname, tenant) of every alert received."""
        return [(a["labels"].get("alertname", ""), a["labels"].get("tenant", "")) for n in self.received
                for a in n.get("alerts", [])]

    def close(self) -> None:
        self.server.shutdown()


def granted(who: "Impersonated", path: str, timeout: float = 30.0) -> None:
    """Until ``who`` may read ``path``: the operator's need-to-know webhook allows a party to read
    an agreement once the operator has seen it (yunshang.views.authorize)."""
    # every refused read counts against the department (probing): ask every half second, not faster
    wait_for(f"{who.user} may read {path}", lambda: who.request("GET", path)[0] == 200, timeout=timeout, interval=0.5)


def grant(api: client.ApiClient, tenant: str) -> None:
    """Until the tenant's department may read its tenant by name: the operator's need-to-know
    webhook answers the API server (yunshang.views.authorize), so the operator must be running."""
    from yunshang.models.tenant import dept_group

    granted(Impersonated(api, "probe", ["yunshang:departments", dept_group(tenant)]),
            f"/apis/platform.yunshang.io/v1alpha1/tenants/{tenant}")


def ready_tenant(co: client.CustomObjectsApi, name: str, **changes: Any) -> None:
    """A tenant created approved (the catalog's way, migrated to sign-offs by the operator), once Ready."""
    from factories import approval, tenant

    body = tenant(name, **changes)
    body["spec"]["approval"] = approval()
    co.create_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", body)
    wait_for(f"{name} Ready", lambda: (co.get_cluster_custom_object("platform.yunshang.io", "v1alpha1", "tenants", name)
                                       .get("status") or {}).get("phase") == "Ready")


def policy_refused(resp, policy: str, *words: str, code: int = 403, binding: str | None = None) -> None:
    """Refused by the admission policy ``policy`` (through ``binding``, by default its own): the API
    server's words naming it, the status its rule's reason gives (Forbidden 403, Invalid 422), and the
    rule's own words."""
    status, body = resp
    msg = body.get("message", "")
    marker = f"ValidatingAdmissionPolicy '{policy}' with binding '{binding or policy}' denied request: "
    assert status == code and marker in msg, (policy, status, msg or body)
    for w in words:
        assert w in msg, (w, msg)


def rbac_refused(resp, who: "Impersonated", verb: str, resource: str = "tenants", group: str = "platform.yunshang.io",
                 namespace: str = "") -> None:
    """Refused by RBAC (not by an admission policy, not a 404): its own words, naming the caller."""
    code, body = resp
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    words = f'is forbidden: User "{who.user}" cannot {verb} resource "{resource}" in API group "{group}" {where}'
    assert code == 403 and words in body.get("message", ""), (words, code, body)


def knock_out_if_asked(api) -> None:
    """In a knock-out run (tests/knockout.py sets YUNSHANG_KNOCK_OUT), take that control away from
    the platform ``api`` talks to: the session's platform, or a module's own."""
    import os

    if os.environ.get("YUNSHANG_KNOCK_OUT"):
        from knockout import knock_out

        knock_out(api, os.environ["YUNSHANG_KNOCK_OUT"])


# ---------------------------------------------------------------------------- pods on the real node

def on_the_node(name: str, command: str, labels: dict | None = None, restart: str = "Never") -> dict:
    """A toolbox pod for the real node (its taint tolerated), running ``command`` in sh."""
    from yunshang.dev import images, node

    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"restartPolicy": restart, "nodeSelector": {node.NODE_LABEL: "true"},
                     "tolerations": [node.TOLERATION], "terminationGracePeriodSeconds": 0,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": images.NOBODY,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "c", "image": images.TOOLBOX, "imagePullPolicy": "Never",
                                     "command": ["/bin/sh", "-c", command],
                                     "terminationMessagePolicy": "FallbackToLogsOnError",
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}]}}


def phase(core, ns: str, name: str) -> str:
    return core.read_namespaced_pod(name, ns).status.phase


def shell_in(core, ns: str, name: str = "shell") -> None:
    core.create_namespaced_pod(ns, on_the_node(name, "exec sleep 2147483647", {"app": name}, "Always"))
    wait_for(f"{name} Running", lambda: phase(core, ns, name) == "Running", timeout=60)


def run_in(core, ns: str, command: str, pod: str = "shell") -> str:
    from kubernetes.stream import stream

    return stream(core.connect_get_namespaced_pod_exec, pod, ns, command=["/bin/sh", "-c", command],
                  stderr=True, stdout=True, stdin=False, tty=False)


def listening(pids) -> list[str]:
    """The addresses (hex, as /proc/net/tcp writes them, without the port) of the TCP sockets the
    processes ``pids`` listen on (each seen in its own network namespace: a real node's are in its)."""
    from pathlib import Path

    from netguard import socket_inodes

    out = []
    for pid in pids:
        inodes = socket_inodes([pid])
        for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and f[9] in inodes:
                    out.append(f[1].split(":")[0])
    return out


@contextlib.contextmanager
def host_lock(alone: bool = False):
    """Real nodes change the host while they run (links, routes, guard chains, cgroups).  Any number
    of them may run at once, in this process and in the knock-out run beside it (a shared lock);
    a test that compares the host before and after takes it ``alone`` (exclusive), so that no other
    real node starts or stops meanwhile."""
    import fcntl

    from yunshang.dev import toolchain

    path = toolchain.cache_root() / "tests-host.lock"  # where the nodes claim their indexes too
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def real_platform(state, monitoring=None, operator_env=None):
    """A platform of its own with a real node, (``monitoring`` settings: Prometheus and
    Alertmanager,) the platform installed and the operator running (``operator_env``: its settings);
    the knock-out run's control taken away where one is asked for; all of it down at the end; the
    host shared with other real nodes (``host_lock``) meanwhile."""
    with host_lock(), _real_platform(state, monitoring, operator_env) as both:
        yield both


@contextlib.contextmanager
def _real_platform(state, monitoring, operator_env):
    from kubernetes import config

    from yunshang.dev import controlplane

    cp = controlplane.ControlPlane(state=state, real_node=True)
    cp.up()
    try:
        assert cp.real_node_name(), cp.node_note  # e.g. not root, no cgroups
        if monitoring is not None:
            cp.start_monitoring(monitoring)
        cp.start_platform(operator_env=operator_env)
        api = config.new_client_from_config(str(cp.kubeconfig))
        try:
            knock_out_if_asked(api)
            yield cp, api
        finally:
            api.close()
    finally:
        cp.down()
