"""The knock-out run: every security test names the control it proves (@pytest.mark.control);
this removes each control in turn from a fresh test platform and runs the tests that name it,
which must all fail there.  A test that still passes without its control proves something else.

    .venv/bin/python tests/knockout.py                 # every control, a table
    .venv/bin/python tests/knockout.py yunshang-tenant-signoff

Controls it can remove: an admission policy (its binding is deleted: `yunshang-…`), and
`tenant-crd-rules` (the Tenant CRD's rules on names and namespace suffixes).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTROLS = ["tenant-crd-rules", "yunshang-namespace-ownership", "yunshang-provider-namespace",
            "yunshang-tenant-signoff", "yunshang-tenant-controls"]
SUITES = ["tests/integration/test_boundary_attacks.py"]


def knock_out(api, control: str) -> None:
    """Remove ``control`` from the platform ``api`` talks to, and wait until the API server no
    longer enforces it."""
    from kubernetes import client

    if control == "tenant-crd-rules":
        from yunshang.models import crd as crds

        body = crds.tenant_crd()
        schema = body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        schema.pop("x-kubernetes-validations")
        schema["properties"]["spec"]["properties"]["namespaces"].pop("x-kubernetes-validations")
        from yunshang import platform

        platform.install(api, [body])  # the installer's own field manager: what it leaves out goes
    else:
        client.AdmissionregistrationV1Api(api).delete_validating_admission_policy_binding(control)
    time.sleep(3)  # the API server's admission and schema caches follow within about a second


def run(control: str) -> dict:
    import os

    env = {**os.environ, "YUNSHANG_KNOCK_OUT": control}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "--control", control, *SUITES],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-300:]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|error)", tail)}
    passed = re.findall(r"^PASSED (\S+)", r.stdout, re.M)
    return {"control": control, "failed": counts.get("failed", 0) + counts.get("error", 0),
            "passed": counts.get("passed", 0), "still_passing": passed, "summary": tail}


def main(argv: list[str]) -> int:
    rows = [run(c) for c in (argv or CONTROLS)]
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    bad = [r for r in rows if r["passed"] or not r["failed"]]
    print(f"{sum(r['failed'] for r in rows)} tests failed without their control, "
          f"{sum(r['passed'] for r in rows)} passed without it (must be 0)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
