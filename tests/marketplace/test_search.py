"""Catalog search through the API (the catalog page runs the same search): ranking, facets that respect
the other filters, sorting by latency, and bad input answered clearly."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketplace import search, services
from marketplace.choices import Category, PriceUnit
from tests.fabric.factories import PortFactory
from tests.marketplace.conftest import GPU_ATTRIBUTES

pytestmark = pytest.mark.django_db


def listing(provider, ports, *, name, price, unit=PriceUnit.HOUR, category=Category.GPU_CLOUD, **fields):
    """A published offering of ``provider`` reachable at ``ports``."""
    offering = services.offering_create(
        membership=provider.member, category=category, name=name, price_amount=price, price_unit=unit, **fields
    )
    for port in ports:
        services.access_point_create(
            membership=provider.member, offering=offering, port=port, allowed_bandwidths_mbps=[1000, 10000]
        )
    return services.offering_publish(membership=provider.member, offering=offering)


@pytest.fixture
def catalog(gpu_cloud, rival, metros):
    """Four published offerings: Lambda H100 (FR), Lambda A100 (FR + DC), RunPod H100 (Singapore), a model (DC)."""
    sg = PortFactory(organization=rival.org, metro=metros["SG"], name="runpod-sg", speed_mbps=10_000)
    return {
        "h100": listing(
            gpu_cloud,
            [gpu_cloud.fra],
            name="8x H100 SXM",
            price="23.92",
            compliance=["SOC 2"],
            attributes=GPU_ATTRIBUTES,
        ),
        "a100": listing(
            gpu_cloud,
            [gpu_cloud.fra, gpu_cloud.dc],
            name="8x A100 80GB",
            price="14.32",
            attributes={"accelerator": "A100", "gpu_count": 8, "gpu_memory_gb": 40},
            tags=["training"],
        ),
        "far": listing(
            rival,
            [sg],
            name="1x H100 PCIe",
            price="2.39",
            attributes={"accelerator": "H100", "gpu_count": 1, "gpu_memory_gb": 80},
            summary="Budget single GPU",
        ),
        "model": listing(
            gpu_cloud,
            [gpu_cloud.dc],
            name="llama-70b-instruct",
            price="0.88",
            unit=PriceUnit.MTOK_INPUT,
            category=Category.MODEL_VENDOR,
            attributes={
                "context_window": 128000,
                "input_price_per_mtok": 0.88,
                "output_price_per_mtok": 0.88,
                "modality": "text",
            },
        ),
    }


@pytest.fixture
def buyer(customer, token_client):
    return token_client(customer.member)


def _names(response):
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


def _counts(facet):
    return {row["value"]: row["count"] for row in facet}


def test_text_search_matches_name_provider_and_tags(catalog, buyer):
    assert sorted(_names(buyer.get("/api/v1/offerings/", {"q": "H100"}))) == ["1x H100 PCIe", "8x H100 SXM"]
    assert _names(buyer.get("/api/v1/offerings/", {"q": "runpod"})) == ["1x H100 PCIe"]
    assert _names(buyer.get("/api/v1/offerings/", {"q": "training"})) == ["8x A100 80GB"]
    assert _names(buyer.get("/api/v1/offerings/", {"q": "no such thing anywhere"})) == []


def test_facets_count_with_every_filter_but_their_own(catalog, buyer):
    facets = buyer.get("/api/v1/offerings/facets/", {"region": "EMEA", "category": "GPU_CLOUD"}).json()
    assert facets["total"] == 2  # the H100 and the A100 in Frankfurt
    # The region facet ignores the region filter: APAC still offers one GPU cloud offering.
    assert _counts(facets["region"]) == {"EMEA": 2, "AMER": 1, "APAC": 1}
    # The category facet ignores the category filter but keeps the region: the model is in DC only.
    assert _counts(facets["category"]) == {"GPU_CLOUD": 2}
    assert _counts(facets["accelerator"]) == {"H100": 1, "A100": 1}
    assert _counts(facets["gpu_memory"]) == {"24-47": 1, "80-127": 1}
    assert _counts(facets["compliance"]) == {"SOC 2": 1}
    assert _counts(facets["metro"]) == {"FR": 2, "DC": 1}
    assert _counts(facets["provider"]) == {"lambda": 2}
    assert _counts(facets["price"]) == {"hour-20-50": 1, "hour-5-20": 1}

    narrowed = buyer.get("/api/v1/offerings/facets/", {"accelerator": "h100"}).json()
    assert narrowed["total"] == 2
    assert _counts(narrowed["accelerator"]) == {"H100": 2, "A100": 1}  # own filter ignored
    assert _counts(narrowed["region"]) == {"EMEA": 1, "APAC": 1}


def test_filters_combine_across_facets_and_widen_within_one(catalog, buyer):
    both = _names(buyer.get("/api/v1/offerings/", {"region": ["EMEA", "APAC"], "accelerator": "H100", "sort": "name"}))
    assert both == ["1x H100 PCIe", "8x H100 SXM"]
    assert _names(buyer.get("/api/v1/offerings/", {"metro": "DC"})) == ["8x A100 80GB", "llama-70b-instruct"]
    assert _names(buyer.get("/api/v1/offerings/", {"price": "hour-0-1,hour-1-5"})) == ["1x H100 PCIe"]


def test_sort_by_latency_from_my_metro(catalog, buyer):
    names = _names(buyer.get("/api/v1/offerings/", {"q": "H100", "sort": "latency", "from_metro": "SG"}))
    assert names == ["1x H100 PCIe", "8x H100 SXM"]
    names = _names(buyer.get("/api/v1/offerings/", {"q": "H100", "sort": "latency", "from_metro": "fr"}))
    assert names == ["8x H100 SXM", "1x H100 PCIe"]


def test_sort_by_price_and_name(catalog, buyer):
    assert _names(buyer.get("/api/v1/offerings/", {"category": "GPU_CLOUD", "sort": "price"})) == [
        "1x H100 PCIe",
        "8x A100 80GB",
        "8x H100 SXM",
    ]
    assert _names(buyer.get("/api/v1/offerings/", {"category": "GPU_CLOUD", "sort": "-price"}))[0] == "8x H100 SXM"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"region": "MARS"}, "region"),
        ({"category": "GPU_CLOUD,TOASTERS"}, "category"),
        ({"metro": "ZZ"}, "metro"),
        ({"provider": "nobody"}, "provider"),
        ({"price": "hour-1-2"}, "price"),
        ({"gpu_memory": "huge"}, "gpu_memory"),
        ({"sort": "latency"}, "from_metro"),
        ({"sort": "popularity"}, "sort"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_unknown_values_are_a_field_error_in_the_api(catalog, buyer, params, field):
    for url in ("/api/v1/offerings/", "/api/v1/offerings/facets/"):
        response = buyer.get(url, params)
        assert response.status_code == 400, (url, response.content)
        assert field in response.json()["error"]["fields"], response.json()


@pytest.mark.parametrize(
    "q", ["H100 & | ! :* <-> (", "'\"", "-H100", "\\", "%_%", "🙂 GPU", "OR AND NOT", '"8x H100"', "x" * 200]
)
def test_odd_characters_never_break_the_search(catalog, buyer, q):
    response = buyer.get("/api/v1/offerings/", {"q": q})
    assert response.status_code == 200, response.content
    assert buyer.get("/api/v1/offerings/facets/", {"q": q}).status_code == 200


def test_a_nul_character_is_a_field_error(catalog, buyer):
    response = buyer.get("/api/v1/offerings/", {"q": "\x00H100"})
    assert response.status_code == 400
    assert "q" in response.json()["error"]["fields"]


def test_a_quoted_phrase_matches(catalog, buyer):
    assert _names(buyer.get("/api/v1/offerings/", {"q": '"8x H100"'})) == ["8x H100 SXM"]


def test_a_huge_offset_is_an_empty_page(catalog, buyer):
    response = buyer.get("/api/v1/offerings/", {"offset": "9" * 30})
    assert response.status_code == 200
    assert response.json()["results"] == []
    assert response.json()["count"] == 4


def test_a_listing_is_found_as_soon_as_it_is_published(gpu_cloud, buyer, make_offering):
    assert _names(buyer.get("/api/v1/offerings/", {"q": "Blackwell"})) == []
    make_offering(gpu_cloud, name="8x B200 Blackwell")
    assert _names(buyer.get("/api/v1/offerings/", {"q": "blackwell"})) == ["8x B200 Blackwell"]


def test_the_page_needs_a_constant_number_of_queries(gpu_cloud, customer, make_offering):
    for i in range(3):
        make_offering(gpu_cloud, name=f"GPU {i}")
    with CaptureQueriesContext(connection) as few:
        search.catalog_page(customer.org, {"q": "GPU", "sort": "latency", "region": "EMEA", "provider": "lambda"})
    for i in range(3, 30):
        make_offering(gpu_cloud, name=f"GPU {i}", compliance=[f"cert {i}"])
    with CaptureQueriesContext(connection) as many:
        page = search.catalog_page(
            customer.org, {"q": "GPU", "sort": "latency", "region": "EMEA", "provider": "lambda"}
        )
    assert page.total == 30
    assert len(few) == len(many) <= 10, [q["sql"][:120] for q in many.captured_queries]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ranked full-text search is PostgreSQL's")
def test_ranking_puts_name_matches_first_and_follows_a_provider_rename(catalog, buyer, gpu_cloud):
    names = _names(buyer.get("/api/v1/offerings/", {"q": "budget"}))
    assert names == ["1x H100 PCIe"]  # summary only
    services.provider_profile_upsert(membership=gpu_cloud.member, name="Lambda Labs Renamed")
    assert sorted(_names(buyer.get("/api/v1/offerings/", {"q": "renamed"}))) == [
        "8x A100 80GB",
        "8x H100 SXM",
        "llama-70b-instruct",
    ]
