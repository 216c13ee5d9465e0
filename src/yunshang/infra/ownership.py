"""Which stack owns what: the program marks every object it declares with its stack
(label platform.yunshang.io/stack), and before a preview or an up it looks at what already
exists.  An object marked by another stack, or one that exists unmarked (made by the operator, a
department, `kubectl`, or a stack from before the marks), is never adopted unless the person
running it names it (`--take-over KIND/NAME`, or `unmarked`, `all`): so a second stack — a typo'd
one above all — cannot take over the platform, and a stack's `destroy` only ever deletes what it
created (or was told to take)."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from ..platform import STACK_LABEL  # noqa: E402  (the installer marks the local stack's objects too)
TAKE_OVER_ENV = "YUNSHANG_TAKE_OVER"  # comma-separated KIND/NAME (KIND/NAMESPACE/NAME), `unmarked` or `all`


def key(obj: Mapping[str, Any]) -> str:
    md = obj["metadata"]
    return "/".join(p for p in (obj["kind"], md.get("namespace", ""), md["name"]) if p)


def mark(obj: dict[str, Any], stack: str) -> dict[str, Any]:
    """The manifest with its stack's mark (a copy)."""
    from ..platform import _marked

    return _marked(obj, stack)


def parse_take_over(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def problems(manifests: Iterable[Mapping[str, Any]], live_of: Callable[[Mapping[str, Any]], Mapping | None],
             stack: str, take_over: frozenset[str] = frozenset()) -> list[str]:
    """One line per object this stack would adopt without having been told to."""
    out = []
    for m in manifests:
        live = live_of(m)
        if live is None:
            continue
        owner = ((live.get("metadata") or {}).get("labels") or {}).get(STACK_LABEL)
        k = key(m)
        if owner == stack or "all" in take_over or k in take_over or (owner is None and "unmarked" in take_over):
            continue
        if owner is not None:
            out.append(f"{k} is managed by stack {owner!r}, not {stack!r}: nothing was changed; run the stack "
                       f"{owner!r} instead, or take it over on purpose with --take-over {k}")
        else:
            out.append(f"{k} exists and no stack manages it (made by the operator, a department or by hand, or by a "
                       f"stack from before stacks marked their objects): nothing was changed; take it over on "
                       f"purpose with --take-over {k} (or --take-over unmarked for all such)")
    return out


def live_getter(kubeconfig: str, context: str) -> Callable[[Mapping[str, Any]], Mapping | None]:
    """GET each object as it is in the cluster (None when it does not exist, or its kind is not served yet)."""
    from .. import kube

    api = kube.connect(kubeconfig, context)
    # (a kind not served yet, a CRD not installed: 404 too, so None)
    return lambda m: kube.get(api, m["kind"], m["metadata"]["name"], m["metadata"].get("namespace"))
