"""reviewDate: due within the warning window, lapsed past the date plus grace (properties)."""
from __future__ import annotations

import datetime as dt

from hypothesis import given, strategies as st

from yunshang.operator.tenants import steps
from yunshang import tenancy
from yunshang.models.tenant import TenantSpec

from factories import approval, request


@given(st.dates(), st.integers(-400, 400), st.integers(0, 90), st.integers(0, 60))
def test_due_and_lapsed(today, offset, warn, grace):
    review = today + dt.timedelta(days=offset)
    r = tenancy.review_state(review, today, warn, grace)
    assert r.days_left == offset
    assert r.due == (offset <= warn)
    assert r.lapsed == (offset < -grace)
    assert not r.lapsed or r.due  # nothing lapses without having been due


def test_no_review_date_never_due():
    assert tenancy.review_state(None, dt.date(2026, 1, 1), 30, 14) == tenancy.Review(None, False, False)


def test_a_lapsed_tenant_keeps_everything_but_may_run_no_pods():
    spec = TenantSpec.model_validate({**request(), "approval": approval(), "reviewDate": "2026-01-01"})
    normal = steps.desired_objects("t", "uid", spec)
    lapsed = steps.desired_objects("t", "uid", spec, lapsed=True)
    assert [tenancy.key_of(o) for o in normal] == [tenancy.key_of(o) for o in lapsed]
    quota = next(o for o in lapsed if o["kind"] == "ResourceQuota")
    assert quota["spec"]["hard"]["pods"] == "0"
    assert tenancy.phase_of(spec, provisioned=True, lapsed=True).value == "Suspended"
    assert tenancy.review_message(dt.date(2026, 1, 1), 14).startswith(tenancy.REVIEW_LAPSED_PREFIX)
