"""The catalog list's fast path: the same JSON as the documented serializer, and a cached count that
follows every write (publish, retire, edit, access points, providers) and each organization's view."""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer

from hub.api.renderers import OrjsonRenderer
from marketplace import services
from marketplace.api.serializers import OfferingSerializer
from marketplace.choices import Category, OfferingStatus, PriceUnit
from marketplace.models import Offering

pytestmark = pytest.mark.django_db

LIST = "/api/v1/offerings/"


def _serialized(offerings) -> list[dict]:
    """What the documented serializer writes for these offerings, through DRF's own renderer."""
    return json.loads(JSONRenderer().render(OfferingSerializer(offerings, many=True).data))


@pytest.mark.parametrize(
    "params",
    [{}, {"sort": "price"}, {"sort": "-price"}, {"q": "H100"}, {"sort": "latency", "from_metro": "DC"}],
)
def test_the_list_is_the_documented_serializer_output(params, gpu_cloud, rival, customer, make_offering, token_client):
    make_offering(gpu_cloud, name="8x H100", summary="Fast", tags=["training", "ünïcode"])
    make_offering(
        rival,
        name="1x A100 spot",
        price_amount="1.5",
        attributes={"accelerator": "A100", "gpu_count": 1, "gpu_memory_gb": 40.5},
    )
    make_offering(gpu_cloud, published=False, name="Draft H100 cluster")  # no published_at
    services.offering_create(
        membership=rival.member,
        category=Category.MODEL_VENDOR,
        name="Llama inference",
        price_amount="0.2",
        price_unit=PriceUnit.MTOK_INPUT,
        compliance=["SOC 2"],
        attributes={
            "context_window": 128000,
            "input_price_per_mtok": 0.2,
            "output_price_per_mtok": 0.6,
            "modality": "text",
        },
    )
    for member in (gpu_cloud.member, customer.member):
        response = token_client(member).get(LIST, params)
        assert response.status_code == 200, response.content
        body = response.json()
        ids = [row["id"] for row in body["results"]]
        assert ids, params
        offerings = Offering.objects.select_related("provider").in_bulk(
            [uuid.UUID(i) for i in ids], field_name="public_id"
        )
        assert body["results"] == _serialized([offerings[uuid.UUID(i)] for i in ids])
        assert body["count"] == len(ids)
    assert any(row["published_at"] is None for row in token_client(gpu_cloud.member).get(LIST).json()["results"])


def test_the_page_and_count_follow_limit_and_offset(gpu_cloud, customer, make_offering, token_client):
    for n in range(5):
        make_offering(gpu_cloud, name=f"Offering {n}")
    client = token_client(customer.member)
    body = client.get(LIST, {"limit": 2, "offset": 2}).json()
    assert body["count"] == 5
    assert [row["name"] for row in body["results"]] == ["Offering 2", "Offering 3"]
    assert body["next"].endswith("limit=2&offset=4")


def test_the_count_follows_publish_retire_and_edits(gpu_cloud, rival, customer, make_offering, token_client):
    published, _ = make_offering(gpu_cloud, name="Published")
    draft, _ = make_offering(gpu_cloud, published=False, name="Draft")
    buyer, seller, other = token_client(customer.member), token_client(gpu_cloud.member), token_client(rival.member)

    def seen(client, **params):
        body = client.get(LIST, params).json()
        assert body["count"] == len(body["results"])
        return sorted(row["name"] for row in body["results"])

    assert seen(buyer) == ["Published"]
    assert seen(seller) == ["Draft", "Published"]  # a provider also sees its own drafts
    assert seen(other) == ["Published"]
    assert seen(buyer, category="GPU_CLOUD") == ["Published"]

    services.offering_publish(membership=gpu_cloud.member, offering=draft)
    assert seen(buyer) == seen(other) == seen(seller) == ["Draft", "Published"]
    assert seen(buyer, category="GPU_CLOUD") == ["Draft", "Published"]

    services.offering_retire(membership=gpu_cloud.member, offering=published)
    assert seen(buyer) == ["Draft"]
    assert seen(seller) == ["Draft", "Published"]  # retired, still the provider's own

    services.offering_update(membership=gpu_cloud.member, offering=draft, name="Renamed")
    assert seen(buyer) == ["Renamed"]
    assert seen(buyer, q="Renamed") == ["Renamed"]
    assert seen(buyer, q="Draft") == []


def test_the_count_follows_access_points_and_providers(gpu_cloud, customer, make_offering, token_client):
    offering, _ = make_offering(gpu_cloud)
    buyer = token_client(customer.member)
    assert buyer.get(LIST, {"metro": "DC"}).json()["count"] == 0
    services.access_point_create(
        membership=gpu_cloud.member, offering=offering, port=gpu_cloud.dc, allowed_bandwidths_mbps=[1000]
    )
    assert buyer.get(LIST, {"metro": "DC"}).json()["count"] == 1
    assert buyer.get(LIST, {"region": "AMER"}).json()["count"] == 1

    services.provider_profile_upsert(membership=gpu_cloud.member, name="Lambda Labs", slug="lambda")
    assert buyer.get(LIST, {"q": "Labs"}).json()["count"] == 1
    assert buyer.get(LIST).json()["results"][0]["provider"]["name"] == "Lambda Labs"


def test_the_count_is_counted_once_per_catalog_version(gpu_cloud, customer, make_offering, token_client):
    make_offering(gpu_cloud, name="One")
    make_offering(gpu_cloud, name="Two")
    buyer = token_client(customer.member)

    def counts_run(**params):
        with CaptureQueriesContext(connection) as captured:
            body = buyer.get(LIST, params).json()
        return body["count"], sum("COUNT(" in q["sql"].upper() for q in captured.captured_queries)

    assert counts_run() == (2, 1)
    assert counts_run() == (2, 0)
    assert counts_run(limit=1, offset=1) == (2, 0)  # the page does not change the question
    assert counts_run(q="One") == (1, 1)
    Offering.objects.filter(name="Two").update(status=OfferingStatus.RETIRED)  # no signal, no save()
    assert counts_run() == (1, 1)
    assert counts_run(q="One") == (1, 1)


def test_the_orjson_renderer_writes_what_drfs_renderer_writes():
    data = {
        "when": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "price": Decimal("23.9200"),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "message": gettext_lazy("Not found."),
        "nested": [{"ünïcode": "日本", "n": 3, "f": 1.5, "none": None, "yes": True}],
        7: "integer key",
        "big": 2**70,
    }
    assert json.loads(OrjsonRenderer().render(data)) == json.loads(JSONRenderer().render(data))
    indented = OrjsonRenderer().render({"a": 1}, "application/json; indent=4")
    assert indented == JSONRenderer().render({"a": 1}, "application/json; indent=4")
    assert OrjsonRenderer().render(None) == b""


def test_a_page_is_read_once_per_catalog_version_and_organization(gpu_cloud, customer, make_offering, token_client):
    """A repeated page is served as kept, never across organizations (a provider's drafts) nor across writes."""
    make_offering(gpu_cloud, name="Published")
    draft, _ = make_offering(gpu_cloud, published=False, name="Draft")
    seller, buyer = token_client(gpu_cloud.member), token_client(customer.member)

    def names_and_queries(client, **params):
        with CaptureQueriesContext(connection) as captured:
            body = client.get(LIST, params).json()
        reads = sum('"marketplace_offering"."summary"' in q["sql"] for q in captured.captured_queries)  # the rows
        return [row["name"] for row in body["results"]], reads

    assert names_and_queries(seller) == (["Draft", "Published"], 1)
    assert names_and_queries(seller) == (["Draft", "Published"], 0)  # kept
    assert names_and_queries(buyer) == (["Published"], 1)  # another organization: its own page
    assert names_and_queries(buyer) == (["Published"], 0)
    assert names_and_queries(buyer, limit=1) == (["Published"], 1)  # other parameters: another page
    first = seller.get(LIST, {"limit": 1, "offset": 1}).json()
    assert first["next"] is None
    assert first["previous"].endswith("limit=1")
    assert seller.get(LIST, {"limit": 1, "offset": 1}).json() == first  # kept, with the same links

    services.offering_publish(membership=gpu_cloud.member, offering=draft)
    assert names_and_queries(buyer) == (["Draft", "Published"], 1)  # the write changed the version
    Offering.objects.filter(name="Draft").update(name="Renamed")  # no signal, no save()
    assert names_and_queries(buyer) == (["Published", "Renamed"], 1)
    assert names_and_queries(seller) == (["Published", "Renamed"], 1)
