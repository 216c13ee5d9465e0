"""A sharing agreement: a consumer department applies for one Service (and port) of a provider
department; the provider's owners approve or reject; while approved and unexpired exactly that
path is open.  "The consumer applies, the provider reviews and approves."
"""
from __future__ import annotations

import datetime as dt
import enum
from typing import Literal

from pydantic import Field, model_validator

from .tenant import Approval, DnsLabel, Model, TenantName


class ServiceRef(Model):
    namespace: DnsLabel
    """The provider namespace the Service lives in (one of the provider tenant's)."""
    name: DnsLabel
    """The Service's name."""
    port: int = Field(ge=1, le=65535)
    """The Service port the consumer may reach."""
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    """Protocol of that port."""


class Revocation(Model):
    by: str = Field(min_length=1, max_length=253)
    """Who revoked it (either side's owners, or the platform bureau)."""
    reason: str = Field(default="", max_length=1024)
    """Why."""
    at: dt.datetime | None = None
    """When."""


class AgreementRequest(Model):
    """What the consumer applies for."""

    consumer: TenantName
    """The tenant that wants access."""
    provider: TenantName
    """The tenant that owns the Service."""
    service: ServiceRef
    """Exactly what is shared: one Service port."""
    purpose: str = Field(min_length=1, max_length=512)
    """Why the consumer needs it (content and scope of the agreement)."""
    expires: dt.datetime
    """When access ends by itself."""

    @model_validator(mode="after")
    def _sides(self) -> "AgreementRequest":
        if self.consumer == self.provider:
            raise ValueError("consumer and provider must be different tenants")
        if not self.service.namespace.startswith(self.provider + "-"):
            raise ValueError(f"service.namespace must be one of {self.provider}'s namespaces ({self.provider}-...)")
        return self


class AgreementSpec(AgreementRequest):
    decision: Approval | None = None
    """The provider's decision (only the provider's owners may set it)."""
    revoked: Revocation | None = None
    """Set to end the agreement before it expires."""


class AgreementPhase(str, enum.Enum):
    Pending = "Pending"
    Active = "Active"
    Rejected = "Rejected"
    Refused = "Refused"  # the platform forbids it (classification) or the Service is missing
    Expired = "Expired"
    Revoked = "Revoked"


class AgreementStatus(Model):
    phase: AgreementPhase = AgreementPhase.Pending
    """Where the agreement is."""
    message: str = ""
    """Why."""
    policies: list[str] = Field(default_factory=list)
    """The NetworkPolicies (namespace/name) that open the path."""
    deadline: dt.datetime | None = None
    """While pending: when the provider's decision is due (stack config yunshang:signoff.agreementDays)."""
    observed_generation: int = 0
