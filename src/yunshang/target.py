"""Which cluster a command talks to: built once, in the CLI's root callback, from --kubeconfig
(or $KUBECONFIG) and --context, and handed to every command, the Pulumi program included."""
from __future__ import annotations

import dataclasses
from pathlib import Path

DEFAULT_KUBECONFIG = Path("~/.kube/config")
KUBECONFIG_ENV = "YUNSHANG_KUBECONFIG"  # how the Pulumi program (another process) is told the Target
CONTEXT_ENV = "YUNSHANG_CONTEXT"


@dataclasses.dataclass(frozen=True)
class Target:
    kubeconfig: str | None = None
    """A kubeconfig file; None: ~/.kube/config."""
    context: str | None = None
    """One of its contexts; None: its current one."""
    named: str | None = None
    """How the user gave the kubeconfig ("--kubeconfig", "$KUBECONFIG"; None: the default), for messages."""

    @property
    def path(self) -> Path:
        return Path(self.kubeconfig or DEFAULT_KUBECONFIG).expanduser()

    @property
    def chosen(self) -> bool:
        """Named on the command line (--kubeconfig or --context): it then overrides a stack's own setting."""
        return self.named == "--kubeconfig" or self.context is not None

    def pulumi_env(self) -> dict[str, str]:
        """What the Pulumi program reads at its start (yunshang.infra.config): only what was chosen."""
        if not self.chosen:
            return {}
        env = {CONTEXT_ENV: self.context} if self.context is not None else {}
        if self.named == "--kubeconfig":
            env[KUBECONFIG_ENV] = str(self.path)
        return env
