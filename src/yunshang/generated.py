"""Files generated from code (CRDs, policies, dashboards): write them, or check they are current."""
from __future__ import annotations

from pathlib import Path


def write_or_check(files: dict[Path, str], argv: list[str], command: str) -> int:
    """With --check: 1 if any file differs from what the code generates; else write them all."""
    drifted = []
    for path, text in files.items():
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                drifted.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if drifted:
        print(f"generated files differ from the code: {', '.join(drifted)}; run `{command}`")
        return 1
    return 0
