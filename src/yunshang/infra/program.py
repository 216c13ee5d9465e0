"""The Pulumi program: config -> catalog -> one Kubernetes provider -> components -> outputs.

`infra/__main__.py` calls `main()`: `pulumi up` (through the language host) and
`yunshang platform up` (the Automation API on the same project) run the same program.
"""
from __future__ import annotations

from pathlib import Path

import pulumi

from .. import catalog, platform
from . import ownership
from .components import (
    CustomResourceDefinitions,
    DemoWorkloads,
    DepartmentCatalog,
    Governance,
    Monitoring,
    Operator,
    PlatformNamespaces,
    PriorityClasses,
    catalog_manifests,
    demo_manifests,
    governance_manifests,
    monitoring_manifests,
    operator_manifests,
    priority_classes,
)
from .config import PROJECT_ROOT, ConfigError, StackConfig, from_pulumi
from .kube import provider



def manifests(cfg: StackConfig, entries) -> list[dict]:
    """Every object the components below declare (the same functions), for the ownership check."""
    out = [*platform.system_namespaces(), *platform.crds(), *governance_manifests(cfg), *priority_classes(),
           *monitoring_manifests(cfg), *operator_manifests(cfg), *catalog_manifests(entries, cfg)]
    return out + (demo_manifests() if cfg.demo else [])


def check_ownership(cfg: StackConfig, entries, kubeconfig: str, take_over: frozenset[str],
                    live_of=None) -> None:
    """Stop before anything is declared if this stack would adopt an object it was not told to take."""
    if live_of is None:
        try:
            live_of = ownership.live_getter(kubeconfig, cfg.context)
        except Exception as e:  # noqa: BLE001  (no cluster to look at: the provider says why, later)
            pulumi.log.warn(f"could not look at the cluster before adopting anything: {str(e).splitlines()[0][:200]}")
            return
    found = ownership.problems(manifests(cfg, entries), live_of, cfg.stack, take_over)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise pulumi.RunError(f"stack {cfg.stack}: {found[0]}{more}")


def build(cfg: StackConfig, root: Path | None = None, take_over: frozenset[str] = frozenset()) -> dict[str, object]:
    """Declare every component; return what the stack exports.  ``root`` is the project
    directory (the one holding Pulumi.yaml); the catalog path is relative to it."""
    catalog_dir = (root or PROJECT_ROOT) / cfg.catalog
    if not catalog_dir.is_dir():
        raise pulumi.RunError(f"config yunshang:catalog: {catalog_dir} is not a directory")
    try:
        entries = catalog.load(catalog_dir)
    except catalog.CatalogError as e:
        raise pulumi.RunError(str(e)) from None

    kubeconfig = cfg.kubeconfig_path()
    if kubeconfig and not Path(kubeconfig).is_file():
        raise pulumi.RunError(f"config yunshang:kubeconfig: {kubeconfig} does not exist; start the local platform "
                              "(`yunshang dev up`) or point the setting (or YUNSHANG_KUBECONFIG) at your cluster's")
    check_ownership(cfg, entries, kubeconfig, take_over)
    k8s = provider("kubernetes", kubeconfig, cfg.context, cfg.cluster)

    def opts(*after: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(providers=[k8s], depends_on=list(after))

    namespaces = PlatformNamespaces("namespaces", cfg, opts())
    crds = CustomResourceDefinitions("crds", cfg, opts())
    governance = Governance("governance", cfg, opts(crds, namespaces))
    PriorityClasses("priority-classes", cfg, opts())
    Monitoring("monitoring", cfg, opts(namespaces))
    operator = Operator("operator", cfg, opts(namespaces, crds, governance))
    departments = DepartmentCatalog("catalog", entries, cfg, opts(crds, governance, operator))
    if cfg.demo:
        # the namespace comes from the operator: the catalog's tenants are created once Ready
        DemoWorkloads("demo", cfg, opts(departments))
    return {
        "environment": cfg.environment,
        "kubeconfig": kubeconfig or "(default)",
        "context": cfg.context or "(its current one)",
        "cluster": cfg.cluster,
        "namespaces": namespaces.names,
        "tenants": departments.tenants,
        "operator": cfg.operator.mode.value,
        "dashboards": (
            "Prometheus console /consoles/yunshang.html of the local platform (`yunshang dev status`)"
            if cfg.environment == "local" else
            "ConfigMap yunshang-monitoring/yunshang-dashboards (Grafana sidecar label grafana_dashboard=1)"
        ),
        "rules": "ConfigMap yunshang-monitoring/yunshang-prometheus-rules",
    }


def main(root: Path | None = None) -> None:
    try:
        cfg = from_pulumi()
    except ConfigError as e:
        raise pulumi.RunError(str(e)) from None
    import os

    cfg = cfg.model_copy(update={"stack": pulumi.get_stack()})
    take_over = ownership.parse_take_over(os.environ.get(ownership.TAKE_OVER_ENV, ""))
    for key, value in build(cfg, root, take_over).items():
        pulumi.export(key, value)
