"""The Pulumi program: config -> catalog -> components -> outputs.

`infra/__main__.py` calls `main()` (for `pulumi up` with a Python language host);
`yunshang platform up` runs the same `main` inline through the Automation API.
"""
from __future__ import annotations

from pathlib import Path

import pulumi

from .. import catalog
from .components import (
    CustomResourceDefinitions,
    DemoWorkloads,
    DepartmentCatalog,
    Governance,
    Monitoring,
    Operator,
    PlatformNamespaces,
    PriorityClasses,
)
from .config import ConfigError, StackConfig, from_pulumi

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def build(cfg: StackConfig, root: Path | None = None) -> dict[str, object]:
    """Declare every component; return what the stack exports.  ``root`` is the project
    directory (the one holding Pulumi.yaml); the catalog path is relative to it."""
    catalog_dir = (root or PROJECT_ROOT) / cfg.catalog
    if not catalog_dir.is_dir():
        raise pulumi.RunError(f"config yunshang:catalog: {catalog_dir} is not a directory")
    try:
        entries = catalog.load(catalog_dir)
    except catalog.CatalogError as e:
        raise pulumi.RunError(str(e)) from None

    namespaces = PlatformNamespaces("namespaces", cfg)
    crds = CustomResourceDefinitions("crds", cfg)
    governance = Governance("governance", cfg, pulumi.ResourceOptions(depends_on=[crds]))
    PriorityClasses("priority-classes", cfg)
    Monitoring("monitoring", cfg, pulumi.ResourceOptions(depends_on=[namespaces]))
    Operator("operator", cfg, pulumi.ResourceOptions(depends_on=[namespaces, crds, governance]))
    departments = DepartmentCatalog("catalog", entries, cfg, pulumi.ResourceOptions(depends_on=[crds, governance]))
    if cfg.demo:
        # the namespace comes from the operator once gz-bigdata is Ready: the apply waits for it
        DemoWorkloads("demo", cfg, pulumi.ResourceOptions(depends_on=[departments]))
    return {
        "environment": cfg.environment,
        "kubeconfig": cfg.kubeconfig_path() or "(default)",
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
    for key, value in build(cfg, root).items():
        pulumi.export(key, value)
