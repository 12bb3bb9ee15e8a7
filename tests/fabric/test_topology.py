"""The topology graph through the API: nodes and edges, filters, downloads, isolation, query count.

The network: Acme (the requester) has ports in Frankfurt (two) and Amsterdam; GPU Cloud (a
provider) has ports in Frankfurt and Washington DC, and a private one in Singapore that no
connection uses; Globex has a port in Frankfurt. Acme has a pending request to the cloud in
Frankfurt, an active connection to the cloud in DC, an active one between its own ports and a
cancelled one; Globex has an active connection to the cloud in Frankfurt.
"""

import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from types import SimpleNamespace

import networkx as nx
import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fabric import services
from fabric.choices import ConnectionState, PendingOn, PortSpeed
from fabric.models import Connection
from fabric.telemetry import rollup_pending, telemetry_ingest
from fabric.topology import great_circle_path
from tests.fabric.factories import PortFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/topology/"
GRAPHML_NS = "{http://graphml.graphdrawing.org/xmlns}"


def _request(member, a_port, z_port, name, mbps, *, approve_by=None):
    connection = services.connection_request(
        membership=member, name=name, a_port=a_port, z_port=z_port, bandwidth_mbps=mbps
    ).connections[0]
    if approve_by is not None:
        services.connection_approve(membership=approve_by, connection=connection)
    return connection


@pytest.fixture
def network(acme, cloud, globex, metros, django_capture_on_commit_callbacks):
    cloud.sg = PortFactory(
        organization=cloud.org, metro=metros["SG"], name="cloud-sg-private", speed_mbps=PortSpeed.G10
    )
    with django_capture_on_commit_callbacks(execute=True):
        pending = _request(acme.member, acme.fra, cloud.fra, "acme-to-cloud-fra", 200)
        to_dc = _request(acme.member, acme.fra10, cloud.dc, "acme-to-cloud-dc", 2_000, approve_by=cloud.member)
        own = _request(acme.member, acme.fra, acme.ams, "acme-fra-ams", 500)
        cancelled = _request(acme.member, acme.ams, cloud.fra, "acme-cancelled", 100)
        services.connection_cancel(membership=acme.member, connection=cancelled)
        theirs = _request(globex.member, globex.fra, cloud.fra, "globex-to-cloud", 100, approve_by=cloud.member)
    for connection in (pending, to_dc, own, theirs):
        connection.refresh_from_db()
    assert (pending.state, to_dc.state, own.state, theirs.state) == ("PENDING_APPROVAL", "ACTIVE", "ACTIVE", "ACTIVE")
    return SimpleNamespace(
        acme=acme, cloud=cloud, globex=globex, pending=pending, to_dc=to_dc, own=own, theirs=theirs, cancelled=cancelled
    )


def _graph(client, **params):
    response = client.get(URL, params)
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    return {node["id"]: node for node in body["nodes"]}, {edge["label"]: edge for edge in body["edges"]}


# --- Nodes and edges --------------------------------------------------------------------------
def test_nodes_and_edges_of_my_network(network, token_client):
    nodes, edges = _graph(token_client(network.acme.member))

    assert set(edges) == {"acme-to-cloud-fra", "acme-to-cloud-dc", "acme-fra-ams"}  # live only by default
    pending, to_dc = edges["acme-to-cloud-fra"], edges["acme-to-cloud-dc"]
    assert (pending["state"], pending["pending_on"]) == (ConnectionState.PENDING_APPROVAL, PendingOn.PROVIDER)
    assert (to_dc["state"], to_dc["bandwidth_mbps"], to_dc["direction"]) == ("ACTIVE", 2_000, "outgoing")
    assert to_dc["id"] == str(network.to_dc.public_id)
    assert to_dc["source"] == f"port:{network.acme.fra10.public_id}"
    assert to_dc["target"] == f"port:{network.cloud.dc.public_id}"
    # Frankfurt to Washington: some 6,500 km, an estimated round trip of roughly 80-110 ms.
    assert 6_000 < to_dc["distance_km"] < 7_000
    assert 70 < to_dc["latency_ms"] < 120
    assert edges["acme-fra-ams"]["latency_ms"] < to_dc["latency_ms"]

    metros = {node["code"]: node for node in nodes.values() if node["kind"] == "metro"}
    assert metros.keys() == {"FR", "AM", "DC"}
    assert metros["FR"]["ports"] == 3  # acme-fra, acme-fra-10g and the cloud's Frankfurt port
    assert (metros["DC"]["ports"], metros["DC"]["region"]) == (1, "AMER")
    assert metros["FR"]["latitude"] == pytest.approx(50.1, abs=0.5)

    mine = nodes[f"port:{network.acme.fra10.public_id}"]
    assert (mine["mine"], mine["speed_mbps"], mine["state"], mine["metro"]) == (True, 10_000, "ACTIVE", "metro:FR")
    remote = nodes[f"port:{network.cloud.dc.public_id}"]
    assert remote["mine"] is False
    assert remote["label"] == "cloud-dc"
    assert remote["organization"] == "org:gpu-cloud"
    # Not shown on the connection page either:
    assert "speed_mbps" not in remote
    assert "state" not in remote
    assert nodes["org:gpu-cloud"]["kind"] == "provider"
    assert nodes["org:acme-test"]["mine"] is True


def test_another_organizations_private_ports_and_connections_stay_hidden(network, token_client):
    response = token_client(network.acme.member).get(URL)
    body = response.content.decode()
    assert "cloud-sg-private" not in body  # the provider's port no connection of mine uses
    assert "globex" not in body.lower()  # neither Globex's port nor its connection to the cloud


def test_the_z_side_sees_incoming_connections_with_the_requesters_port(network, token_client):
    nodes, edges = _graph(token_client(network.cloud.member))
    assert set(edges) == {"acme-to-cloud-fra", "acme-to-cloud-dc", "globex-to-cloud"}
    assert {edge["direction"] for edge in edges.values()} == {"incoming"}
    requester_port = nodes[edges["globex-to-cloud"]["source"]]
    assert (requester_port["label"], requester_port["mine"]) == ("globex-fra", False)
    assert "acme-ams" not in {node["label"] for node in nodes.values()}  # Acme's own-to-own connection
    assert nodes[f"port:{network.cloud.sg.public_id}"]["mine"] is True  # my unused port is still mine to see


def test_edges_carry_the_last_hours_utilisation(network, token_client, django_capture_on_commit_callbacks):
    now = timezone.now()
    # 250 Mbps out for most of the hour on a 500 Mbps connection: about half of its bandwidth.
    samples = [
        {
            "time": (now - timedelta(minutes=minute)).isoformat(),
            "interval_seconds": 60,
            "bytes_in": 10_000_000,
            "bytes_out": 250_000_000 // 8 * 60,
            "packets_in": 1_000,
            "packets_out": 20_000,
        }
        for minute in range(2, 58)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        result = telemetry_ingest(membership=network.acme.member, connection=network.own, samples=samples)
    assert result.accepted == len(samples)
    rollup_pending()

    _, edges = _graph(token_client(network.acme.member))
    used = edges["acme-fra-ams"]["utilisation"]
    assert 40 <= used["percent"] <= 50
    assert used["bps_out"] > 20 * used["bps_in"]
    assert edges["acme-to-cloud-dc"]["utilisation"] is None  # no telemetry


# --- Filters ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "ACTIVE"}, {"acme-to-cloud-dc", "acme-fra-ams"}),
        ({"state": "pending_approval,cancelled"}, {"acme-to-cloud-fra", "acme-cancelled"}),
        ({"metro": "DC"}, {"acme-to-cloud-dc"}),
        ({"metro": "am"}, {"acme-fra-ams"}),
        ({"region": "AMER"}, {"acme-to-cloud-dc"}),
        ({"provider": "gpu-cloud"}, {"acme-to-cloud-fra", "acme-to-cloud-dc"}),
        ({"provider": "gpu-cloud", "state": "ACTIVE"}, {"acme-to-cloud-dc"}),
        ({"region": "APAC"}, set()),
    ],
)
def test_filters_narrow_the_edges(network, token_client, params, expected):
    _, edges = _graph(token_client(network.acme.member), **params)
    assert set(edges) == expected


def test_a_metro_filter_keeps_only_the_ports_of_those_connections_and_metros(network, token_client):
    nodes, _ = _graph(token_client(network.acme.member), metro="DC")
    ports = {node["label"] for node in nodes.values() if node["kind"] == "port"}
    assert ports == {"acme-fra-10g", "cloud-dc"}  # my port in Frankfurt is the A end of the DC connection
    assert {node["code"] for node in nodes.values() if node["kind"] == "metro"} == {"FR", "DC"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "BOGUS"}, "state"),
        ({"metro": "ZZ"}, "metro"),
        ({"region": "MARS"}, "region"),
        ({"provider": "globex-test"}, "provider"),  # an enterprise, not a provider
        ({"provider": "no such provider!"}, "provider"),
        ({"state": ",".join(["ACTIVE"] * 60 + ["x"] * 60)}, "state"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_filter_values_are_a_clear_400(network, token_client, params, field):
    response = token_client(network.acme.member).get(URL, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] in ("invalid_filter", "invalid_format")
    assert field in error["fields"]
    assert error["message"]


def test_a_bad_filter_with_graphml_still_answers_the_json_envelope(network, token_client):
    response = token_client(network.acme.member).get(URL, {"format": "graphml", "state": "BOGUS"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["fields"]["state"]


# --- Downloads --------------------------------------------------------------------------------
def test_graphml_download_is_valid_graphml_with_the_same_graph(network, token_client):
    client = token_client(network.acme.member)
    response = client.get(URL, {"format": "graphml", "state": "ACTIVE"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/graphml+xml")
    assert response["Content-Disposition"].startswith('attachment; filename="topology-acme-test-')
    assert response["Content-Disposition"].endswith('.graphml"')

    root = ET.fromstring(response.content)  # noqa: S314 - our own response, not untrusted input
    assert root.tag == f"{GRAPHML_NS}graphml"
    graph_element = root.find(f"{GRAPHML_NS}graph")
    assert graph_element.get("edgedefault") == "directed"
    assert len(graph_element.findall(f"{GRAPHML_NS}edge")) == 2

    graph = nx.parse_graphml(response.content.decode(), force_multigraph=True)
    json_nodes, json_edges = _graph(client, state="ACTIVE")
    assert set(graph.nodes) == set(json_nodes)
    edge = next(data for _, _, data in graph.edges(data=True) if data["label"] == "acme-to-cloud-dc")
    assert (edge["state"], edge["bandwidth_mbps"], edge["latency_ms"]) == (
        "ACTIVE",
        2_000,
        json_edges["acme-to-cloud-dc"]["latency_ms"],
    )
    assert graph.nodes["metro:DC"]["latitude"] == pytest.approx(json_nodes["metro:DC"]["latitude"])


def test_json_download_is_an_attachment_with_the_same_body(network, token_client):
    client = token_client(network.acme.member)
    inline = client.get(URL)
    assert "Content-Disposition" not in inline
    download = client.get(URL, {"format": "json"})
    assert download.status_code == 200
    assert download["Content-Type"].startswith("application/json")
    assert download["Content-Disposition"].endswith('.json"')
    assert json.loads(download.content) == inline.json()


def test_the_schema_documents_the_topology_endpoint(client):
    response = client.get("/api/v1/schema/", {"format": "json"})
    operation = response.json()["paths"]["/api/v1/topology/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"state", "metro", "provider", "region", "format"}
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "application/graphml+xml"}
    assert "400" in operation["responses"]


# --- Scale ------------------------------------------------------------------------------------
def _bulk_connections(org, a_port, z_port, count, start):
    Connection.objects.bulk_create(
        Connection(
            organization=org,
            name=f"bulk-{start + i}",
            a_port=a_port,
            a_vlan=200 + start + i,
            z_port=z_port,
            z_vlan=200 + start + i,
            bandwidth_mbps=10,
            state=ConnectionState.ACTIVE if i % 3 else ConnectionState.FAILED,
            pending_on=PendingOn.NONE,
        )
        for i in range(count)
    )


def test_query_count_does_not_grow_with_the_network(network, token_client, metros):
    client = token_client(network.acme.member)
    extra = [
        PortFactory(
            organization=network.acme.org, metro=metros[code], name=f"acme-{code.lower()}", speed_mbps=PortSpeed.G10
        )
        for code in ("NY", "SG", "SY")
    ]

    def queries():
        client.get(URL, {"provider": "gpu-cloud"})  # warm: token last-used stamps and the like
        with CaptureQueriesContext(db_connection) as captured:
            assert client.get(URL, {"provider": "gpu-cloud", "region": "EMEA,APAC"}).status_code == 200
        return len(captured.captured_queries)

    before = queries()
    _bulk_connections(network.acme.org, extra[0], network.cloud.dc, 10, 0)
    _bulk_connections(network.acme.org, extra[1], network.cloud.fra, 60, 10)
    _bulk_connections(network.acme.org, extra[2], network.cloud.sg, 60, 70)
    after = queries()
    assert after == before
    _, edges = _graph(client, provider="gpu-cloud")
    assert len(edges) == 2 + 130


# --- Drawing helpers the map relies on ----------------------------------------------------------
def test_great_circle_lines_bend_towards_the_pole_and_cross_the_pacific_the_short_way():
    # Frankfurt to New York: the great circle passes well north of both ends (over the North Atlantic).
    lats, lons = great_circle_path(50.11, 8.68, 40.71, -74.01)
    assert (lats[0], lons[0], lats[-1], lons[-1]) == (50.11, 8.68, 40.71, -74.01)
    assert max(lats) > 52
    assert len(lats) >= 8  # a point every 700 km or so
    # Tokyo to Los Angeles goes over the North Pacific, never back across Asia, Europe and America.
    lats, lons = great_circle_path(35.68, 139.69, 34.05, -118.24)
    assert (lons[0], lons[-1]) == (139.69, -118.24)
    assert all(lon >= 139 or lon <= -118 for lon in lons)
    assert max(lats) > 45


def test_markup_in_names_is_escaped_in_graphml_and_json(network, token_client):
    name = 'a & b <c> "d"'
    Connection.objects.filter(pk=network.own.pk).update(name=name)
    client = token_client(network.acme.member)
    _, edges = _graph(client)
    assert name in edges
    graphml = client.get(URL, {"format": "graphml"}).content.decode()
    assert "a &amp; b &lt;c&gt;" in graphml
    graph = nx.parse_graphml(graphml, force_multigraph=True)
    assert name in {data["label"] for _, _, data in graph.edges(data=True)}


def test_indented_json_is_the_same_graph(network, token_client):
    client = token_client(network.acme.member)
    compact = client.get(URL)
    indented = client.get(URL, HTTP_ACCEPT="application/json; indent=2")
    assert indented.status_code == 200
    assert b'\n  "nodes"' in indented.content
    assert indented.json() == compact.json()
