"""The marketplace over HTTP: a provider lists and publishes, a customer finds and orders."""

import pytest

from marketplace.models import Offering, Order
from tests.marketplace.conftest import GPU_ATTRIBUTES

pytestmark = pytest.mark.django_db


def _listing(**overrides):
    return {
        "category": "GPU_CLOUD",
        "name": "8x H100",
        "price_amount": "23.92",
        "price_unit": "HOUR",
        "attributes": GPU_ATTRIBUTES,
        **overrides,
    }


def test_provider_journey_and_customer_order(gpu_cloud, customer, token_client):
    seller = token_client(gpu_cloud.member)
    response = seller.post("/api/v1/offerings/", _listing(), format="json")
    assert response.status_code == 201, response.content
    offering_id = response.json()["id"]
    refused = seller.post(f"/api/v1/offerings/{offering_id}/publish/")
    assert refused.status_code == 409
    assert "access point" in refused.json()["error"]["message"]
    response = seller.post(
        f"/api/v1/offerings/{offering_id}/access-points/",
        {"port": str(gpu_cloud.fra.public_id), "allowed_bandwidths_mbps": [1000]},
        format="json",
    )
    assert response.status_code == 201, response.content
    access_point_id = response.json()["id"]
    assert seller.post(f"/api/v1/offerings/{offering_id}/publish/").json()["status"] == "PUBLISHED"

    buyer = token_client(customer.member)
    found = buyer.get("/api/v1/offerings/", {"metro": "FR", "accelerator": "h100", "min_gpu_count": 8}).json()
    assert [row["id"] for row in found["results"]] == [offering_id]
    assert buyer.get("/api/v1/offerings/", {"metro": "DC"}).json()["results"] == []
    facets = buyer.get("/api/v1/offerings/facets/").json()
    assert facets["accelerator"] == [{"value": "H100", "count": 1}]
    order = {
        "offering": offering_id,
        "access_point": access_point_id,
        "a_port": str(customer.fra.public_id),
        "bandwidth_mbps": 1000,
    }
    quote = buyer.post("/api/v1/orders/", {**order, "dry_run": True}, format="json")
    assert quote.status_code == 200
    assert quote.json()["order"] is None
    assert any("23.92 USD per hour" in line["description"] for line in quote.json()["quote"]["lines"])
    first = buyer.post("/api/v1/orders/", order, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    again = buyer.post("/api/v1/orders/", order, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    listed = buyer.get("/api/v1/orders/").json()["results"]
    assert listed[0]["status"] == "PENDING_PROVIDER"
    assert listed[0]["connection"]["state"] == "PENDING_APPROVAL"


def test_a_bad_attribute_is_a_field_error_in_the_envelope(gpu_cloud, token_client):
    response = token_client(gpu_cloud.member).post(
        "/api/v1/offerings/", _listing(attributes={**GPU_ATTRIBUTES, "gpu_count": "eight"}), format="json"
    )
    assert response.status_code == 400
    assert "attributes.gpu_count" in response.json()["error"]["fields"]
    assert not Offering.objects.exists()


def test_drafts_are_only_visible_to_their_provider(gpu_cloud, rival, customer, make_offering, token_client):
    draft, _ = make_offering(gpu_cloud, published=False)
    assert token_client(gpu_cloud.member).get(f"/api/v1/offerings/{draft.public_id}/").status_code == 200
    assert token_client(customer.member).get(f"/api/v1/offerings/{draft.public_id}/").status_code == 404
    response = token_client(rival.member).patch(f"/api/v1/offerings/{draft.public_id}/", {"name": "x"}, format="json")
    assert response.status_code == 404


def test_another_provider_cannot_patch_a_published_offering(gpu_cloud, rival, make_offering, token_client):
    offering, _ = make_offering(gpu_cloud)
    response = token_client(rival.member).patch(
        f"/api/v1/offerings/{offering.public_id}/", {"name": "Hijacked"}, format="json"
    )
    assert response.status_code == 404
    offering.refresh_from_db()
    assert offering.name == "8x H100"


def test_an_unallowed_bandwidth_is_a_field_error(gpu_cloud, customer, make_offering, token_client):
    offering, access_point = make_offering(gpu_cloud)
    response = token_client(customer.member).post(
        "/api/v1/orders/",
        {
            "offering": str(offering.public_id),
            "access_point": str(access_point.public_id),
            "a_port": str(customer.fra.public_id),
            "bandwidth_mbps": 200,
        },
        format="json",
    )
    assert response.status_code == 400
    assert "bandwidth_mbps" in response.json()["error"]["fields"]
    assert not Order.objects.exists()
