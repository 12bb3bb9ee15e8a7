"""The placement advisor on the demo catalog (GPU clouds from public list prices, real metros): ranking by
total monthly cost, the figures behind it, a reason for every offering left out, and a constant number of
queries."""

from decimal import Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.test import override_settings

from fabric import pricing
from fabric.latency import metro_rtt
from fabric.models import Metro
from fabric.services import metros_load
from marketplace import advisor
from marketplace.choices import Category, OfferingStatus
from marketplace.demo import seed_marketplace_demo
from marketplace.models import Offering

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="module")
def _demo_once(django_db_setup, django_db_blocker):
    """The demo's GPU clouds, data, network and security listings (the model vendors are left out to keep
    it quick), seeded once for the module and rolled back at the end."""
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=FAST_HASHERS):
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            metros_load()
            with mock.patch("marketplace.demo.model_specs", return_value=[]):
                seed_marketplace_demo()
            yield
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture
def demo(_demo_once, db):
    return None


def _h100_near_frankfurt(**overrides):
    options = {
        "category": "GPU_CLOUD",
        "data_metro": "FR",
        "accelerator": "H100",
        "min_gpus": 8,
        "latency_budget_ms": 20,
        "allowed_zones": ["EU"],
    }
    return advisor.requirements(**(options | overrides))


# --- On the demo catalog -------------------------------------------------------------------
def test_h100_near_frankfurt_ranked_by_total_monthly_cost(demo, django_assert_max_num_queries):
    requirements = _h100_near_frankfurt()
    with django_assert_max_num_queries(8):  # however many offerings: metros, lists, rank, place, counts, explain (3)
        advice = advisor.advise(requirements)
    assert advice.placements, "the demo has 8x H100 offerings reachable in the EU near Frankfurt"
    fr = Metro.objects.get(code="FR")
    totals = [p.total_monthly for p in advice.placements]
    assert totals == sorted(totals)
    for p in advice.placements:
        assert (p.offering.accelerator, p.offering.status) == ("H100", OfferingStatus.PUBLISHED)
        assert p.offering.gpu_count >= 8
        assert p.leg.metro.sovereignty_zone == "EU"
        assert p.leg.latency_ms <= 20
        assert p.leg.latency_ms == pytest.approx(metro_rtt(fr, p.leg.metro).estimate_ms)
        quote = pricing.connection_quote(a_metro=fr, z_metro=p.leg.metro, bandwidth_mbps=1000)
        assert p.interconnect.monthly_total == quote.monthly_total
        assert p.offering_monthly == (p.offering.price_amount * 730).quantize(Decimal("0.01"))
        assert p.total_monthly == p.offering_monthly + quote.monthly_total
    # Every published GPU offering is either ranked or excluded with a reason.
    published = Offering.objects.published().filter(category=Category.GPU_CLOUD).count()
    assert advice.candidates + advice.excluded_total == published
    assert len(advice.excluded) == min(advice.excluded_total, 200)
    assert all(e.reason for e in advice.excluded)
    assert {"wrong_accelerator", "too_few_gpus"} <= set(advice.excluded_counts)


def test_exclusions_say_why_with_the_figures(demo):
    advice = advisor.advise(_h100_near_frankfurt(), excluded_limit=1000)
    reasons = {e.offering.name: (e.code, e.reason) for e in advice.excluded}
    code, reason = (
        reasons["8x A100 · gpu_8x_a100"]
        if "8x A100 · gpu_8x_a100" in reasons
        else next((c, r) for c, r in reasons.values() if c == "wrong_accelerator")
    )
    assert code == "wrong_accelerator"
    assert reason.endswith("not H100.")
    few = next(e for e in advice.excluded if e.code == "too_few_gpus")
    assert f"{few.offering.gpu_count} GPU" in few.reason
    assert "at least 8 needed" in few.reason
    for e in advice.excluded:
        if e.code == "over_latency_budget":
            assert "ms round trip from FR; the budget is 20 ms." in e.reason


def test_a_tight_latency_budget_moves_offerings_to_the_excluded_with_their_estimate(demo):
    loose = advisor.advise(_h100_near_frankfurt(latency_budget_ms=None))
    tight = advisor.advise(_h100_near_frankfurt(latency_budget_ms=2))
    assert all(p.leg.metro.code == "FR" for p in tight.placements)  # within 2 ms: the same metro only
    assert tight.candidates < loose.candidates
    late = [e for e in tight.excluded if e.code == "over_latency_budget"]
    assert late
    assert all("the budget is 2 ms" in e.reason for e in late)


def test_zones_restrict_where_the_access_point_may_be(demo):
    advice = advisor.advise(_h100_near_frankfurt(allowed_zones=["US"], latency_budget_ms=None))
    assert advice.placements
    assert {p.leg.metro.sovereignty_zone for p in advice.placements} == {"US"}
    outside = [e for e in advice.excluded if e.code == "zone_not_allowed"]
    assert outside
    assert all(e.reason.endswith("allowed: US.") for e in outside)


def test_a_monthly_budget_leaves_out_the_dearer_ones(demo):
    everything = advisor.advise(_h100_near_frankfurt(latency_budget_ms=None, allowed_zones=[]))
    cheapest = everything.placements[0].total_monthly
    advice = advisor.advise(_h100_near_frankfurt(latency_budget_ms=None, allowed_zones=[], max_monthly_cost=cheapest))
    assert [p.offering for p in advice.placements] == [everything.placements[0].offering]
    over = [e for e in advice.excluded if e.code == "over_budget"]
    assert len(over) == everything.candidates - 1
    assert all(f"the budget is {cheapest:,.2f}" in e.reason for e in over)


def test_other_categories_use_their_own_price_units(demo):
    advice = advisor.advise(
        advisor.requirements(category="NETWORK_SERVICE", data_metro="AM", quantity=10), excluded_limit=0
    )
    router = next(p for p in advice.placements if p.offering.name == "Demo Cloud Router")
    assert router.offering_monthly == Decimal("4500.00")  # 450 a month x 10
    assert router.leg.metro.code == "AM"  # reachable in Amsterdam itself: the cheapest interconnect
    ix = next(p for p in advice.placements if p.offering.name == "Demo Internet Exchange Access")
    assert ix.offering_monthly == Decimal("1200.00")  # 120 per Gbps-month x 10 Gbps
