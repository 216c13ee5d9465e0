"""Pulumi entry point (main: infra/ in Pulumi.yaml): everything lives in yunshang.infra."""
from pathlib import Path

from yunshang.infra.program import main

main(Path(__file__).resolve().parent.parent)  # the project: Pulumi.yaml, tenants/, stacks/
