"""The department catalog: tenants/*.yaml, reviewed in git, validated by the tenant model."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .client import ClientError, load_request_file
from .models.tenant import TenantRequest


class CatalogError(ValueError):
    """A catalog file is invalid; the message starts with the file name and names the field."""


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    request: TenantRequest
    path: Path


def load(directory: Path) -> list[Entry]:
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    entries: list[Entry] = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            name, req = load_request_file(path)
        except ClientError as e:
            raise CatalogError(str(e)) from None
        if name in seen:
            raise CatalogError(f"{path}: tenant {name!r} is also defined in {seen[name]}")
        seen[name] = path
        entries.append(Entry(name, req, path))
    names = {e.name for e in entries}
    for e in entries:
        if e.request.parent and e.request.parent not in names:
            raise CatalogError(f"{e.path}: spec.parent {e.request.parent!r} is not in the catalog")
    return entries
