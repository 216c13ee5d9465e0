"""Kubernetes quantities ("500m", "4", "8Gi") as a pydantic type with exact arithmetic."""
from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

MAX_QUANTITY = Decimal(2) ** 63 - 1  # what the API server's int64-based quantities can hold


def parse_quantity(value: Any) -> Decimal:
    """The Kubernetes client's own parser (imported on first use: the client package is slow to import)."""
    from kubernetes.utils.quantity import parse_quantity as parse

    return parse(value)


def to_decimal(value: Any) -> Decimal:
    return parse_quantity(value)


def _validate(value: Any) -> str:
    if isinstance(value, bool):
        raise ValueError("must be a quantity such as 4, 500m or 8Gi, not a boolean")
    if isinstance(value, (int, Decimal)):
        value = str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite quantity")
        value = format(Decimal(str(value)), "f")
    if not isinstance(value, str):
        raise ValueError("must be a quantity such as 4, 500m or 8Gi")
    value = value.strip()
    try:
        d = parse_quantity(value)
    except (ValueError, ArithmeticError):
        raise ValueError(f"{value!r} is not a quantity (examples: 4, 500m, 8Gi)") from None
    if not d.is_finite():
        raise ValueError(f"{value!r} is not a finite quantity")
    if d < 0:
        raise ValueError(f"{value!r} is negative")
    if d > MAX_QUANTITY:
        raise ValueError(f"{value!r} is larger than the API server can hold")
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_validate),
    PlainSerializer(lambda v: v, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
        }
    ),
]


def format_quantity(d: Decimal, binary: bool = False) -> str:
    """The shortest exact quantity string for ``d`` (binary suffixes for memory-like values)."""
    if d == d.to_integral_value():
        n = int(d)
        if binary:
            for suffix, factor in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
                if n and n % factor == 0:
                    return f"{n // factor}{suffix}"
        return str(n)
    milli = d * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    return format(d.normalize(), "f")
