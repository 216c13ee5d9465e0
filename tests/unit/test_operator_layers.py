"""The operator's folder shows its layers, and the imports keep to them: the runtime knows no
feature, a feature knows the runtime and the pure modules but no other feature, nothing imports in
a circle.  `python tests/unit/test_operator_layers.py` prints the graph."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = "yunshang.operator"
# a feature may use these features' modules (the webhooks are quarantine's HTTP side)
ALLOWED = {"yunshang.operator.quarantine": {"yunshang.operator.webhooks"}}


def module_of(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """The yunshang modules ``path`` imports (at any depth of the file, functions included)."""
    me = module_of(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            for alias in node.names:
                full = f"{root}.{alias.name}"
                out.add(full if (SRC / (full.replace(".", "/") + ".py")).exists()
                        or (SRC / full.replace(".", "/")).is_dir() else root)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.startswith("yunshang") and m != me}


def graph() -> dict[str, set[str]]:
    return {module_of(p): imports(p) for p in sorted((SRC / "yunshang").rglob("*.py"))}


def unit(module: str) -> str:
    """runtime, a feature (tenants is one, its steps included), or outside the operator."""
    if not module.startswith(PKG + "."):
        return "outside" if module != PKG else "operator"
    part = module[len(PKG) + 1:].split(".")[0]
    return "runtime" if part == "runtime" else f"{PKG}.{part}"


def test_the_runtime_imports_no_feature():
    bad = {m: sorted(d for d in deps if unit(d) not in ("runtime", "outside"))
           for m, deps in graph().items() if unit(m) == "runtime"}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_a_feature_imports_the_runtime_and_pure_modules_but_no_other_feature():
    g = graph()
    bad = {}
    for m, deps in g.items():
        u = unit(m)
        if u in ("runtime", "outside", "operator") or m == f"{PKG}.__main__":
            continue
        other = {d for d in deps if unit(d) not in ("runtime", "outside", u) and d not in ALLOWED.get(m, set())}
        if other:
            bad[m] = sorted(other)
    assert not bad, bad


def test_nothing_outside_the_operator_imports_it():
    """The API calls are yunshang.kube's (the CLI, the installer and the Pulumi program use them too)."""
    g = graph()
    users = {m: sorted(d for d in deps if d.startswith(PKG)) for m, deps in g.items() if unit(m) == "outside"}
    assert not {m: d for m, d in users.items() if d}, users


def test_one_way_to_call_the_api_server():
    """No CustomObjectsApi, typed *V1Api or DynamicClient anywhere in the package: every call goes
    through yunshang.kube (the dev tooling that starts the processes excepted)."""
    offenders = sorted(str(p.relative_to(SRC)) for p in (SRC / "yunshang").rglob("*.py")
                       if "/dev/" not in str(p) and any(w in p.read_text() for w in (
                           "CustomObjectsApi", "CoreV1Api", "DynamicClient", "AppsV1Api", "RbacAuthorizationV1Api",
                           "AuthorizationV1Api", "AuthenticationV1Api")))
    assert offenders == [], offenders


def test_no_circle():
    g = graph()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in g.get(m, ()):
            if state.get(d) == 1:
                raise AssertionError(" -> ".join(path[path.index(d):] + [d]) if d in path else d)
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in g:
        if m not in state:
            visit(m, [m])


def test_only_the_settings_read_the_environment():
    readers = sorted(str(p.relative_to(SRC)) for p in (SRC / "yunshang" / "operator").rglob("*.py")
                     if "os.environ" in p.read_text() or "getenv" in p.read_text())
    assert readers == ["yunshang/operator/runtime/settings.py"], readers


if __name__ == "__main__":
    for m, deps in graph().items():
        if m.startswith(PKG):
            mine = sorted(d.removeprefix("yunshang.") for d in deps)
            print(f"{m.removeprefix('yunshang.')}: {', '.join(mine)}")

