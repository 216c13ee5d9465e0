"""The operator's settings: built once at start-up (`Settings.load`) from the command line and the
environment (set by `yunshang dev up`, the tests, or the Deployment `pulumi up` ships, from the
stack's config), then passed down.  No other module of the operator reads the environment."""
from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import uuid
from typing import Mapping, Sequence

from ...models.audit import DEFAULT_ANCHOR
from ...signoff import DEFAULT_ROLES
from ...tenancy import DEFAULT_HOST_SUFFIXES

SYSTEM_NAMESPACE = "yunshang-system"  # where the leader election's Lease lives (yunshang.policies says the same)


@dataclasses.dataclass(frozen=True)
class Settings:
    # ---- where the API server is (empty: in-cluster, else $KUBECONFIG / ~/.kube/config)
    kubeconfig: str = ""
    context: str = ""
    # ---- the tenants' loop
    resync_seconds: float = 60.0
    """Every tenant is reconciled once per resync (low priority), whatever happened."""
    workers: int = 16
    """Tenants reconciled at the same time (more than `concurrency`: their API calls keep it busy)."""
    concurrency: int = 8
    """API requests in flight at the same time (the benchmark's floor uses the same)."""
    review_warn_days: int = 30
    review_grace_days: int = 14
    signoff_roles: tuple[str, ...] = DEFAULT_ROLES
    """Reviewer roles that must all approve (stack config yunshang:signoff.roles)."""
    tenant_days: float = 3.0
    """Days each role has to decide on a tenant's request."""
    agreement_days: float = 5.0
    """Days a provider has to decide on an agreement."""
    host_suffixes: tuple[str, ...] = tuple(DEFAULT_HOST_SUFFIXES)
    """The platform's hostname suffixes (stack config yunshang:defaultHostSuffixes): under them a tenant
    may serve only its own name's hosts."""
    # ---- elastic quota
    prometheus_url: str = ""
    """Where the elastic quota (and the anchor's witness) asks; empty: no elastic quota."""
    elastic_seconds: float = 60.0
    """How often the elastic quota looks at every elastic tenant."""
    elastic_window: str = "30m"
    """How long utilisation must have stayed high (low) before a grow (shrink), a Prometheus duration."""
    elastic_resolution: str = "1m"
    """How often in that window it is sampled."""
    elastic_cooldown_seconds: float = 900.0
    """No change this soon after the previous one."""
    elastic_min_samples: int = 5
    """Fewer samples in the window: no decision."""
    # ---- sharing, views
    share_check_seconds: float = 2.0
    """How often active (and refused) agreements are looked at again: expiry closes a path this soon."""
    view_seconds: float = 300.0
    """The departments' views are brought in line at the latest this often (and on every change)."""
    # ---- the audit chain's anchor
    audit_anchor: str = DEFAULT_ANCHOR
    """namespace/name of the ConfigMap the chain's head is published in."""
    audit_anchor_seconds: float = 30.0
    # ---- alert routing (Alertmanager's configuration from the tenants' contacts)
    alerting_base: str = ""
    """The platform's part (a JSON file); empty: the operator does not route alerts."""
    alertmanager_config: str = ""
    """A file Alertmanager reads (the local platform) ..."""
    alertmanager_url: str = ""
    """... and where it is told to read it again."""
    alertmanager_secret: str = ""
    """namespace/name of the Secret a cluster's Alertmanager mounts."""
    alerting_seconds: float = 5.0
    # ---- the webhooks (Alertmanager's alerts, the API server's audit events)
    webhook_port: int = 0
    webhook_address: str = "127.0.0.1"
    webhook_token: str = ""
    webhook_tls_cert: str = ""
    webhook_tls_key: str = ""
    webhook_service: str = ""
    """namespace/name of a Service without a selector for the webhooks: the leader points its
    EndpointSlice at itself (``pod_ip``), so Alertmanager and the API server reach the replica that may act."""
    pod_ip: str = ""
    """This replica's address (the Deployment gives status.podIP)."""
    # ---- serving
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
    health_port: int = 0
    """/healthz on this port (0: none)."""
    health_address: str = "127.0.0.1"
    verbose: bool = False
    # ---- leader election (a coordination.k8s.io/v1 Lease; client-go's meaning and defaults)
    lease: str = ""
    """The Lease's name; empty: standalone, this replica always acts."""
    lease_namespace: str = SYSTEM_NAMESPACE
    identity: str = ""
    """This replica's name in the Lease (default: host name and a random suffix)."""
    lease_duration: float = 15.0
    """How long a standby waits, after it last saw the lease renewed, before it takes it."""
    renew_deadline: float = 10.0
    """How long the leader keeps trying to renew before it stops acting (less than lease_duration)."""
    retry_period: float = 2.0
    """How often every replica tries to acquire or renew."""

    def __post_init__(self) -> None:
        if self.lease and not (0 < self.retry_period < self.renew_deadline < self.lease_duration):
            raise ValueError("leader election needs retry period < renew deadline < lease duration "
                             f"(got {self.retry_period} < {self.renew_deadline} < {self.lease_duration})")
        if self.webhook_port and not self.webhook_token:
            raise ValueError("a webhook port is set but no token: set YUNSHANG_WEBHOOK_TOKEN or _TOKEN_FILE")
        if self.webhook_service and not (self.webhook_port and self.pod_ip and "/" in self.webhook_service):
            raise ValueError("a webhook Service (YUNSHANG_WEBHOOK_SERVICE, namespace/name) needs the webhook port and "
                             "this replica's address (POD_IP)")
        ns, _, name = self.audit_anchor.partition("/")
        if not ns or not name:
            raise ValueError(f"audit anchor {self.audit_anchor!r} is not namespace/name (YUNSHANG_AUDIT_ANCHOR)")

    @classmethod
    def load(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> "Settings":
        """The command line over the environment over the defaults; argv/env default to the process's.
        Each field not on the command line is read from its variable (`env_name`), typed like its
        default (a tuple: comma-separated); an empty variable counts as unset."""
        e = dict(os.environ if env is None else env)
        args = vars(parser(e).parse_args(argv))
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in args:
                values[f.name] = args[f.name]
                continue
            raw = e.get(env_name(f.name), "")
            if not raw:
                continue
            default = f.default
            if isinstance(default, tuple):
                values[f.name] = tuple(x.strip() for x in raw.split(",") if x.strip())
            else:
                values[f.name] = type(default)(raw)
        if e.get("YUNSHANG_WEBHOOK_TOKEN_FILE"):
            with open(e["YUNSHANG_WEBHOOK_TOKEN_FILE"]) as fh:
                values["webhook_token"] = fh.read().strip()
        values["identity"] = values["identity"] or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        return cls(**values)


# the variables whose names are not YUNSHANG_ and the field's name in capitals
ENV_NAMES = {"tenant_days": "YUNSHANG_SIGNOFF_TENANT_DAYS", "agreement_days": "YUNSHANG_SIGNOFF_AGREEMENT_DAYS",
             "elastic_cooldown_seconds": "YUNSHANG_ELASTIC_COOLDOWN", "pod_ip": "POD_IP"}


def env_name(field: str) -> str:
    return ENV_NAMES.get(field, f"YUNSHANG_{field.upper()}")


def parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """`python -m yunshang.operator`'s command line; each flag's default from its environment variable."""
    e = os.environ if env is None else env
    p = argparse.ArgumentParser(
        prog="python -m yunshang.operator",
        description="Run the yunshang operator. Without --lease it acts alone; with --lease NAME, replicas "
                    "elect a leader through the coordination.k8s.io/v1 Lease NAME and only the leader writes "
                    "(the others keep warm caches and take over when its lease runs out).")
    p.add_argument("--kubeconfig", default=e.get("KUBECONFIG", "").split(os.pathsep)[0],
                   help="kubeconfig file (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)")
    p.add_argument("--context", default="", help="the kubeconfig's context (default: its current one)")
    p.add_argument("--lease", default=e.get("YUNSHANG_LEASE", ""),
                   help="the leader election's Lease ($YUNSHANG_LEASE); empty: standalone")
    p.add_argument("--lease-namespace", default=e.get("YUNSHANG_LEASE_NAMESPACE", SYSTEM_NAMESPACE))
    p.add_argument("--identity", default=e.get("YUNSHANG_IDENTITY", e.get("POD_NAME", "")),
                   help="this replica's name in the Lease (default: $POD_NAME, else host name and a random suffix)")
    p.add_argument("--lease-duration", type=float, default=float(e.get("YUNSHANG_LEASE_DURATION", 15)),
                   help="seconds a standby waits after the last renewal it saw (default 15)")
    p.add_argument("--renew-deadline", type=float, default=float(e.get("YUNSHANG_RENEW_DEADLINE", 10)),
                   help="seconds the leader tries to renew before it stops acting (default 10)")
    p.add_argument("--retry-period", type=float, default=float(e.get("YUNSHANG_RETRY_PERIOD", 2)),
                   help="seconds between tries to acquire or renew (default 2)")
    p.add_argument("--metrics-port", type=int, default=int(e.get("YUNSHANG_METRICS_PORT", "0") or 0),
                   help="serve Prometheus metrics on this port (0: off)")
    p.add_argument("--metrics-address", default=e.get("YUNSHANG_METRICS_ADDRESS", "127.0.0.1"))
    p.add_argument("--health-port", type=int, default=int(e.get("YUNSHANG_HEALTH_PORT", "0") or 0),
                   help="serve /healthz on this port (0: off)")
    p.add_argument("--health-address", default=e.get("YUNSHANG_HEALTH_ADDRESS", "127.0.0.1"))
    p.add_argument("--verbose", action="store_true")
    return p
