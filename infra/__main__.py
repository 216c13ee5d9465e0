"""Pulumi entry point (main: infra/ in Pulumi.yaml): everything lives in yunshang.infra."""
from yunshang.infra.program import main

main()
