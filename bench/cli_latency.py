"""How long the CLI takes to answer: the median wall time of several runs of each command.

    .venv/bin/python bench/cli_latency.py [--runs 7]

Measures `yunshang --help`, `yunshang tenant list` (against the current kubeconfig, e.g. the local
platform of `yunshang dev up`) and, if kubectl is on PATH, `kubectl get tenants` for comparison.
Prints one JSON line. Not a test: numbers, not pass/fail.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

YUNSHANG = str(Path(sys.executable).parent / "yunshang")


def median_seconds(cmd: list[str], runs: int) -> float | str:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            return f"failed: {(r.stderr or r.stdout).strip().splitlines()[-1][:200]}"
    return round(statistics.median(times), 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    out = {
        "yunshang_help_s": median_seconds([YUNSHANG, "--help"], args.runs),
        "yunshang_tenant_list_s": median_seconds([YUNSHANG, "tenant", "list"], args.runs),
        "kubectl_get_tenants_s": (median_seconds(["kubectl", "get", "tenants"], args.runs)
                                  if shutil.which("kubectl") else "kubectl not installed"),
        "runs": args.runs,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
