"""The knock-out run: every security test names the control it proves (@pytest.mark.control);
this removes each control in turn from a fresh test platform and runs the tests that name it,
which must all fail there.  A test that still passes without its control proves something else.

    .venv/bin/python tests/knockout.py                 # every control, a table
    .venv/bin/python tests/knockout.py yunshang-tenant-signoff

Each control gets a platform of its own and collects only the modules whose tests name it;
``YUNSHANG_KNOCKOUT_JOBS`` controls (default 2) run at a time, and the table ends with each
control's seconds.  In the suite the whole run starts with the session and goes on beside the
other tests (tests/knockout_run.py; tests/integration/test_knockout.py reads its verdict, last).

Controls it can remove, and how (each waits until the API server no longer enforces it):

- an admission policy (`yunshang-…`): its binding is deleted;
- `tenant-crd-rules`: the Tenant CRD's rules on names and namespace suffixes are taken out;
- `pod-security-restricted` (the label pod-security.kubernetes.io/enforce=restricted the operator
  puts on tenant namespaces): every write of a tenant namespace is relabelled enforce=privileged by
  a MutatingAdmissionPolicy, so the label the operator applies (and restores) never holds;
- `networkpolicy-tenant-isolation` (the operator's NetworkPolicies in tenant namespaces:
  default-deny and its allow-lists): every write of one is made to select no pod (a
  MutatingAdmissionPolicy), as good as deleted — a deleted one the operator would put back;
- `networkpolicy-sharing` (an Active agreement's two NetworkPolicies: exactly the service's port):
  every write of one loses its ports (a MutatingAdmissionPolicy), opening every port;
- `node-traffic-guard` (the real node's mangle chains and ip rule that keep pod traffic on its
  bridge): removed from the host;
- `apiserver-allow-privileged` (the local control plane's kube-apiserver --allow-privileged=false):
  the API server is restarted with --allow-privileged=true;
- `apiserver-admission-resourcequota`, `apiserver-admission-podsecurity` (admission plugins the
  local kube-apiserver enables): it is restarted with the plugin taken out of
  --enable-admission-plugins and named in --disable-admission-plugins (both are on by default);
- `apiserver-authorization-rbac` (RBAC in the API server's authorizers, --authorization-config):
  it is restarted with --authorization-mode=AlwaysAllow instead;
- `yunshang-offer-terms` (one binding per offer, made and kept by the operator, the offer as its
  parameter): the policy itself is deleted, so that the bindings the operator makes name nothing;
- `authz-need-to-know` (the operator's authorization webhook, yunshang.views.authorize: a
  department reads by name its own tenant, the agreements it is a party to and its own view, and
  nothing else): the API server is restarted with that webhook answered by a stand-in that allows
  whatever it is asked;
- `rbac-builtin-admin` (what Kubernetes' built-in `admin` ClusterRole, the owners' role, holds):
  a ClusterRole of every permission is aggregated into `admin`;
- `rbac-tenant-owners` (the owners bound to `admin` by a RoleBinding inside their namespaces
  only): each owners' RoleBinding is mirrored as a ClusterRoleBinding, for the whole run;
- `rbac-department` (the departments' only cluster-wide grant, ClusterRole yunshang:department:
  tenants, agreements and offers): that ClusterRole is given every permission;
- `identity-authorized-party`, `identity-reserved-usernames` (validation rules of the API server's
  JWT authenticator, yunshang.identity.authn): the rule is taken out of the authentication
  configuration file, which the API server reloads when it changes (its metric of the loaded
  configuration's hash says when).

RBAC denies by default, so an RBAC control is removed by widening the grant it limits, never by
deleting a binding (that would only refuse more).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the real nodes' controls first: they share the host with the suite's (helpers.host_lock)
CONTROLS = ["networkpolicy-tenant-isolation", "networkpolicy-sharing", "node-traffic-guard", "tenant-crd-rules", "yunshang-namespace-ownership", "yunshang-provider-namespace",
            "yunshang-tenant-signoff", "yunshang-tenant-controls", "yunshang-platform-objects",
            "yunshang-audit-append-only", "pod-security-restricted", "apiserver-allow-privileged",
            "rbac-builtin-admin", "rbac-tenant-owners", "rbac-department",
            "yunshang-tenant-governance", "yunshang-offer-governance", "yunshang-sharing-consent",
            "yunshang-agreement-rating", "yunshang-offer-terms", "authz-need-to-know",
            "apiserver-admission-resourcequota", "apiserver-admission-podsecurity", "apiserver-authorization-rbac",
            "yunshang-operator-scope", "identity-authorized-party", "identity-reserved-usernames"]
SUITES = ["tests/integration/test_boundary_attacks.py", "tests/integration/test_conformance.py",
          "tests/integration/test_audit_trail.py", "tests/integration/test_features.py",
          "tests/integration/test_need_to_know.py", "tests/integration/test_offers.py",
          "tests/integration/test_signoff.py", "tests/integration/test_tenant_admission.py",
          "tests/integration/test_controlplane.py", "tests/integration/test_packets.py",
          "tests/integration/test_real_node.py", "tests/integration/test_operator_privileges.py",
          "tests/integration/test_identity.py"]

TENANT_LABEL = "platform.yunshang.io/tenant"
MANAGED = "app.kubernetes.io/managed-by=yunshang"
ADM = "/apis/admissionregistration.k8s.io/v1"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
PROBE_USER = "knockout.probe"  # the identity knock_out checks its own work with


def knock_out(api, control: str) -> None:
    """Remove ``control`` from the platform ``api`` talks to, and wait until the API server no
    longer enforces it."""
    from kubernetes import client

    if control == "tenant-crd-rules":
        from yunshang.models import crd as crds

        body = crds.tenant_crd()
        schema = body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        schema.pop("x-kubernetes-validations")
        schema["properties"]["spec"]["properties"]["namespaces"].pop("x-kubernetes-validations")
        from yunshang import platform

        platform.install(api, [body])  # the installer's own field manager: what it leaves out goes
        time.sleep(3)  # the API server's schema cache follows within about a second
    elif control == "pod-security-restricted":
        _pod_security_privileged(api)
    elif control == "networkpolicy-tenant-isolation":
        _network_policies_select_nothing(api)
    elif control == "networkpolicy-sharing":
        _sharing_policies_any_port(api)
    elif control == "node-traffic-guard":
        _node_unguarded(api)
    elif control == "apiserver-allow-privileged":
        _restart_apiserver(api, _flag("--allow-privileged", "true"), "--allow-privileged=true",
                           lambda: _privileged_admitted(api))
    elif control == "apiserver-admission-resourcequota":
        _restart_apiserver(api, _without_plugin("ResourceQuota"), "no ResourceQuota admission",
                           lambda: _over_quota_admitted(api))
    elif control == "apiserver-admission-podsecurity":
        _restart_apiserver(api, _without_plugin("PodSecurity"), "no PodSecurity admission",
                           lambda: _unrestricted_pod_admitted(api))
    elif control == "apiserver-authorization-rbac":
        _restart_apiserver(api, _always_allow, "--authorization-mode=AlwaysAllow",
                           lambda: _allowed(api, "mallory", [], "list", "secrets", "kube-system"))
    elif control == "authz-need-to-know":
        _need_to_know_allows_everything(api)
    elif control.startswith("identity-"):
        _authentication_rule_removed(api, control)
    elif control == "yunshang-offer-terms":
        _offer_terms_policy_gone(api)
    elif control == "rbac-builtin-admin":
        _admin_holds_everything(api)
    elif control == "rbac-tenant-owners":
        _owners_bound_cluster_wide(api)
    elif control == "rbac-department":
        _department_holds_everything(api)
    elif control.startswith("yunshang-"):
        client.AdmissionregistrationV1Api(api).delete_validating_admission_policy_binding(control)
        time.sleep(3)  # the API server's admission cache follows within about a second
    else:
        raise ValueError(f"knock_out cannot remove {control!r}: teach it how (tests/knockout.py)")


# ---------------------------------------------------------------------------- helpers

def _root(api):
    from helpers import Impersonated

    return Impersonated(api, "yunshang-knockout", ["system:masters"])


def _send(api, method: str, path: str, body=None) -> dict:
    code, resp = _root(api).request(method, path, body, "application/merge-patch+json" if method == "PATCH"
                                    else "application/json")
    if code >= 300:
        raise RuntimeError(f"{method} {path}: {code} {resp.get('message')}")
    return resp


def _mutating_policy(api, name: str, spec: dict) -> None:
    _send(api, "POST", f"{ADM}/mutatingadmissionpolicies",
          {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
           "metadata": {"name": name}, "spec": {"failurePolicy": "Fail", "reinvocationPolicy": "IfNeeded", **spec}})
    _send(api, "POST", f"{ADM}/mutatingadmissionpolicybindings",
          {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
           "metadata": {"name": name}, "spec": {"policyName": name}})


def _allowed(api, user: str, groups: list[str], verb: str, resource: str, namespace: str = "",
             group: str = "") -> bool:
    from kubernetes import client

    review = client.AuthorizationV1Api(api).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, "resourceAttributes": {
            "verb": verb, "resource": resource, "namespace": namespace, "group": group}}})
    return bool(review.status.allowed)


# ---------------------------------------------------------------------------- Pod Security

def _pod_security_privileged(api) -> None:
    """Tenant namespaces enforce=privileged, whatever the operator applies or restores."""
    from kubernetes import client

    from helpers import wait_for

    _mutating_policy(api, "knockout-pod-security", {
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                "operations": ["CREATE", "UPDATE"], "resources": ["namespaces"]}]},
        "matchConditions": [{"name": "tenant-namespace", "expression":
                             f"has(object.metadata.labels) && '{TENANT_LABEL}' in object.metadata.labels"}],
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
                       'Object{metadata: Object.metadata{labels: {"pod-security.kubernetes.io/enforce": "privileged"}}}'}}]})
    core = client.CoreV1Api(api)

    def relabelled() -> bool:
        ns = core.create_namespace({"metadata": {"name": "knockout-probe", "labels": {
            TENANT_LABEL: "knockout-probe", "pod-security.kubernetes.io/enforce": "restricted"}}}, dry_run="All")
        return ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "privileged"
    wait_for("tenant namespaces relabelled enforce=privileged", relabelled, timeout=30)
    for ns in core.list_namespace(label_selector=TENANT_LABEL).items:  # those there already: any write relabels
        core.patch_namespace(ns.metadata.name, {"metadata": {"annotations": {"knockout.yunshang.io/touched": "yes"}}})


# ---------------------------------------------------------------------------- NetworkPolicies

PLATFORM_NETPOLS = ["default-deny", "allow-intra-tenant", "allow-dns", "allow-monitoring"]


def _network_policies_select_nothing(api) -> None:
    """The operator's NetworkPolicies in tenant namespaces select no pod: as if deleted, for good."""
    from kubernetes import client

    from helpers import wait_for

    names = ", ".join(f"'{n}'" for n in PLATFORM_NETPOLS)
    _mutating_policy(api, "knockout-network-isolation", {
        "matchConstraints": {"resourceRules": [{"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"],
                                                "operations": ["CREATE", "UPDATE"], "resources": ["networkpolicies"]}]},
        "matchConditions": [{"name": "the-platforms", "expression":
                             "has(object.metadata.labels) && "
                             f"'{TENANT_LABEL}' in object.metadata.labels && "
                             "object.metadata.labels['app.kubernetes.io/managed-by'] == 'yunshang' && "
                             f"object.metadata.name in [{names}]"}],
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression":
                       '[JSONPatch{op: "replace", path: "/spec/podSelector", value: '
                       'Object.spec.podSelector{matchLabels: {"knockout.yunshang.io/selects": "nothing"}}}]'}}]})
    net = client.NetworkingV1Api(api)

    def neutered() -> bool:
        pol = net.create_namespaced_network_policy("default", {
            "metadata": {"name": "default-deny", "labels": {TENANT_LABEL: "knockout-probe",
                                                            "app.kubernetes.io/managed-by": "yunshang"}},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}, dry_run="All")
        return (pol.spec.pod_selector.match_labels or {}).get("knockout.yunshang.io/selects") == "nothing"
    wait_for("the platform's NetworkPolicies select no pod", neutered, timeout=30)
    for pol in net.list_network_policy_for_all_namespaces(label_selector=f"{MANAGED},{TENANT_LABEL}").items:
        net.patch_namespaced_network_policy(pol.metadata.name, pol.metadata.namespace,
                                            {"metadata": {"annotations": {"knockout.yunshang.io/touched": "yes"}}})


def _node_unguarded(api) -> None:
    """The real node's guard (its mangle chains and the pod range's ip rule) removed from the host."""
    from kubernetes import client

    from yunshang.dev import node

    for n in client.CoreV1Api(api).list_node(label_selector=f"{node.NODE_LABEL}=true").items:
        index = int(n.metadata.name.rsplit("-", 1)[1])
        removed = node._unguard(index)
        if not removed:
            raise RuntimeError(f"node {n.metadata.name}: no guard to remove")


def _sharing_policies_any_port(api) -> None:
    """An agreement's two NetworkPolicies (the provider's ingress, the consumer's egress) lose their
    ports, as written: the path opens to every port of the provider's pods."""
    from kubernetes import client

    from helpers import wait_for
    from yunshang.sharing import LABEL_AGREEMENT

    _mutating_policy(api, "knockout-sharing-any-port", {
        "matchConstraints": {"resourceRules": [{"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"],
                                                "operations": ["CREATE", "UPDATE"], "resources": ["networkpolicies"]}]},
        "matchConditions": [{"name": "an-agreements", "expression":
                             f"has(object.metadata.labels) && '{LABEL_AGREEMENT}' in object.metadata.labels"}],
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression":
                       '(has(object.spec.ingress) && size(object.spec.ingress) > 0 && has(object.spec.ingress[0].ports) ? '
                       '[JSONPatch{op: "remove", path: "/spec/ingress/0/ports"}] : []) + '
                       '(has(object.spec.egress) && size(object.spec.egress) > 0 && has(object.spec.egress[0].ports) ? '
                       '[JSONPatch{op: "remove", path: "/spec/egress/0/ports"}] : [])'}}]})
    net = client.NetworkingV1Api(api)

    def opened() -> bool:
        pol = net.create_namespaced_network_policy("default", {
            "metadata": {"name": "knockout-probe", "labels": {LABEL_AGREEMENT: "knockout-probe"}},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80}]}]}}, dry_run="All")
        return not pol.spec.ingress[0].ports
    wait_for("an agreement's policies open every port", opened, timeout=30)


# ---------------------------------------------------------------------------- the API server's flags

def _flag(flag: str, value: str):
    """An edit of kube-apiserver's arguments: ``flag=value`` instead of what it was."""
    return lambda argv: [a for a in argv if not a.startswith(flag + "=")] + [f"{flag}={value}"]


def _always_allow(argv: list[str]) -> list[str]:
    """An edit of kube-apiserver's arguments: every request allowed (no authorizer chain)."""
    return [a for a in argv if not a.startswith(("--authorization-config=", "--authorization-mode="))] + \
        ["--authorization-mode=AlwaysAllow"]


def _without_plugin(plugin: str):
    """An edit of kube-apiserver's arguments: the admission plugin off (taken out of the enabled
    ones and named among the disabled: it is on by default)."""
    def edit(argv: list[str]) -> list[str]:
        out = []
        for a in argv:
            if a.startswith("--enable-admission-plugins="):
                kept = [p for p in a.split("=", 1)[1].split(",") if p != plugin]
                a = "--enable-admission-plugins=" + ",".join(kept)
            if not a.startswith("--disable-admission-plugins="):
                out.append(a)
        return out + [f"--disable-admission-plugins={plugin}"]
    return edit


def _restart_apiserver(api, edit, what: str, in_force) -> None:
    """Restart this session's kube-apiserver (a child of this process: the control_plane fixture
    started it) with its arguments ``edit``-ed, and wait until ``in_force()`` says the change
    holds; the new one ends with this process."""
    import os
    import signal

    from kubernetes import client

    from helpers import wait_for

    pid, argv = _apiserver(api, started_here=True)
    env = dict(e.split("=", 1) for e in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in e)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10  # it would wait for its watches much longer
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        time.sleep(0.1)
    argv = edit(argv)
    state = Path(next(a for a in argv if a.startswith("--cert-dir=")).split("=", 1)[1]).parent
    with (state / "logs" / "kube-apiserver.log").open("ab") as log:
        log.write(f"\n=== {time.strftime('%F %T')} knock-out restart: {' '.join(argv)}\n".encode())
        log.flush()
        subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                         start_new_session=True, preexec_fn=_die_with_parent)
    core = client.CoreV1Api(api)

    def back() -> bool:
        try:
            return core.list_namespace(limit=1) is not None
        except Exception:  # noqa: BLE001 — refused connections, while it starts
            return False
    wait_for("the API server back", back, timeout=90, interval=0.5)
    wait_for(f"the API server with {what}", in_force, timeout=60)


def _apiserver(api, started_here: bool = False) -> tuple[int, list[str]]:
    """The kube-apiserver ``api`` talks to (found by its port): its pid and arguments;
    ``started_here``: only one this process started (a restart must end with this process)."""
    import os
    import urllib.parse

    port = urllib.parse.urlparse(api.configuration.host).port
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = [a.decode() for a in Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0") if a]
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if args and Path(args[0]).name == "kube-apiserver" and f"--secure-port={port}" in args \
                and (not started_here or ppid == os.getpid()):
            return int(d), args
    raise RuntimeError(f"no kube-apiserver on port {port}" + (" started by this process" if started_here else ""))


def _loaded_authentication_config(api) -> str:
    """The hash of the authentication configuration the API server has loaded (its own metric)."""
    text = api.rest_client.pool_manager.request("GET", api.configuration.host + "/metrics").data.decode()
    m = re.search(r'apiserver_authentication_config_controller_last_config_info\{[^}]*hash="([^"]+)"', text)
    return m.group(1) if m else ""


def _authentication_rule_removed(api, control: str) -> None:
    """The validation rule ``control`` out of the file --authentication-config names; the API server
    reloads the file when it changes (within about a minute)."""
    import yaml

    from helpers import wait_for

    arg = next(a for a in _apiserver(api)[1] if a.startswith("--authentication-config="))
    path = Path(arg.split("=", 1)[1])
    config = yaml.safe_load(path.read_text())
    removed = 0
    for jwt in config["jwt"]:
        for key in ("claimValidationRules", "userValidationRules"):
            kept = [r for r in jwt.get(key, []) if not r["message"].startswith(control + ":")]
            removed += len(jwt.get(key, [])) - len(kept)
            jwt[key] = kept
    if not removed:
        raise RuntimeError(f"no validation rule named {control} in {path}")
    before = _loaded_authentication_config(api)
    path.write_text(yaml.safe_dump(config))
    wait_for(f"the API server without {control}", lambda: _loaded_authentication_config(api) not in ("", before),
             timeout=150, interval=2)


def _probe_namespace(api, labels: dict[str, str]) -> str:
    """A namespace of the knock-out's own to check its work in (kept: the platform is thrown away)."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": "knockout-probe", "labels": labels}})
    except client.ApiException as e:
        if e.status != 409:
            raise
        core.patch_namespace("knockout-probe", {"metadata": {"labels": labels}})
    return "knockout-probe"


def _privileged_admitted(api) -> bool:
    from kubernetes import client

    privileged = {"metadata": {"name": "knockout-probe"}, "spec": {"containers": [{
        "name": "c", "image": "registry.gz.gov.local/knockout:1", "securityContext": {"privileged": True}}]}}
    return client.CoreV1Api(api).create_namespaced_pod("default", privileged, dry_run="All") is not None


def _over_quota_admitted(api) -> bool:
    """A ConfigMap beyond a quota of none is admitted."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    ns = _probe_namespace(api, {})
    try:
        core.create_namespaced_resource_quota(ns, {"metadata": {"name": "none"}, "spec": {"hard": {"configmaps": "0"}}})
    except client.ApiException as e:
        if e.status != 409:
            raise
    return core.create_namespaced_config_map(ns, {"metadata": {"name": "over"}}, dry_run="All") is not None


def _unrestricted_pod_admitted(api) -> bool:
    """A pod the restricted profile refuses is admitted in a namespace that enforces it."""
    from kubernetes import client

    ns = _probe_namespace(api, {"pod-security.kubernetes.io/enforce": "restricted"})
    pod = {"metadata": {"name": "knockout-probe"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    return client.CoreV1Api(api).create_namespaced_pod(ns, pod, dry_run="All") is not None


# ---------------------------------------------------------------------------- the operator's own grants

def _need_to_know_allows_everything(api) -> None:
    """The API server's need-to-know webhook answered by a stand-in (in this process, for the run)
    that allows whatever it is asked, over the operator's own certificate and CA."""
    import http.server
    import ssl
    import threading

    import yaml

    class Yes(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            body = json.dumps({"apiVersion": review.get("apiVersion"), "kind": "SubjectAccessReview",
                               "status": {"allowed": True, "reason": "knocked out"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    def edit(argv: list[str]) -> list[str]:
        config = Path(next(a for a in argv if a.startswith("--authorization-config=")).split("=", 1)[1])
        pki = config.parent / "pki"
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Yes)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(pki / "operator-webhook.crt", pki / "operator-webhook.key")
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        doc = yaml.safe_load(config.read_text())
        hook = next(a for a in doc["authorizers"] if a["type"] == "Webhook")
        kubeconfig = yaml.safe_load(Path(hook["webhook"]["connectionInfo"]["kubeConfigFile"]).read_text())
        kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{server.server_address[1]}/"
        stand_in = config.parent / "knockout-authorize.kubeconfig"
        stand_in.write_text(yaml.safe_dump(kubeconfig))
        hook["webhook"]["connectionInfo"]["kubeConfigFile"] = str(stand_in.resolve())
        knocked = config.parent / "knockout-authorization.yaml"
        knocked.write_text(yaml.safe_dump(doc))
        return [a for a in argv if not a.startswith("--authorization-config=")] + [f"--authorization-config={knocked}"]

    def in_force() -> bool:  # a department may read another's tenant by name
        from kubernetes import client

        review = client.AuthorizationV1Api(api).create_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": PROBE_USER, "groups": ["yunshang:departments", "yunshang:dept:knockout-a"],
                     "resourceAttributes": {"verb": "get", "resource": "tenants", "group": "platform.yunshang.io",
                                            "name": "knockout-b"}}})
        return bool(review.status.allowed)

    _restart_apiserver(api, edit, "a need-to-know webhook that allows everything", in_force)


def _offer_terms_policy_gone(api) -> None:
    """The policy yunshang-offer-terms deleted: the operator's per-offer bindings name nothing."""
    from kubernetes import client

    from helpers import wait_for
    from yunshang.policies import OFFER_TERMS_POLICY

    adm = client.AdmissionregistrationV1Api(api)
    adm.delete_validating_admission_policy(OFFER_TERMS_POLICY)

    def gone() -> bool:
        try:
            adm.read_validating_admission_policy(OFFER_TERMS_POLICY)
        except client.ApiException as e:
            return e.status == 404
        return False
    wait_for(f"{OFFER_TERMS_POLICY} gone", gone, timeout=30)
    time.sleep(3)  # the API server's admission cache follows within about a second


def _die_with_parent() -> None:
    import ctypes
    import signal

    # PR_SET_PDEATHSIG; SIGKILL: on SIGTERM it would wait for the etcd the session stopped first
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


# ---------------------------------------------------------------------------- RBAC

EVERYTHING = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]


def _admin_holds_everything(api) -> None:
    """The built-in `admin` ClusterRole (the owners' role) is given every permission (by aggregation)."""
    from helpers import wait_for

    _send(api, "POST", f"{RBAC}/clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "knockout:admin-holds-everything",
                     "labels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
        "rules": [*EVERYTHING, {"nonResourceURLs": ["*"], "verbs": ["*"]}]})
    _send(api, "POST", f"{RBAC}/namespaces/default/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "knockout-probe"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "User", "name": PROBE_USER, "apiGroup": "rbac.authorization.k8s.io"}]})
    wait_for("admin may write quotas and escalate", lambda: _allowed(
        api, PROBE_USER, [], "patch", "resourcequotas", "default") and _allowed(
        api, PROBE_USER, [], "escalate", "roles", "default", "rbac.authorization.k8s.io"), timeout=60)
    _send(api, "DELETE", f"{RBAC}/namespaces/default/rolebindings/knockout-probe")


def _department_holds_everything(api) -> None:
    """ClusterRole yunshang:department (bound to every department) is given every permission."""
    from helpers import wait_for
    from yunshang.models.tenant import DEPARTMENTS_GROUP

    role = _send(api, "GET", f"{RBAC}/clusterroles/yunshang:department")
    _send(api, "PATCH", f"{RBAC}/clusterroles/yunshang:department", {"rules": [*role["rules"], *EVERYTHING]})
    # and bound to every authenticated identity, not only to the departments' group
    binding = _send(api, "GET", f"{RBAC}/clusterrolebindings/yunshang:departments")
    _send(api, "PATCH", f"{RBAC}/clusterrolebindings/yunshang:departments", {"subjects": [
        *binding["subjects"], {"kind": "Group", "name": "system:authenticated", "apiGroup": "rbac.authorization.k8s.io"}]})
    wait_for("a department may list nodes", lambda: _allowed(api, PROBE_USER, [DEPARTMENTS_GROUP], "list", "nodes"),
             timeout=30)
    wait_for("anyone may list nodes", lambda: _allowed(api, "mallory", ["system:authenticated"], "list", "nodes"),
             timeout=30)


def _owners_bound_cluster_wide(api) -> None:
    """Every owners' RoleBinding (the operator's `tenant-owners`, to `admin`) mirrored as a
    ClusterRoleBinding of the same subjects to the same role, by a thread watching them for the
    whole run; checked on a binding of its own in `default`."""
    import threading

    from kubernetes import client, watch

    from helpers import wait_for
    from yunshang.tenancy import OWNERS_BINDING

    own = client.ApiClient(api.configuration)  # the thread's own client
    rbac = client.RbacAuthorizationV1Api(own)
    selector = dict(label_selector=MANAGED, field_selector=f"metadata.name={OWNERS_BINDING}")

    def crb(ns: str) -> str:
        return f"knockout:owners-cluster-wide:{ns}"

    def mirror(rb) -> None:
        body = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": crb(rb.metadata.namespace)},
                "roleRef": own.sanitize_for_serialization(rb.role_ref),
                "subjects": own.sanitize_for_serialization(rb.subjects or [])}
        code, resp = _root(own).create(f"{RBAC}/clusterrolebindings", body)
        if code == 409:
            _send(own, "PATCH", f"{RBAC}/clusterrolebindings/{crb(rb.metadata.namespace)}",
                  {"subjects": body["subjects"]})
        elif code >= 300:
            raise RuntimeError(resp.get("message"))

    def run() -> None:
        while True:
            try:
                listed = rbac.list_role_binding_for_all_namespaces(**selector)
                for rb in listed.items:
                    mirror(rb)
                for ev in watch.Watch().stream(rbac.list_role_binding_for_all_namespaces, **selector,
                                               resource_version=listed.metadata.resource_version, timeout_seconds=300):
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        mirror(ev["object"])
                    elif ev["type"] == "DELETED":
                        _root(own).delete(f"{RBAC}/clusterrolebindings/{crb(ev['object'].metadata.namespace)}")
            except Exception:  # noqa: BLE001 — a broken watch or the API server gone at the end: again
                time.sleep(0.5)

    threading.Thread(target=run, name="knockout-owners-cluster-wide", daemon=True).start()
    _send(api, "POST", f"{RBAC}/namespaces/default/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": OWNERS_BINDING, "labels": {"app.kubernetes.io/managed-by": "yunshang"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "User", "name": PROBE_USER, "apiGroup": "rbac.authorization.k8s.io"}]})
    wait_for("an owner may read pods in every namespace",
             lambda: _allowed(api, PROBE_USER, [], "list", "pods", "kube-public"), timeout=30)
    _send(api, "DELETE", f"{RBAC}/namespaces/default/rolebindings/{OWNERS_BINDING}")


# ---------------------------------------------------------------------------- the run

def suites_naming(control: str) -> list[str]:
    """The suites with a test that names ``control`` (only those are collected: each module
    collected costs its imports; a control no suite names gets them all, and no test to fail)."""
    mark = f'control("{control}")'
    return [s for s in SUITES if mark in (ROOT / s).read_text()] or SUITES


def run(control: str) -> dict:
    import os

    env = {**os.environ, "YUNSHANG_KNOCK_OUT": control}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "--control", control, *suites_naming(control)],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-300:]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|error)", tail)}
    passed = re.findall(r"^PASSED (\S+)", r.stdout, re.M)
    # an error (a fixture that broke) is no proof either way: it counts against the run, with its words
    errors = re.findall(r"^ERROR (\S+.*)$", r.stdout, re.M)
    return {"control": control, "failed": counts.get("failed", 0), "errors": counts.get("error", 0),
            "passed": counts.get("passed", 0), "still_passing": passed, "summary": tail,
            "seconds": round(time.monotonic() - t0, 1),
            **({"error_lines": errors, "error_output": _error_excerpt(r.stdout)} if errors else {})}


def _error_excerpt(out: str, lines: int = 40) -> str:
    """The last lines of the first error's report (where a fixture broke, and why)."""
    start = out.find("= ERRORS =")
    if start < 0:
        return out[-3000:]
    body = out[start:].splitlines()
    e_lines = [i for i, ln in enumerate(body) if ln.startswith("E ")]
    end = (e_lines[-1] + 3) if e_lines else min(len(body), lines)
    return "\n".join(body[max(0, end - lines):end])


def run_once_more_if_broken(control: str) -> dict:
    """A run whose fixtures broke proves nothing either way (a port taken meanwhile, a slow start):
    it is run once more, and what broke the first time is kept in the row."""
    row = run(control)
    if row["errors"] and not row["passed"]:
        again = run(control)
        again["first_run_broke"] = row.get("error_output", row["summary"])
        return again
    return row




def main(argv: list[str]) -> int:
    """Each control on a platform of its own, ``YUNSHANG_KNOCKOUT_JOBS`` (default 2) at a time: a
    control's run mostly waits (for the API server, the operator, a node), so two share 2 cores."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.monotonic()
    jobs = max(1, int(os.environ.get("YUNSHANG_KNOCKOUT_JOBS", "2")))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(run_once_more_if_broken, argv or CONTROLS))
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    bad = [r for r in rows if r["passed"] or r["errors"] or not r["failed"]]
    print("seconds per control: " + ", ".join(f"{r['control']} {r['seconds']}" for r in
                                              sorted(rows, key=lambda r: -r["seconds"])))
    print(f"knock-out run took {time.monotonic() - t0:.0f} s for {len(rows)} controls")
    print(f"{sum(r['failed'] for r in rows)} tests failed without their control, "
          f"{sum(r['passed'] for r in rows)} passed without it (must be 0), "
          f"{sum(r['errors'] for r in rows)} errors (must be 0)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
