"""The placement advisor on small hand-made listings, its page and its API: ranking, the cost lines,
currency and bandwidth exclusions, and clear errors for bad requirements."""

from decimal import Decimal

import pytest
from django.urls import reverse

from hub.errors import DomainError
from marketplace import advisor, services
from marketplace.choices import OfferingStatus
from marketplace.models import Offering

pytestmark = pytest.mark.django_db


# --- Hand-made listings --------------------------------------------------------------------
@pytest.fixture
def listings(gpu_cloud, make_offering):
    cheap, _ = make_offering(gpu_cloud, name="Cheap 8x H100", price_amount="10")
    dear, _ = make_offering(gpu_cloud, name="Dear 8x H100", price_amount="30")
    euro, _ = make_offering(gpu_cloud, name="Euro 8x H100", price_amount="9", currency="EUR")
    hidden = services.offering_create(
        membership=gpu_cloud.member,
        category="GPU_CLOUD",
        name="Nowhere 8x H100",
        price_amount="1",
        price_unit="HOUR",
        attributes={"accelerator": "H100", "gpu_count": 8, "gpu_memory_gb": 80},
    )
    draft, _ = make_offering(gpu_cloud, name="Draft 8x H100", published=False, price_amount="1")
    return {"cheap": cheap, "dear": dear, "euro": euro, "hidden": hidden, "draft": draft}


def test_ranking_currency_bandwidth_and_drafts(listings):
    advice = advisor.advise(advisor.requirements(category="GPU_CLOUD", data_metro="FR", quantity=2))
    assert [p.offering.name for p in advice.placements] == ["Cheap 8x H100", "Dear 8x H100"]
    cheap = advice.placements[0]
    assert cheap.offering_monthly == Decimal("14600.00")  # 10 an hour x 730 h x 2 instances
    assert cheap.offering_line == "10 USD per hour x 730 h x 2"
    assert (cheap.leg.metro.code, cheap.bandwidth_mbps, cheap.interconnect.monthly_total) == ("FR", 1000, 500)
    excluded = {e.offering.name: e.code for e in advice.excluded}
    assert excluded == {"Euro 8x H100": "currency"}  # "Nowhere" is a draft without access point: not listed
    # Publishing needs an access point, so "no access point" is rare; a retired one is not a candidate at all.
    assert "Draft 8x H100" not in excluded

    faster = advisor.advise(advisor.requirements(category="GPU_CLOUD", data_metro="FR", bandwidth_mbps=20_000))
    assert not faster.placements
    assert {e.code for e in faster.excluded} == {"currency", "bandwidth_not_offered"}
    reason = next(e.reason for e in faster.excluded if e.code == "bandwidth_not_offered")
    assert reason == "No usable access point offers 20 Gbps or more (at most 10 Gbps)."

    between = advisor.advise(advisor.requirements(category="GPU_CLOUD", data_metro="FR", bandwidth_mbps=2_000))
    assert between.placements[0].bandwidth_mbps == 10_000  # the smallest offered bandwidth that is enough


def test_no_access_point_is_a_reason(listings, gpu_cloud):
    Offering.objects.filter(pk=listings["hidden"].pk).update(status=OfferingStatus.PUBLISHED)  # data fixed by hand
    advice = advisor.advise(advisor.requirements(category="GPU_CLOUD", data_metro="FR"))
    excluded = {e.offering.name: e for e in advice.excluded}
    assert excluded["Nowhere 8x H100"].code == "no_access_point"
    assert "has not added an access point" in excluded["Nowhere 8x H100"].reason


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"data_metro": "XX"}, "data_metro", "There is no metro XX"),
        ({"allowed_zones": ["EU", "MARS"]}, "allowed_zones", "Unknown sovereignty zone MARS"),
        ({"category": "MODEL_VENDOR", "accelerator": "H100"}, "accelerator", "apply to GPU clouds only"),
        ({"category": "SPACESHIP"}, "category", "Category must be one of"),
        ({"latency_budget_ms": 0}, "latency_budget_ms", "above 0"),
        ({"bandwidth_mbps": 10_000_000}, "bandwidth_mbps", "Bandwidth is 1 to"),
        ({"max_monthly_cost": "-5"}, "max_monthly_cost", "cannot be below zero"),
    ],
)
def test_bad_requirements_are_field_errors(metros, options, field, message):
    with pytest.raises(DomainError) as error:
        advisor.requirements(**({"category": "GPU_CLOUD", "data_metro": "FR"} | options))
    assert error.value.field == field
    assert message in error.value.message


# --- The page and the API ------------------------------------------------------------------
def test_the_page_ranks_and_explains(listings, customer, logged_in):
    client = logged_in(customer.member)
    empty = client.get(reverse("marketplace:advisor"))
    assert empty.status_code == 200
    assert 'value="FR" selected' in empty.content.decode()
    response = client.get(
        reverse("marketplace:advisor"),
        {
            "category": "GPU_CLOUD",
            "data_metro": "FR",
            "accelerator": "H100",
            "bandwidth_mbps": "1000",
            "quantity": "1",
            "hours_per_month": "730",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert page.index("Cheap 8x H100") < page.index("Dear 8x H100")
    assert "7,800.00" in page  # 10 x 730 + 500 interconnect
    assert "not priced in USD" in page
    assert "Priced in EUR" in page


def test_the_page_shows_a_bad_requirement_next_to_its_field(customer, logged_in, metros):
    response = logged_in(customer.member).get(
        reverse("marketplace:advisor"),
        {
            "category": "DATA_PLATFORM",
            "data_metro": "FR",
            "accelerator": "H100",
            "bandwidth_mbps": "1000",
            "quantity": "1",
            "hours_per_month": "730",
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="accelerator-errors"' in page
    assert "Accelerator and GPU count apply to GPU clouds only." in page


def test_the_api_answers_the_same_advice(listings, customer, token_client):
    api = token_client(customer.member, scopes=["read", "write"])
    response = api.post(
        reverse("advisor"),
        {"category": "GPU_CLOUD", "data_metro": "fr", "accelerator": "H100", "min_gpus": 8, "allowed_zones": ["EU"]},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["candidates"] == 2
    assert body["data_metro"] == "FR"
    first = body["ranked"][0]
    assert (first["rank"], first["offering"]["name"], first["metro"]) == (1, "Cheap 8x H100", "FR")
    assert (first["total_monthly"], first["interconnect"]["monthly_total"]) == ("7800.00", "500.00")
    assert body["excluded"] == [
        {
            "offering": body["excluded"][0]["offering"],
            "code": "currency",
            "reason": "Priced in EUR; the advisor compares totals in USD.",
        }
    ]
    assert body["excluded_counts"] == {"currency": 1}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"category": "GPU_CLOUD"}, "data_metro"),
        ({"category": "GPU_CLOUD", "data_metro": "ZZ"}, "data_metro"),
        ({"category": "GPU", "data_metro": "FR"}, "category"),
        ({"category": "GPU_CLOUD", "data_metro": "FR", "min_gpus": "eight"}, "min_gpus"),
        ({"category": "GPU_CLOUD", "data_metro": "FR", "allowed_zones": "EU"}, "allowed_zones"),
        ({"category": "GPU_CLOUD", "data_metro": "FR", "allowed_zones": ["ATLANTIS"]}, "allowed_zones"),
        ({"category": "GPU_CLOUD", "data_metro": "FR", "quantity": "-1"}, "quantity"),
        ({"category": "GPU_CLOUD", "data_metro": "FR", "limit": 1000}, "limit"),
    ],
)
def test_the_api_refuses_bad_requirements_with_the_envelope(customer, token_client, metros, payload, field):
    response = token_client(customer.member).post(reverse("advisor"), payload, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in str(error), error
