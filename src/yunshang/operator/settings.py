"""The operator's settings, read once at start-up (environment variables, set by `yunshang dev
up`, the tests, or the Deployment that `pulumi up` ships)."""
from __future__ import annotations

import dataclasses
import os

from ..signoff import DEFAULT_ROLES
from ..tenancy import DEFAULT_HOST_SUFFIXES


@dataclasses.dataclass(frozen=True)
class Settings:
    resync_seconds: float = 60.0
    """Every tenant is reconciled once per resync (low priority), whatever happened."""
    workers: int = 16
    """Tenants reconciled at the same time (more than `concurrency`: their API calls keep it busy)."""
    concurrency: int = 8
    """API requests in flight at the same time (the benchmark's floor uses the same)."""
    review_warn_days: int = 30
    review_grace_days: int = 14
    elastic_seconds: float = 60.0
    """How often the elastic quota looks at every elastic tenant."""
    elastic_window: str = "30m"
    """How long utilisation must have stayed high (low) before a grow (shrink), a Prometheus duration."""
    elastic_resolution: str = "1m"
    """How often in that window it is sampled."""
    elastic_cooldown_seconds: float = 900.0
    """No change this soon after the previous one."""
    elastic_min_samples: int = 5
    """Fewer samples in the window: no decision."""
    peering: str = ""
    priority: int = 0
    peering_lifetime: int = 60
    signoff_roles: tuple[str, ...] = DEFAULT_ROLES
    """Reviewer roles that must all approve (stack config yunshang:signoff.roles)."""
    tenant_days: float = 3.0
    """Days each role has to decide on a tenant's request."""
    agreement_days: float = 5.0
    """Days a provider has to decide on an agreement."""
    host_suffixes: tuple[str, ...] = tuple(DEFAULT_HOST_SUFFIXES)
    """The platform's hostname suffixes (stack config yunshang:defaultHostSuffixes): under them a tenant
    may serve only its own name's hosts."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        e = os.environ if env is None else env
        return cls(
            resync_seconds=float(e.get("YUNSHANG_RESYNC_SECONDS", "60")),
            workers=int(e.get("YUNSHANG_WORKERS", "16")),
            concurrency=int(e.get("YUNSHANG_CONCURRENCY", "8")),
            review_warn_days=int(e.get("YUNSHANG_REVIEW_WARN_DAYS", "30")),
            review_grace_days=int(e.get("YUNSHANG_REVIEW_GRACE_DAYS", "14")),
            elastic_seconds=float(e.get("YUNSHANG_ELASTIC_SECONDS", "60")),
            elastic_window=e.get("YUNSHANG_ELASTIC_WINDOW", "30m"),
            elastic_resolution=e.get("YUNSHANG_ELASTIC_RESOLUTION", "1m"),
            elastic_cooldown_seconds=float(e.get("YUNSHANG_ELASTIC_COOLDOWN", "900")),
            elastic_min_samples=int(e.get("YUNSHANG_ELASTIC_MIN_SAMPLES", "5")),
            peering=e.get("YUNSHANG_PEERING", ""),
            priority=int(e.get("YUNSHANG_PRIORITY", "0") or 0),
            peering_lifetime=int(e.get("YUNSHANG_PEERING_LIFETIME", "60")),
            signoff_roles=tuple(r.strip() for r in e.get("YUNSHANG_SIGNOFF_ROLES", "platform,security,finance").split(",")
                                if r.strip()),
            tenant_days=float(e.get("YUNSHANG_SIGNOFF_TENANT_DAYS", "3")),
            agreement_days=float(e.get("YUNSHANG_SIGNOFF_AGREEMENT_DAYS", "5")),
            host_suffixes=tuple(h.strip() for h in e.get("YUNSHANG_HOST_SUFFIXES", ",".join(DEFAULT_HOST_SUFFIXES))
                                .split(",") if h.strip()),
        )
