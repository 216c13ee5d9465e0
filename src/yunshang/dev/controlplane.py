"""A throwaway Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok with a few fake nodes.

Every process writes to ``<state>/logs/<name>.log``; their pids are kept in
``<state>/processes.json`` so that ``down`` can stop what ``up`` started, from any process.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import yaml

from . import keycloak
from . import node as node_mod
from . import pki, toolchain

SERVICE_CIDR = "10.96.0.0/16"  # allocated addresses only; nothing is ever sent there
SERVICE_IP = "10.96.0.1"
CONTEXT = "yunshang-local"
OPERATOR_READER = "system:serviceaccount:yunshang-system:yunshang-operator"  # policies.OPERATOR_USER

SOCKET_PATH_MAX = 104  # bytes of a Unix socket's path containerd and the kubelet accept
NODE_SOCKET_DEPTH = len("/kubelet/pod-resources/2244406994")  # the deepest socket under a node's state

# fake nodes: name -> capacity (kwok makes them Ready and runs the pods scheduled on them)
DEFAULT_NODES = {f"kwok-node-{i}": {"cpu": "32", "memory": "128Gi", "pods": "110"} for i in range(3)}


class StartError(RuntimeError):
    """A component did not come up; the message names its log file."""


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state"))
    return Path(os.environ.get("YUNSHANG_STATE_DIR", Path(base) / "yunshang" / "dev"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class ControlPlane:
    state: Path
    ports: dict[str, int] = dataclasses.field(default_factory=dict)
    pids: dict[str, int] = dataclasses.field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = dataclasses.field(default_factory=lambda: dict(DEFAULT_NODES))
    audit_users: list[str] = dataclasses.field(default_factory=list)
    """Users whose every request is written to logs/audit.log (Metadata level); empty: no audit log."""
    audit_webhook: bool = True
    """Send audit events to the operator's /audit endpoint (denials per tenant)."""
    need_to_know_webhook: bool = True
    """Ask the operator's /authorize endpoint about department reads by name (own tenant, its
    agreements, its view: yunshang.views.authorize); off: RBAC alone (tests of admission only)."""
    identity: "keycloak.LocalIdentity | None" = None
    """Also run Keycloak (its realm from the catalog and the people file) and have the API server trust
    it (the stack's yunshang:identity, its issuer this Keycloak's); None: client certificates only."""
    real_node: bool = False
    """Also run a real node (dev/node.py) where the machine can; ``node_note`` says why not otherwise."""
    node_note: str = ""

    # ------------------------------------------------------------------ paths
    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def webhook_token_file(self) -> Path:
        return self.state / "webhook-token"

    @property
    def people_file(self) -> Path:
        """The local provider's people with their passwords (0600): `yunshang dev people`."""
        return self.state / "keycloak" / "people.json"

    @property
    def identity_file(self) -> Path:
        """Where `yunshang login` finds the local provider: issuer, client, CA."""
        return self.state / "identity.json"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def node_state(self) -> Path:
        """The real node's state: ``<state>/node``, unless that path is too long for the Unix sockets
        the node's programs make under it (containerd's ``containerd/containerd.sock.ttrpc``, the
        kubelet's ``kubelet/pod-resources/<n>``: 104 bytes at most), then a short directory of the
        temp dir named after the state dir (the same one every time; ``down`` removes it)."""
        own = self.state / "node"
        if len(os.fsencode(own.resolve())) + NODE_SOCKET_DEPTH <= SOCKET_PATH_MAX:
            return own
        tag = hashlib.sha256(os.fsencode(self.state.resolve())).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"yunshang-node-{tag}"

    def running_node(self) -> "node_mod.RealNode | None":
        """The real node, while its processes are recorded as running."""
        real = node_mod.RealNode.load(self.node_state)
        return real if real is not None and real.pids else None

    def real_node_name(self) -> str:
        """The running real node's name, or empty."""
        real = self.running_node()
        return real.name if real else ""

    def _record(self) -> Path:
        return self.state / "processes.json"

    def save(self) -> None:
        self._record().write_text(json.dumps({"ports": self.ports, "pids": self.pids}, indent=2))

    @classmethod
    def load(cls, state: Path) -> "ControlPlane":
        cp = cls(state=state)
        rec = cp._record()
        if rec.exists():
            data = json.loads(rec.read_text())
            cp.ports, cp.pids = data.get("ports", {}), data.get("pids", {})
        return cp

    # ------------------------------------------------------------------ kubeconfigs
    def write_kubeconfig(self, path: Path, client: str, context: str = CONTEXT) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": context,
                    "cluster": {"server": self.server, "certificate-authority": str(self.pki / "ca.crt")},
                }
            ],
            "users": [
                {
                    "name": f"{context}-{client}",
                    "user": {
                        "client-certificate": str(self.pki / f"{client}.crt"),
                        "client-key": str(self.pki / f"{client}.key"),
                    },
                }
            ],
            "contexts": [
                {"name": context, "context": {"cluster": context, "user": f"{context}-{client}"}}
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        path.chmod(0o600)

    def identity_kubeconfig(self, user: str, groups: list[str]) -> Path:
        """A kubeconfig that authenticates as ``user`` in ``groups`` (a client cert from the local CA)."""
        import hashlib

        stem = "id-" + hashlib.sha256(f"{user}|{','.join(groups)}".encode()).hexdigest()[:12]
        pki.issue_client(self.pki, stem, user, groups)
        path = self.state / f"{stem}.kubeconfig"
        self.write_kubeconfig(path, stem)
        return path

    # ------------------------------------------------------------------ processes
    def alive(self, name: str) -> bool:
        pid = self.pids.get(name)
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # a zombie of ours is not alive
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            return stat.split(")")[-1].split()[0] != "Z"
        except OSError:
            return False

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        log.write(f"\n=== {time.strftime('%F %T')} {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        log.close()
        self.pids[name] = proc.pid
        self.save()
        return proc

    def _fail(self, name: str, why: str) -> StartError:
        log = self.logs / f"{name}.log"
        tail = ""
        if log.exists():
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            tail = "\n".join("    " + ln[:300] for ln in lines[-8:])
        return StartError(f"{name} {why}; see {log}" + (f"\n{tail}" if tail else ""))

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float, proc=None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise self._fail(name, f"exited with code {proc.returncode} while starting")
            try:
                if ready():
                    return
            except Exception:  # not up yet
                pass
            time.sleep(0.2)
        raise self._fail(name, f"was not ready after {timeout:.0f}s")

    def _audit_flags(self) -> list[str]:
        if not self.audit_users and not self.audit_webhook:
            return []
        if self.audit_users:
            rules = [{"level": "Metadata", "users": self.audit_users}, {"level": "None"}]
        else:
            rules = [
                {"level": "None", "users": ["system:kube-controller-manager", "system:kube-scheduler",
                                            "kwok-controller", "system:apiserver"]},
                {"level": "None", "userGroups": ["system:serviceaccounts:kube-system", "system:nodes"]},
                {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/metrics", "/version"]},
                # reads are logged too (Metadata): a department's refused reads are probing, counted against
                # it; a policy rule cannot select departments here, since it sees an impersonating caller
                # before the impersonation.  The operator's own reads are not worth the traffic.
                {"level": "None", "users": [OPERATOR_READER], "verbs": ["watch", "list", "get"]},
                # the audit trail needs what was asked for tenants and agreements (who approved what)
                {"level": "Request", "resources": [{"group": "platform.yunshang.io",
                                                    "resources": ["tenants", "shareagreements"]}]},
                {"level": "Metadata"},
            ]
        policy = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"], "rules": rules}
        path = self.state / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        flags = [f"--audit-policy-file={path}"]
        if self.audit_users:
            flags += [f"--audit-log-path={self.logs / 'audit.log'}", "--audit-log-format=json",
                      "--audit-log-mode=blocking"]
        if self.audit_webhook:
            hook_path = self._operator_hook("audit")
            flags += [f"--audit-webhook-config-file={hook_path}", "--audit-webhook-mode=batch",
                      "--audit-webhook-batch-max-wait=1s", "--audit-webhook-initial-backoff=1s"]
        return flags

    def _operator_hook(self, path: str) -> Path:
        """A kubeconfig for the API server to reach the operator's webhook ``/path`` (TLS, its token)."""
        from ..views import webhook_kubeconfig

        hook = webhook_kubeconfig(f"https://127.0.0.1:{self.ports['operator-webhook']}/{path}",
                                  str(self.pki / "ca.crt"), token=self.webhook_token_file.read_text().strip())
        hook_path = self.state / f"{path}-webhook.kubeconfig"
        hook_path.write_text(yaml.safe_dump(hook))
        hook_path.chmod(0o600)
        return hook_path

    def _authorization_flags(self) -> list[str]:
        """Node and RBAC, then (need_to_know_webhook) the operator's need-to-know webhook (yunshang.views)."""
        if not self.need_to_know_webhook:
            return ["--authorization-mode=Node,RBAC"]
        from ..views import authorization_config

        path = self.state / "authorization.yaml"
        path.write_text(yaml.safe_dump(authorization_config(str(self._operator_hook("authorize").resolve()))))
        return [f"--authorization-config={path}"]

    def operator_env(self) -> dict[str, str]:
        """Environment of an operator for this platform (webhooks, Prometheus)."""
        env = {
            "KUBECONFIG": str(self.kubeconfig),
            "YUNSHANG_WEBHOOK_PORT": str(self.ports["operator-webhook"]),
            "YUNSHANG_WEBHOOK_TOKEN_FILE": str(self.webhook_token_file),
            "YUNSHANG_WEBHOOK_TLS_CERT": str(self.pki / "operator-webhook.crt"),
            "YUNSHANG_WEBHOOK_TLS_KEY": str(self.pki / "operator-webhook.key"),
        }
        if "prometheus" in self.ports:
            env["YUNSHANG_PROMETHEUS_URL"] = f"http://127.0.0.1:{self.ports['prometheus']}"
        if "alertmanager" in self.ports:  # the operator keeps Alertmanager's routes to the tenants' contacts
            env.update({"YUNSHANG_ALERTING_BASE": str(self.state / "alerting-base.json"),
                        "YUNSHANG_ALERTMANAGER_CONFIG": str(self.state / "alertmanager.yml"),
                        "YUNSHANG_ALERTMANAGER_URL": f"http://127.0.0.1:{self.ports['alertmanager']}"})
        return env

    def start_monitoring(self, settings=None, timeout: float = 60,
                         progress: Callable[[str], None] = lambda m: None) -> None:
        """Prometheus (rules from monitoring/rules) and Alertmanager (routes quarantine alerts to the operator)."""
        from . import monitoring

        progress("starting Prometheus and Alertmanager")
        settings = settings or monitoring.Settings()
        self.ports["prometheus"] = self.ports.get("prometheus") or free_port()
        self.ports["alertmanager"] = self.ports.get("alertmanager") or free_port()
        self.save()
        prom_cfg, am_cfg = monitoring.write_configs(
            self.state, prometheus_port=self.ports["prometheus"], operator_metrics=self.ports["operator-metrics"],
            apiserver=self.ports["apiserver"], alertmanager=self.ports["alertmanager"], pki=self.pki,
            webhook_port=self.ports["operator-webhook"], token_file=self.webhook_token_file, settings=settings,
            kubelets=self._kubelets(),
        )
        am = self._spawn("alertmanager", monitoring.alertmanager_argv(
            toolchain.find("alertmanager"), am_cfg, self.state / "alertmanager", self.ports["alertmanager"]))
        prom = self._spawn("prometheus", monitoring.prometheus_argv(
            toolchain.find("prometheus"), prom_cfg, self.state / "prometheus", self.ports["prometheus"]))
        for name, proc, port in (("alertmanager", am, self.ports["alertmanager"]),
                                 ("prometheus", prom, self.ports["prometheus"])):
            self._wait(name, lambda port=port: _http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout, proc)

    def _kubelets(self) -> list[str]:
        """The real node's kubelet (address:port), if one runs."""
        real = self.running_node()
        return [f"{node_mod.bridge_ip(real.index)}:{real.ports['kubelet']}"] if real else []

    def _https_ok(self, path: str) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        try:
            with urllib.request.urlopen(self.server + path, context=ctx, timeout=2) as r:
                return r.status == 200
        except urllib.error.HTTPError:
            return False

    # ------------------------------------------------------------------ up / down
    def up(self, progress: Callable[[str], None] = lambda m: None, timeout: float = 90) -> None:
        if any(self.alive(n) for n in self.pids):
            raise StartError(f"a control plane is already running from {self.state}; run `yunshang dev down` first")
        bins = {n: toolchain.find(n) for n in toolchain.CONTROL_PLANE}
        self.state.mkdir(parents=True, exist_ok=True)
        self.pids = {}
        self.ports = {n: free_port() for n in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler",
                                                 "kwok", "operator-webhook", "operator-metrics", "alertmanager")}
        self.save()
        pki.ensure_pki(self.pki, SERVICE_IP)
        # the API server's identity towards kubelets (logs, exec): bound to system:kubelet-api-admin
        pki.issue_client(self.pki, "apiserver-kubelet-client", node_mod.KUBELET_CLIENT_USER, [])
        pki.issue_server(self.pki, "operator-webhook", ["127.0.0.1", "localhost"])
        if not self.webhook_token_file.exists():
            import secrets

            self.webhook_token_file.write_text(secrets.token_urlsafe(32))
            self.webhook_token_file.chmod(0o600)
        for client in ("admin", "controller-manager", "scheduler", "kwok"):
            self.write_kubeconfig(self.state / f"{client}.kubeconfig", client)
        self.write_kubeconfig(self.kubeconfig, "admin")
        try:
            kc = self._spawn_keycloak(progress) if self.identity else None
            self._start_all(bins, progress, timeout, kc)
            if self.real_node:
                self.node_note = node_mod.why_not()
                if self.node_note:
                    progress(self.node_note)
                else:
                    self._start_node(progress, timeout)
        except BaseException:
            self.down()
            raise

    # ------------------------------------------------------------------ identity provider
    def _identity_config(self):
        """The stack's identity settings with this platform's Keycloak as the issuer."""
        from ..identity.realm import REALM

        cfg = self.identity.config
        return cfg.model_copy(update={"issuer": keycloak.issuer(self.ports["keycloak"], REALM),
                                      "ca_file": str(self.pki / "ca.crt")})

    def _spawn_keycloak(self, progress) -> subprocess.Popen:
        """Keycloak starts first (it takes the longest), beside etcd."""
        import secrets

        progress("starting Keycloak (the identity provider)")
        self.ports["keycloak"] = free_port()
        self.save()
        pki.issue_server(self.pki, "keycloak", ["127.0.0.1", "localhost"])
        home = self.state / "keycloak"
        home.mkdir(parents=True, exist_ok=True)
        admin = home / "bootstrap-admin"
        if not admin.exists():
            admin.write_text(secrets.token_urlsafe(24))
            admin.chmod(0o600)
        return self._spawn("keycloak", keycloak.argv(self.ports["keycloak"], self.pki / "keycloak.crt",
                                                     self.pki / "keycloak.key"),
                           env=keycloak.env(home, admin.read_text()))

    def _finish_keycloak(self, proc, progress, timeout: float) -> None:
        port, ca = self.ports["keycloak"], self.pki / "ca.crt"
        self._wait("keycloak", lambda: keycloak.ready(port, ca), max(timeout, 120), proc)
        progress("loading the realm: the catalog's departments, reviewers, admins, ops")
        people = self.identity.passwords(self.people_file)
        try:
            keycloak.load_realm(port, ca, (self.state / "keycloak" / "bootstrap-admin").read_text(),
                                self.identity.realm(people))
        except RuntimeError as e:
            raise self._fail("keycloak", str(e)) from None
        cfg = self._identity_config()
        self.identity_file.write_text(json.dumps({"issuer": cfg.issuer, "clientId": cfg.client_id,
                                                  "caFile": cfg.ca_file}, indent=1))

    def _authentication_flags(self) -> list[str]:
        if not self.identity:
            return []
        from ..identity.authn import authentication_config

        path = self.state / "authentication.yaml"
        path.write_text(yaml.safe_dump(authentication_config(self._identity_config(),
                                                             (self.pki / "ca.crt").read_text())))
        return [f"--authentication-config={path}"]

    def _start_node(self, progress, timeout: float) -> None:
        from kubernetes import client, config

        real = node_mod.RealNode(state=self.node_state, service_cidr=SERVICE_CIDR)
        real.up(f"127.0.0.1:{self.ports['apiserver']}", self.pki, self._spawn, self._wait, free_port, progress, timeout)
        api = config.new_client_from_config(str(self.kubeconfig))
        core = client.CoreV1Api(api)

        def ready() -> bool:
            n = core.read_node(real.name)
            return any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
        try:
            self._wait("kubelet", ready, timeout, None)
            from .. import platform

            apply = lambda objs: platform.install(api, objs)  # noqa: E731
            real.start_firewall(self.pki, self._spawn, apply, progress)
            proxy = real.start_services(self.pki, self._spawn, apply, progress)
            healthz = f"http://127.0.0.1:{real.ports['kube-proxy-healthz']}/healthz"  # on the node's loopback
            self._wait("kube-proxy", lambda: node_mod.call_in_node(real.index, lambda: _http_ok(healthz)), timeout,
                       proxy)
            apps = client.AppsV1Api(api)
            self._wait("kubelet", lambda: (apps.read_namespaced_deployment("coredns", "kube-system").status
                                           .available_replicas or 0) >= 1, timeout, None)
        finally:
            api.close()

    def _start_all(self, bins: dict[str, Path], progress, timeout: float, keycloak_proc=None) -> None:
        p = self.ports
        etcd_url = f"http://127.0.0.1:{p['etcd']}"
        progress("starting etcd")
        proc = self._spawn(
            "etcd",
            [
                str(bins["etcd"]),
                "--name=yunshang",
                f"--data-dir={self.state / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
                f"--initial-cluster=yunshang=http://127.0.0.1:{p['etcd-peer']}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync=true",  # throwaway data: trade durability for speed
                "--log-level=warn",
            ],
        )

        def etcd_ready() -> bool:
            with urllib.request.urlopen(etcd_url + "/health", timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"

        self._wait("etcd", etcd_ready, timeout, proc)
        if keycloak_proc is not None:
            # the API server's JWT authenticator reads the provider's discovery document when it
            # starts and retries only every 10 s: the realm is there first
            self._finish_keycloak(keycloak_proc, progress, timeout)

        progress("starting kube-apiserver")
        k = self.pki
        proc = self._spawn(
            "kube-apiserver",
            [
                str(bins["kube-apiserver"]),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={p['apiserver']}",
                f"--tls-cert-file={k / 'apiserver.crt'}",
                f"--tls-private-key-file={k / 'apiserver.key'}",
                f"--client-ca-file={k / 'ca.crt'}",
                f"--requestheader-client-ca-file={k / 'ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={k / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={k / 'front-proxy-client.key'}",
                f"--service-account-key-file={k / 'sa.pub'}",
                f"--service-account-signing-key-file={k / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                *self._authorization_flags(),
                *self._authentication_flags(),
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,"
                "DefaultTolerationSeconds,NodeRestriction,PodSecurity,ResourceQuota,ValidatingAdmissionPolicy",
                f"--kubelet-client-certificate={k / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={k / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={k / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--endpoint-reconciler-type=none",  # a loopback address is not a valid endpoint
                "--allow-privileged=false",
                "--profiling=false",
                f"--cert-dir={self.state / 'apiserver-certs'}",
                *self._audit_flags(),
            ],
        )
        self._wait("kube-apiserver", lambda: self._https_ok("/readyz"), timeout, proc)

        progress("starting kube-controller-manager and kube-scheduler")
        cm = self._spawn(
            "kube-controller-manager",
            [
                str(bins["kube-controller-manager"]),
                f"--kubeconfig={self.state / 'controller-manager.kubeconfig'}",
                f"--authentication-kubeconfig={self.state / 'controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={self.state / 'controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={p['controller-manager']}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={k / 'sa.key'}",
                f"--root-ca-file={k / 'ca.crt'}",
                f"--cluster-signing-cert-file={k / 'ca.crt'}",
                f"--cluster-signing-key-file={k / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*",
                "--concurrent-namespace-syncs=5",
                "--concurrent-gc-syncs=20",
                "--horizontal-pod-autoscaler-sync-period=5s",
                # kwok's fake nodes renew their leases from a process that shares 2 cores with everything
                # else: under load a late renewal must not mark the nodes (and their pods) NotReady
                "--node-monitor-grace-period=5m",
            ],
        )
        sched = self._spawn(
            "kube-scheduler",
            [
                str(bins["kube-scheduler"]),
                f"--kubeconfig={self.state / 'scheduler.kubeconfig'}",
                f"--authentication-kubeconfig={self.state / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={self.state / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={p['scheduler']}",
                "--leader-elect=false",
            ],
        )
        progress("starting kwok and its fake nodes")
        kwok = self._spawn(
            "kwok",
            [
                str(bins["kwok"]),
                f"--kubeconfig={self.state / 'kwok.kubeconfig'}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{p['kwok']}",
            ],
        )
        from kubernetes import client, config  # slow import: only when starting

        api = config.new_client_from_config(str(self.kubeconfig))
        core = client.CoreV1Api(api)
        for name, cap in self.nodes.items():
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
                },
                "status": {"capacity": cap, "allocatable": cap},
            }
            try:
                core.create_node(body)
            except client.ApiException as e:
                if e.status != 409:
                    raise

        def nodes_ready() -> bool:
            items = core.list_node().items
            ready = [
                n for n in items
                if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
            ]
            return len(ready) >= len(self.nodes)

        self._wait("kwok", nodes_ready, timeout, kwok)

        def default_sa() -> bool:
            core.read_namespaced_service_account("default", "default")
            return True

        self._wait("kube-controller-manager", default_sa, timeout, cm)
        if sched.poll() is not None:
            raise self._fail("kube-scheduler", f"exited with code {sched.returncode}")
        api.close()

    def start_platform(self, progress: Callable[[str], None] = lambda m: None, timeout: float = 60,
                       operator_env: dict[str, str] | None = None) -> None:
        """Install yunshang's CRDs, RBAC and admission policies, and run the operator as a local process
        (``operator_env``: settings of its own on top of the platform's, e.g. YUNSHANG_ELASTIC_WINDOW)."""
        import sys

        from kubernetes import config

        from .. import platform

        progress("installing CRDs, RBAC and admission policies")
        api = config.new_client_from_config(str(self.kubeconfig))
        platform.install(api)
        api.close()
        progress("starting the operator")
        proc = self._spawn(
            "operator",
            [sys.executable, "-m", "yunshang.operator", "--metrics-port", str(self.ports["operator-metrics"])],
            env={**self.operator_env(), **(operator_env or {})},
        )

        def metrics() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['operator-metrics']}/metrics", timeout=2) as r:
                return r.status == 200

        self._wait("operator", metrics, timeout, proc)

    def _stop(self, name: str, timeout: float = 20) -> bool:
        """Stop one recorded process (SIGTERM to its group, SIGKILL after ``timeout``); True if it ran."""
        pid = self.pids.get(name)
        if not pid or not self.alive(name):
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout
        while self.alive(name) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if self.alive(name):
            os.killpg(pid, signal.SIGKILL)
            while self.alive(name):
                _reap(pid)
                time.sleep(0.05)
        _reap(pid)
        return True

    def down(self, timeout: float = 20) -> list[str]:
        """Stop every recorded process (reverse start order), the real node's first with what it left
        on the host; return the names stopped."""
        stopped = []
        real = node_mod.RealNode.load(self.node_state)
        if real is not None:
            stopped += [n for n in node_mod.PROCESSES if self.alive(n)]
            real.down(stop=lambda name, _pid: self._stop(name, timeout))
            for n in node_mod.PROCESSES:
                self.pids.pop(n, None)
        for name in reversed(list(self.pids)):
            if self._stop(name, timeout):
                stopped.append(name)
        self.pids = {}
        if self.node_state != self.state / "node" and self.node_state.exists() and real is not None:
            shutil.rmtree(self.node_state, ignore_errors=True)  # the short directory of a long state dir
        if self.state.exists():
            self.save()
        return stopped

    def status(self) -> dict[str, dict]:
        out = {}
        for name, pid in self.pids.items():
            out[name] = {"pid": pid, "running": self.alive(name), "log": str(self.logs / f"{name}.log")}
        if "kube-apiserver" in out and out["kube-apiserver"]["running"]:
            try:
                out["kube-apiserver"]["ready"] = self._https_ok("/readyz")
            except Exception:
                out["kube-apiserver"]["ready"] = False
        return out


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.status == 200


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# ---------------------------------------------------------------------- user kubeconfig
# `dev up` merges its platform into the user's kubeconfig under a name of its state dir's own, so
# that a second platform (another --state-dir) never takes over the first one's context, and
# `dev down` takes out only entries that still point at its own platform.

class KubeconfigError(ValueError):
    """A kubeconfig that cannot be read or merged; the message names the file and what to do."""


def user_kubeconfig_path() -> Path:
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0])
    return Path.home() / ".kube" / "config"


def home_state_dir() -> Path:
    """The default state dir, whatever $YUNSHANG_STATE_DIR says: the platform named ``yunshang-local``."""
    base = os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state"))
    return Path(base) / "yunshang" / "dev"


def context_name(state: Path, default: Path | None = None) -> str:
    """The context (and cluster) name of the platform in ``state`` in the user's kubeconfig.

    The default state dir (``default``, else :func:`home_state_dir`) keeps ``yunshang-local``; any
    other gets ``yunshang-local-<basename>-<first 8 hex of the sha256 of its resolved path>``
    (lower-case letters, digits and dashes), the same every time for the same directory.
    """
    resolved = _resolved(state)
    if resolved == _resolved(default or home_state_dir()):
        return CONTEXT
    slug = re.sub(r"[^a-z0-9]+", "-", resolved.name.lower()).strip("-")[:24].strip("-") or "dir"
    return f"{CONTEXT}-{slug}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser())).resolve()


def platform_entries(own: dict, name: str) -> dict[str, dict]:
    """The cluster, user and context (keyed by their kubeconfig lists) that stand for a platform
    in the user's kubeconfig, named after ``name``: its own kubeconfig's current context, renamed."""
    ctx = _named(own.get("contexts"), own.get("current-context"))["context"]
    cluster = _named(own.get("clusters"), ctx["cluster"])["cluster"]
    user = _named(own.get("users"), ctx["user"])["user"]
    user_name = f"{name}-admin"
    return {
        "clusters": {"name": name, "cluster": dict(cluster)},
        "users": {"name": user_name, "user": dict(user)},
        "contexts": {"name": name, "context": {"cluster": name, "user": user_name}},
    }


def _own_entries(cp: ControlPlane, name: str) -> dict[str, dict]:
    """:func:`platform_entries` of the kubeconfig in ``cp``'s state dir."""
    own = _read_kubeconfig(cp.kubeconfig, "platform's kubeconfig")
    try:
        return platform_entries(own, name)
    except (KeyError, TypeError) as e:
        raise KubeconfigError(f"the platform's kubeconfig {cp.kubeconfig} has no usable current context "
                              f"({e}); fix or move it") from None


def _named(entries, name) -> dict:
    for e in entries or []:
        if isinstance(e, dict) and e.get("name") == name:
            return e
    raise KeyError(f"no entry named {name!r}")


def points_at(entry: dict, expected: dict) -> bool:
    """Whether a kubeconfig ``entry`` still says what ``expected`` (from :func:`platform_entries`) says:
    same name and, of the fields we wrote (server, CA, client certificate, cluster and user names),
    the same values; fields added since (a namespace, say) do not matter."""
    if entry.get("name") != expected["name"]:
        return False
    key = next(k for k in expected if k != "name")  # cluster, user or context
    have = entry.get(key)
    return isinstance(have, dict) and all(have.get(f) == v for f, v in expected[key].items())


def _read_kubeconfig(path: Path, what: str = "kubeconfig") -> dict:
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KubeconfigError(f"cannot read the {what} {path} ({first}); fix or move it") from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise KubeconfigError(f"the {what} {path} is not a kubeconfig (a YAML mapping); fix or move it")
    return cfg


def _save_kubeconfig(path: Path, cfg: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    path.chmod(0o600)


def merge_into_user_kubeconfig(cp: ControlPlane, path: Path | None = None) -> tuple[Path, str | None]:
    """Add (or refresh) this platform's context, cluster and user, named by :func:`context_name`,
    and make the context current; return the file and the context that was current before.

    Entries of any other name (another platform's included) are left as they are.  The previous
    context is kept in ``<state>/previous-context`` for :func:`remove_from_user_kubeconfig`.
    """
    path = path or user_kubeconfig_path()
    name = context_name(cp.state)
    ours = _own_entries(cp, name)
    cfg = (_read_kubeconfig(path, "user kubeconfig") if path.exists() else {}) or {"apiVersion": "v1", "kind": "Config"}
    previous = cfg.get("current-context") or None
    for key, entry in ours.items():
        cfg[key] = [e for e in cfg.get(key) or [] if not (isinstance(e, dict) and e.get("name") == entry["name"])]
        cfg[key].append(entry)
    cfg["current-context"] = name
    remembered = cp.state / "previous-context"
    if previous and previous != name:
        remembered.write_text(previous)
    elif not previous:
        remembered.unlink(missing_ok=True)
    _save_kubeconfig(path, cfg)
    return path, previous


@dataclasses.dataclass
class Removal:
    """What :func:`remove_from_user_kubeconfig` did to the user's kubeconfig."""

    path: Path
    context: str
    removed: list[str] = dataclasses.field(default_factory=list)
    """``clusters/<name>``, ``users/<name>``, ``contexts/<name>``; empty: the file was not written."""
    current: str | None = None
    """The context made current again ('' = none); None: the current context was left alone."""


def remove_from_user_kubeconfig(cp: ControlPlane, path: Path | None = None) -> Removal:
    """Take this platform's entries (:func:`context_name`) out of the user's kubeconfig, only if they
    still point at it: its cluster entry names the server and CA of ``<state>/kubeconfig``.

    If its context was the current one, the context current before ``dev up`` is made current
    again (when it still exists; else none).  Nothing matching: the file is left untouched.
    """
    path = path or user_kubeconfig_path()
    result = Removal(path=path, context=context_name(cp.state))
    if not path.exists() or not cp.kubeconfig.exists():
        return result
    ours = _own_entries(cp, result.context)
    cfg = _read_kubeconfig(path, "user kubeconfig")
    if not any(points_at(e, ours["clusters"]) for e in _dicts(cfg.get("clusters"))):
        return result  # absent, or the name now stands for another cluster: not ours to remove
    for key, entry in ours.items():
        kept = [e for e in cfg.get(key) or [] if not (isinstance(e, dict) and points_at(e, entry))]
        if len(kept) != len(cfg.get(key) or []):
            result.removed.append(f"{key}/{entry['name']}")
            cfg[key] = kept
    if cfg.get("current-context") == result.context and f"contexts/{result.context}" in result.removed:
        remembered = cp.state / "previous-context"
        previous = remembered.read_text().strip() if remembered.exists() else ""
        known = {e.get("name") for e in _dicts(cfg.get("contexts"))}
        result.current = cfg["current-context"] = previous if previous in known else ""
        remembered.unlink(missing_ok=True)
    _save_kubeconfig(path, cfg)
    return result


def _dicts(entries) -> list[dict]:
    return [e for e in entries or [] if isinstance(e, dict)]
