"""The production path on this machine, for tests/integration/test_production_path.py and
bench/production.py: a control plane with one real node, the operator's image built here (and the
same image under a second tag, for an upgrade), Prometheus' and Alertmanager's images from Debian's
packages, all imported into the node, and `pulumi up` of the platform program in `deployment` mode
with in-cluster monitoring, as a province's stack would have it but for where images come from
(imported: imagePullPolicy Never) and where pods run (the real node: its label and taint).

The webhook Secrets are what a platform engineer (or cert-manager) provides; the API server's
audit webhook reaches the operator's Service through a reverse door into the node."""
from __future__ import annotations

import base64
import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from kubernetes import client, config

from helpers import make_project, pulumi, wait_for

from yunshang.dev import controlplane, images, node, operator_image, pki

NS = "yunshang-system"
WEBHOOK_SECRET = "yunshang-operator-webhook"
SELECTOR = "app.kubernetes.io/name=yunshang-operator"
LEASE = "yunshang-operator"


def stack_config(image: str, monitoring: dict[str, str], replicas: int = 2) -> dict:
    return {"yunshang:operator": {"mode": "deployment", "image": image, "replicas": replicas, "imagePullPolicy": "Never",
                                  "nodeSelector": {node.NODE_LABEL: "true"}, "tolerations": [node.TOLERATION],
                                  "webhookSecret": WEBHOOK_SECRET},
            "yunshang:monitoring": {"mode": "deploy", "scrapeInterval": "5s",
                                    "prometheusImage": monitoring["prometheus"],
                                    "alertmanagerImage": monitoring["alertmanager"]},
            "yunshang:alerting": {"ops": [], "timing": {"groupWait": "2s", "groupInterval": "10s", "repeatInterval": "4h"}},
            "yunshang:demo": False}


def webhook_secrets(cp, api) -> None:
    """The operator's serving certificate for its Service (and 127.0.0.1: the API server's audit
    webhook comes through the door), its token; for Alertmanager the CA and the token.  Made once
    each namespace exists (the program creates them)."""
    pki.issue_server(cp.pki, "operator-webhook-incluster", [f"{WEBHOOK_SECRET}.{NS}.svc", "127.0.0.1"])
    b64 = lambda path: base64.b64encode(path.read_bytes()).decode()  # noqa: E731
    token, ca = b64(cp.webhook_token_file), b64(cp.pki / "ca.crt")
    core = client.CoreV1Api(api)
    wanted = {NS: {"tls.crt": b64(cp.pki / "operator-webhook-incluster.crt"), "token": token, "ca.crt": ca,
                   "tls.key": b64(cp.pki / "operator-webhook-incluster.key")},
              "yunshang-monitoring": {"token": token, "ca.crt": ca}}
    for ns, data in wanted.items():
        wait_for(f"namespace {ns}", lambda ns=ns: ns in {n.metadata.name for n in core.list_namespace().items},
                 timeout=300, interval=0.5)
        if WEBHOOK_SECRET not in {x.metadata.name for x in core.list_namespaced_secret(ns).items}:
            core.create_namespaced_secret(ns, {"metadata": {"name": WEBHOOK_SECRET}, "data": data})


@dataclasses.dataclass
class Production:
    cp: Any
    api: Any
    root: Path
    state: Path
    built: operator_image.Built
    figures: dict[str, float]
    door: subprocess.Popen | None = None

    def up(self) -> subprocess.CompletedProcess:
        """`pulumi up` of the stack (the webhook Secrets made as their namespaces appear), then the
        API server's door to the operator's Service, at its address now (an `up` after a `destroy`
        makes the Service anew, with another ClusterIP: a door to the old one would lose the audit
        events, as a test running after the destroy test found)."""
        threading.Thread(target=webhook_secrets, args=(self.cp, self.api), daemon=True).start()
        r = pulumi(["up", "--yes", "--skip-preview", "--stack", "test"], self.root, self.state, check=False)
        if r.returncode == 0:
            self.open_door()
        return r

    def open_door(self) -> None:
        service = client.CoreV1Api(self.api).read_namespaced_service(WEBHOOK_SECRET, NS)
        self.close_door()
        rn = node.RealNode.load(self.cp.node_state)
        self.door = subprocess.Popen([sys.executable, "-m", "yunshang.dev.door", "--reverse", "--netns",
                                      str(node.netns_path(rn.index)), "--listen",
                                      f"127.0.0.1:{self.cp.ports['operator-webhook']}",
                                      "--to", f"{service.spec.cluster_ip}:8443"], start_new_session=True)

    def close_door(self) -> None:
        if self.door is not None:
            self.door.terminate()
            self.door.wait(10)
            self.door = None

    def close(self) -> None:
        self.close_door()
        self.api.close()


def deploy(work: Path, replicas: int = 2, progress: Callable[[str], None] = lambda m: None) -> Production:
    """Everything above, under ``work``; the caller closes it and takes the control plane down (cp.down())."""
    cp = controlplane.ControlPlane(state=work / "platform", real_node=True)
    cp.up()
    try:
        assert cp.real_node_name(), cp.node_note
        figures: dict[str, float] = {}
        started = time.monotonic()
        built = operator_image.build(work / "dist", tag="t1", progress=progress)
        mon = images.monitoring_images(work / "dist", progress=progress)
        second = operator_image.retag(built.path, f"{operator_image.REPOSITORY}:t2", work / "dist" / "operator-t2.oci.tar")
        rn = node.RealNode.load(cp.node_state)
        for ref, path in {built.ref: built.path, "t2": second, **mon}.items():
            rn.import_image(path, ref)
        figures["images_built_and_imported_s"] = time.monotonic() - started
        monitoring = {ref.split("/")[1].split(":")[0]: ref for ref in mon}
        api = config.new_client_from_config(str(cp.kubeconfig))
        root = make_project(work / "project" / "yunshang", cp.kubeconfig, stack_config(built.ref, monitoring, replicas))
        (work / "pulumi-state").mkdir()
        p = Production(cp, api, root, work / "pulumi-state", built, figures)
        pulumi(["stack", "init", "test"], root, p.state)
        started = time.monotonic()
        up = p.up()
        assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
        figures["pulumi_up_s"] = time.monotonic() - started
        return p
    except BaseException:
        cp.down()
        raise


def pods(api) -> list:
    return [p for p in client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=SELECTOR).items
            if not p.metadata.deletion_timestamp]


def holder(api) -> str:
    return client.CoordinationV1Api(api).read_namespaced_lease(LEASE, NS).spec.holder_identity or ""


def running(api, image: str) -> list:
    return [p for p in pods(api) if p.status.phase == "Running" and p.spec.containers[0].image == image
            and all(c.ready for c in p.status.container_statuses or [])]


def image_of_the_stack(api) -> str:
    dep = client.AppsV1Api(api).read_namespaced_deployment("yunshang-operator", NS)
    return dep.spec.template.spec.containers[0].image
