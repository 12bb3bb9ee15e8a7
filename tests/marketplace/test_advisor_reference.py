"""The placement advisor against a straightforward Python reference, on a generated catalog of a few
hundred offerings with some awkward listings mixed in: the same candidates, the same ranking with the
same totals and access points, and the same reason for every offering left out."""

from decimal import Decimal

import pytest
from django.core.management import call_command

from fabric import pricing
from fabric.latency import metro_rtt
from fabric.services import metros_load
from marketplace import advisor
from marketplace.choices import PriceUnit
from marketplace.models import AccessPoint, Offering

pytestmark = pytest.mark.django_db

QUESTIONS = [
    {
        "category": "GPU_CLOUD",
        "data_metro": "FR",
        "accelerator": "H100",
        "min_gpus": 8,
        "latency_budget_ms": 20,
        "allowed_zones": ["EU"],
    },
    {"category": "GPU_CLOUD", "data_metro": "SG", "max_monthly_cost": 20_000},
    {"category": "GPU_CLOUD", "data_metro": "DC", "accelerator": "a100", "bandwidth_mbps": 2_000, "quantity": 3},
    {"category": "MODEL_VENDOR", "data_metro": "NY"},
    {"category": "MODEL_VENDOR", "data_metro": "LD", "latency_budget_ms": 8, "allowed_zones": ["UK", "EU"]},
    {"category": "NETWORK_SERVICE", "data_metro": "AM", "bandwidth_mbps": 10_000, "max_monthly_cost": 9_000},
    {"category": "DATA_PLATFORM", "data_metro": "TY", "bandwidth_mbps": 50, "hours_per_month": 100},
]


@pytest.fixture
def catalog(owner):
    """400 generated offerings, then a few listings the generator never makes: not in USD, published
    without an access point, and access points offering only small or unusual bandwidths."""
    metros_load()
    call_command("generate_catalog", offerings=400, seed=11, stdout=open("/dev/null", "w"))  # noqa: SIM115
    published = Offering.objects.published().order_by("pk")
    for category in ("GPU_CLOUD", "MODEL_VENDOR", "NETWORK_SERVICE", "DATA_PLATFORM"):
        some = list(published.filter(category=category).values_list("pk", flat=True)[:12])
        Offering.objects.filter(pk__in=some[:2]).update(currency="EUR")
        AccessPoint.objects.filter(offering_id=some[2]).delete()
        AccessPoint.objects.filter(offering_id__in=some[3:6]).update(allowed_bandwidths_mbps=[50, 100])
        AccessPoint.objects.filter(offering_id__in=some[6:9]).update(allowed_bandwidths_mbps=[200, 2_000, 25_000])
        AccessPoint.objects.filter(offering_id__in=some[9:12]).update(allowed_bandwidths_mbps=[10_000, 400_000])
    assert Offering.objects.published().count() > 300


def _reference(req: advisor.Requirements):
    """Every published offering of the category, judged one by one in Python: (ranked, excluded), where
    ranked is [(offering, total, round trip to the chosen access point)] by total then name, and excluded {offering pk: code}."""
    ranked, excluded = [], {}
    for offering in Offering.objects.published().filter(category=req.category):
        points = list(AccessPoint.objects.filter(offering=offering).select_related("port__metro"))
        legs = [(p, metro_rtt(req.data_metro, p.port.metro).estimate_ms) for p in points]
        in_zone = [
            (p, ms) for p, ms in legs if not req.allowed_zones or p.port.metro.sovereignty_zone in req.allowed_zones
        ]
        near = [(p, ms) for p, ms in in_zone if req.latency_budget_ms is None or ms <= req.latency_budget_ms]
        options = []
        for point, ms in near:
            offered = [b for b in point.allowed_bandwidths_mbps if b >= req.bandwidth_mbps]
            if offered and min(offered) <= pricing.MAX_BANDWIDTH_MBPS:
                quote = pricing.connection_quote(
                    a_metro=req.data_metro, z_metro=point.port.metro, bandwidth_mbps=min(offered)
                )
                options.append((quote.monthly_total, ms, point))
        usage = req.quantity * req.hours_per_month if offering.price_unit == PriceUnit.HOUR else req.quantity
        total = offering.price_amount * usage + min(options, key=lambda o: o[:2])[0] if options else None
        if offering.currency != "USD":
            code = "currency"
        elif req.accelerator and offering.accelerator.lower() != req.accelerator.lower():
            code = "wrong_accelerator"
        elif req.min_gpus and (offering.gpu_count or 0) < req.min_gpus:
            code = "too_few_gpus"
        elif not points:
            code = "no_access_point"
        elif not in_zone:
            code = "zone_not_allowed"
        elif not near:
            code = "over_latency_budget"
        elif not options:
            code = "bandwidth_not_offered"
        elif req.max_monthly_cost is not None and total > req.max_monthly_cost:
            code = "over_budget"
        else:
            ranked.append((offering, total, min(options, key=lambda o: o[:2])[1]))
            continue
        excluded[offering.pk] = code
    ranked.sort(key=lambda r: (r[1], r[0].name, r[0].pk))
    return ranked, excluded


@pytest.mark.parametrize("question", QUESTIONS, ids=lambda q: f"{q['category']}-{q['data_metro']}")
def test_the_advice_matches_a_python_reference(catalog, question):
    req = advisor.requirements(**question)
    ranked, excluded = _reference(req)
    advice = advisor.advise(req, limit=advisor.MAX_LIMIT, excluded_limit=advisor.MAX_EXCLUDED_LIMIT)

    assert advice.candidates == len(ranked)
    expected_counts = {
        code: list(excluded.values()).count(code) for code in advisor.Exclusion if code in excluded.values()
    }
    assert advice.excluded_counts == expected_counts
    assert {e.offering.pk: e.code.value for e in advice.excluded} == excluded
    order = list(advisor.Exclusion)
    keys = [(order.index(e.code), e.offering.name, e.offering.pk) for e in advice.excluded]
    assert keys == sorted(keys)

    page = ranked[: advisor.MAX_LIMIT]
    assert {p.offering.pk for p in advice.placements} == {o.pk for o, _, _ in page}
    expected = {o.pk: (total.quantize(Decimal("0.01")), ms) for o, total, ms in page}
    for placement in advice.placements:
        total, ms = expected[placement.offering.pk]
        assert placement.total_monthly == total
        assert placement.leg.latency_ms == pytest.approx(ms)  # the cheapest access point, then the nearest
    totals = [p.total_monthly for p in advice.placements]
    assert totals == sorted(totals)

    for e in advice.excluded:
        if e.code == "over_budget":
            assert f"the budget is {req.max_monthly_cost:,.2f}" in e.reason
        if e.code == "bandwidth_not_offered":
            assert f"offers {advisor._mbps(req.bandwidth_mbps)} or more" in e.reason


def test_the_questions_exercise_every_reason(catalog):
    seen = set()
    for question in QUESTIONS:
        _, excluded = _reference(advisor.requirements(**question))
        seen |= set(excluded.values())
    assert seen == {code.value for code in advisor.Exclusion}
