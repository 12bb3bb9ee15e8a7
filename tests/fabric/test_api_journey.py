"""The issue's journey, end to end through the REST API with bearer tokens, as a script would."""

import pytest

from fabric.models import VlanAssignment

pytestmark = pytest.mark.django_db(transaction=True)


def test_order_port_quote_connect_approve_modify_deprovision(acme, cloud, token_client):
    engineer = token_client(acme.member, scopes=["read", "write"])
    provider = token_client(cloud.member, scopes=["read", "write"])

    # A 10G port in Frankfurt, provisioned by its workflow.
    port = engineer.post("/api/v1/ports/", {"name": "fr-new", "metro": "FR", "speed_mbps": 10_000}, format="json")
    assert port.status_code == 201, port.content
    port_id = port.json()["id"]
    assert engineer.get(f"/api/v1/ports/{port_id}/").json()["state"] == "ACTIVE"

    # Price and latency first, nothing created.
    body = {"name": "fr-to-cloud", "a_port": port_id, "z_port": str(cloud.fra.public_id), "bandwidth_mbps": 1000}
    plan = engineer.post("/api/v1/connections/", {**body, "dry_run": True}, format="json")
    assert plan.status_code == 200
    plan = plan.json()
    assert plan["allowed"] is True
    assert plan["connections"] == []
    assert float(plan["quote"]["monthly_total"]) > 0
    assert plan["latency"][0]["a_metro"] == plan["latency"][0]["z_metro"] == "FR"
    assert plan["approvals"] == [f"{cloud.org.name} must approve the connection to cloud-fra."]

    created = engineer.post("/api/v1/connections/", body, format="json", HTTP_IDEMPOTENCY_KEY="journey-1")
    assert created.status_code == 201
    connection = created.json()["connections"][0]
    assert (connection["state"], connection["pending_on"]) == ("PENDING_APPROVAL", "PROVIDER")
    url = f"/api/v1/connections/{connection['id']}/"

    # The provider sees it and approves with its own VLAN.
    incoming = provider.get("/api/v1/connections/", {"direction": "incoming"}).json()["results"]
    assert [c["id"] for c in incoming] == [connection["id"]]
    approved = provider.post(url + "approve/", {"z_vlan": 321}, format="json")
    assert approved.status_code == 200
    active = engineer.get(url).json()
    assert (active["state"], active["z_vlan"], active["pending_on"]) == ("ACTIVE", 321, "NONE")
    states = [e["to_state"] for e in engineer.get(url + "events/").json()]
    assert states == ["PENDING_APPROVAL", "APPROVED", "PROVISIONING", "ACTIVE"]
    steps = engineer.get(url + "workflows/").json()[0]["steps"]
    assert [s["status"] for s in steps] == ["SUCCEEDED"] * 5

    # Raise the bandwidth, then take it down.
    assert engineer.patch(url, {"bandwidth_mbps": 2000}, format="json").status_code == 202
    assert engineer.get(url).json()["bandwidth_mbps"] == 2000
    assert engineer.get(f"/api/v1/ports/{port_id}/").json()["committed_mbps"] == 2000
    assert engineer.delete(url).status_code == 202
    assert engineer.get(url).json()["state"] == "DEPROVISIONED"
    assert engineer.get(f"/api/v1/ports/{port_id}/").json()["committed_mbps"] == 0
    assert not VlanAssignment.objects.exists()
