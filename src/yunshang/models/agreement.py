"""A sharing agreement: a consumer department applies for one Service (and port) of a provider
department; the provider's owners approve or reject; while approved and unexpired exactly that
path is open.  "The consumer applies, the provider reviews and approves."
"""
from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Literal

from pydantic import Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .tenant import SUFFIX, Approval, Classification, DnsLabel, Model, TenantName


class ServiceRef(Model):
    namespace: DnsLabel
    """The provider namespace the Service lives in (one of the provider tenant's)."""
    name: DnsLabel
    """The Service's name."""
    port: int = Field(ge=1, le=65535)
    """The Service port the consumer may reach."""
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    """Protocol of that port."""


# an offer or agreement name: DNS labels joined by dots, e.g. gz-bigdata.population
DOTTED = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DnsLabelOrDotted = Annotated[str, Field(min_length=1, max_length=253, pattern=DOTTED)]
# an offer's name is also the value of the label platform.yunshang.io/offer on its agreements: 63 at most
OfferName = Annotated[str, Field(min_length=1, max_length=63, pattern=DOTTED)]


def _invalid(model: str, loc: tuple, value: object, message: str) -> ValidationError:
    """A model-level check's error at the field it is about (so that it names that field and value)."""
    return ValidationError.from_exception_data(model, [InitErrorDetails(
        type=PydanticCustomError("value_error", message), loc=loc, input=value)])


class Rating(Model):
    """好差评: the consumer's verdict on the service it received, given once when the agreement ended."""

    score: int = Field(ge=1, le=5)
    """1 (very poor) to 5 (very good)."""
    comment: str = Field(default="", max_length=1024)
    """What was good or bad."""
    by: str = Field(min_length=1, max_length=253)
    """Who rated (the consumer's owners)."""
    at: dt.datetime | None = None
    """When."""


class Revocation(Model):
    by: str = Field(min_length=1, max_length=253)
    """Who revoked it (either side's owners, or the platform bureau)."""
    reason: str = Field(default="", max_length=1024)
    """Why."""
    at: dt.datetime | None = None
    """When."""


OFFER_LABEL = "platform.yunshang.io/offer"  # on an agreement made from an offer: the offer's name
OFFER_MAX_DAYS = 366
AGREEMENT_MAX_DAYS = 366  # the longest an agreement runs from its request (an offer may grant less)


class ExistingAgreements(str, enum.Enum):
    """What withdrawing an offer does to the agreements already made from it."""

    RunToEnd = "RunToEnd"
    Revoke = "Revoke"


class Withdrawal(Model):
    by: str = Field(min_length=1, max_length=253)
    """Who withdrew the offer (the provider's owners)."""
    reason: str = Field(default="", max_length=1024)
    """Why."""
    at: dt.datetime | None = None
    """When."""
    existing: ExistingAgreements = ExistingAgreements.RunToEnd
    """RunToEnd: agreements made from it run until they expire; Revoke: they end now."""


class OfferSpec(Model):
    """A service a provider department offers to share (目录: the catalogue consumers choose from)."""

    provider: TenantName
    """The tenant that owns the Service."""
    service: ServiceRef
    """The Service port offered."""
    title: str = Field(min_length=1, max_length=128)
    """A short title, e.g. 人口基础信息查询."""
    description: str = Field(default="", max_length=2048)
    """What it is and how to use it."""
    data: list[str] = Field(default_factory=list, max_length=32)
    """The data it carries, e.g. [姓名, 身份证号, 户籍地址]."""
    classification: Classification
    """The classification of that data: only tenants cleared for it may be granted access."""
    max_days: int = Field(ge=1, le=OFFER_MAX_DAYS)
    """The longest term an agreement may run, in days from its request."""
    approval_required: bool = True
    """Whether the provider's owners decide on each consumer (false: the offer is the consent)."""
    withdrawn: Withdrawal | None = None
    """Set by the provider to end new requests (and, if it says so, the agreements made from it)."""

    @model_validator(mode="after")
    def _service_of_provider(self) -> "OfferSpec":
        if problem := _namespace_not_providers(self.provider, self.service.namespace):
            raise _invalid("OfferSpec", ("service", "namespace"), self.service.namespace, problem)
        return self


def provider_namespace_problem(provider: str, namespace: str) -> str | None:
    """Why ``namespace`` cannot be one of ``provider``'s: it must be <provider>-<suffix> with a suffix
    of letters and digits (x-b-main is tenant x-b's namespace, not tenant x's)."""
    problem = _namespace_not_providers(provider, namespace)
    return f"service.namespace {namespace!r} {problem}" if problem else None


def _namespace_not_providers(provider: str, namespace: str) -> str | None:
    suffix = namespace.removeprefix(provider + "-")
    if namespace.startswith(provider + "-") and SUFFIX.fullmatch(suffix):
        return None
    return (f"is not one of provider {provider}'s namespaces "
            f"({provider}-<suffix>, the suffix letters and digits only)")


def expiry_problem(expires: dt.datetime, now: dt.datetime, max_days: int = AGREEMENT_MAX_DAYS) -> str | None:
    """Why an agreement requested at ``now`` cannot end at ``expires``: it must be later, and at most
    ``max_days`` after."""
    until = expires if expires.tzinfo else expires.replace(tzinfo=dt.timezone.utc)
    latest = now + dt.timedelta(days=max_days)
    if until <= now:
        return (f"is not in the future (now {now.strftime('%Y-%m-%dT%H:%M:%SZ')}): choose a date up to "
                f"{max_days} days from now, before {latest.date().isoformat()}")
    if until > latest:
        return (f"is {(until - now).days} days from now: an agreement runs at most {max_days} days, "
                f"so choose a date before {latest.date().isoformat()}")
    return None


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
    offer: DnsLabelOrDotted | None = None
    """The catalogue offer applied for, if any: its terms bound the agreement (the API server checks)."""

    @model_validator(mode="after")
    def _sides(self, info: ValidationInfo) -> "AgreementRequest":
        if self.consumer == self.provider:
            raise _invalid("AgreementRequest", ("provider",), self.provider,
                           "is the consumer too: consumer and provider must be different tenants")
        if problem := _namespace_not_providers(self.provider, self.service.namespace):
            raise _invalid("AgreementRequest", ("service", "namespace"), self.service.namespace, problem)
        # a new request (validated with context {"now": ...}) must end in the future and within the
        # limit; a stored agreement (no context) may well have expired
        now = (info.context or {}).get("now") if info is not None else None
        if now is not None and (problem := expiry_problem(self.expires, now)):
            raise _invalid("AgreementRequest", ("expires",), self.expires, problem)
        return self


class AgreementSpec(AgreementRequest):
    decision: Approval | None = None
    """The provider's decision (only the provider's owners may set it)."""
    revoked: Revocation | None = None
    """Set to end the agreement before it expires."""
    rating: Rating | None = None
    """The consumer's rating of the service once the agreement has ended (好差评), given once."""


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
