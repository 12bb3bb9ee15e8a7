"""The topology pages (map and logical view) and the home dashboard tiles, through the portal.

The network is the one of ``test_topology.py`` (its ``network`` fixture): Acme with a pending request
to a cloud in Frankfurt, an active connection to the cloud in Washington DC and one between its own
ports in Frankfurt and Amsterdam.
"""

import json
import math
import re
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fabric import services
from fabric.choices import ConnectionState
from fabric.models import Connection
from fabric.telemetry import rollup_pending, telemetry_ingest
from hub.choices import Role
from tests.fabric import test_topology
from tests.factories import MembershipFactory, OrganizationFactory

network = test_topology.network  # the same network as the API tests

pytestmark = pytest.mark.django_db

MAP, LOGICAL = "/fabric/topology/", "/fabric/topology/logical/"
ISLAND = re.compile(r'<script id="topology-figure-data" type="application/json">(.*?)</script>', re.S)


def _figure(html: str) -> dict:
    match = ISLAND.search(html)
    assert match, "the page has no figure data island"
    return json.loads(match.group(1))


def _traces(figure: dict, role: str) -> list[dict]:
    return [trace for trace in figure["data"] if trace.get("meta", {}).get("role") == role]


def _line_style(figure: dict) -> dict[str, dict]:
    """State -> the line style of its connections."""
    return {trace["meta"]["state"]: trace["line"] for trace in _traces(figure, "connections")}


@pytest.fixture
def failed(network, fail_steps, django_capture_on_commit_callbacks):
    """A connection whose provisioning failed for good (Acme's own ports)."""
    fail_steps({"configure_z_side": "permanent"})
    with django_capture_on_commit_callbacks(execute=True):
        connection = services.connection_request(
            membership=network.acme.member,
            name="acme-broken",
            a_port=network.acme.fra10,
            z_port=network.acme.ams,
            bandwidth_mbps=100,
        ).connections[0]
    connection.refresh_from_db()
    assert connection.state == ConnectionState.FAILED
    return connection


# --- The map ----------------------------------------------------------------------------------
def test_map_draws_metros_and_great_circle_connections_coloured_by_state(network, logged_in):
    response = logged_in(network.acme.member).get(MAP)
    assert response.status_code == 200
    html = response.content.decode()
    figure = _figure(html)

    metros = _traces(figure, "metros")[0]
    assert sorted(metros["text"]) == ["AM", "DC", "FR"]
    size = dict(zip(metros["text"], metros["marker"]["size"], strict=True))
    assert size["FR"] > size["AM"] == size["DC"]  # three ports in Frankfurt, one in the others

    styles = _line_style(figure)
    assert set(styles) == {"ACTIVE", "PENDING_APPROVAL"}
    assert styles["ACTIVE"]["dash"] == "solid"
    assert styles["PENDING_APPROVAL"]["dash"] == "dot"
    assert styles["ACTIVE"]["color"] != styles["PENDING_APPROVAL"]["color"]
    legend = [trace["name"] for trace in figure["data"] if trace.get("showlegend", True)]
    assert "Active (in service)" in legend
    assert "Pending approval (waiting for approval)" in legend

    # The DC connection is a great circle: many points, bending north of both ends.
    active_lines = [t for t in _traces(figure, "connections") if t["meta"]["state"] == "ACTIVE"]
    lats = [lat for trace in active_lines for lat in trace["lat"] if lat is not None]
    assert len(lats) > 10
    assert max(lats) > 51

    # Clicking a connection's marker opens its page: the marker carries the link and the details.
    links = {row[1]: row for t in _traces(figure, "connection-links") for row in t["customdata"]}
    assert links["acme-to-cloud-dc"][0] == str(network.to_dc.public_id)
    assert 'data-connection-url="/fabric/connections/00000000-0000-0000-0000-000000000000/"' in html
    assert links["acme-to-cloud-dc"][2] == "FR · acme-fra-10g → DC · GPU Cloud · cloud-dc"
    assert links["acme-to-cloud-dc"][3] == "Active · 2 Gbps"
    assert links["acme-to-cloud-fra"][3] == "Pending approval · waiting on provider · 200 Mbps"
    assert "RTT" in links["acme-to-cloud-dc"][4]

    # Offline: plotly.js, the script and the world map come from the app's own static files.
    assert 'src="/static/plotly/plotly.min.js"' in html
    assert 'src="/static/js/topology.js"' in html
    assert 'data-topojson="/static/vendor/topojson/world_110m.json"' in html
    assert "cdn" not in html.lower()


def test_map_has_a_table_alternative_with_the_same_connections(network, logged_in):
    client = logged_in(network.acme.member)
    page = client.get(MAP).content.decode()
    # The table loads when its disclosure opens (htmx), or opens on the page without JavaScript.
    assert 'hx-get="/fabric/topology/?part=table" hx-trigger="toggle once"' in page
    assert '<a href="/fabric/topology/?part=table">Show the table</a>' in page
    fragment = client.get(MAP, {"part": "table"}, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div class="table-wrap">')
    html = client.get(MAP, {"part": "table"}).content.decode()
    assert "<details open>" in html
    assert ISLAND.search(html)  # the chart stays on the page
    table = html[html.index('id="topology-connections"') :]
    table = table[: table.index("</table>")]
    for connection in (network.pending, network.to_dc, network.own):
        assert f'href="/fabric/connections/{connection.public_id}/"' in table
        assert connection.name in table
    assert table.index("acme-to-cloud-fra") < table.index("acme-to-cloud-dc")  # pending before active
    assert "FR · GPU Cloud · cloud-fra" in table
    metros = html[html.index('id="topology-metros"') :]
    assert "<td>FR</td><td>Frankfurt</td><td>EMEA</td><td>3</td>" in metros
    assert 'aria-describedby="topology-tables"' in html


def test_the_map_shows_nothing_of_other_organizations(network, logged_in):
    html = logged_in(network.acme.member).get(MAP, {"part": "table"}).content.decode()
    assert "cloud-sg-private" not in html
    assert "globex" not in html.lower()


def test_filters_swap_only_the_figure_and_its_tables_through_htmx(network, logged_in):
    client = logged_in(network.acme.member)
    response = client.get(MAP, {"state": "ACTIVE", "metro": "DC"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="topology-view">')
    assert "<html" not in html
    assert 'id="topology-filters"' not in html
    figure = _figure(html)
    assert set(_line_style(figure)) == {"ACTIVE"}
    assert {row[1] for t in _traces(figure, "connection-links") for row in t["customdata"]} == {"acme-to-cloud-dc"}
    assert "metro=DC" in html  # the downloads follow the filters


def test_the_filter_form_offers_my_metros_and_providers(network, logged_in):
    html = logged_in(network.acme.member).get(MAP).content.decode()
    form = html[html.index('id="topology-filters"') :]
    form = form[: form.index("</form>")]
    assert '<option value="gpu-cloud"' in form
    assert '<option value="DC"' in form
    assert '<option value="SG"' not in form  # nothing of mine there
    assert "globex" not in form.lower()


def test_a_bad_filter_on_the_page_says_what_is_wrong(network, logged_in):
    response = logged_in(network.acme.member).get(MAP, {"metro": "ZZ"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Unknown metro &#x27;ZZ&#x27;" in html
    assert ISLAND.search(html) is None


def test_an_empty_network_says_so(logged_in, metros):
    member = MembershipFactory(organization=OrganizationFactory(slug="fresh"), role=Role.VIEWER)
    html = logged_in(member).get(MAP).content.decode()
    assert "Nothing to show" in html
    assert ISLAND.search(html) is None


def test_page_query_count_does_not_grow_with_the_network(network, logged_in):
    client = logged_in(network.acme.member)

    def queries():
        with CaptureQueriesContext(db_connection) as captured:
            assert client.get(MAP).status_code == 200
        return len(captured.captured_queries)

    client.get(MAP)
    before = queries()
    test_topology._bulk_connections(network.acme.org, network.acme.fra10, network.cloud.dc, 80, 0)
    assert queries() == before


# --- The logical view -------------------------------------------------------------------------
def test_logical_view_groups_ports_by_metro_and_makes_failed_and_pending_stand_out(network, failed, logged_in):
    response = logged_in(network.acme.member).get(LOGICAL)
    assert response.status_code == 200
    html = response.content.decode()
    figure = _figure(html)

    position = {}
    kinds = {}
    for trace in _traces(figure, "ports"):
        for label, x, y in zip(trace["text"], trace["x"], trace["y"], strict=True):
            position[label] = (x, y)
            kinds[label] = trace["name"]
    assert kinds["acme-fra"] == "My ports"
    assert kinds["cloud-dc"] == "Provider endpoints"
    frankfurt = ["acme-fra", "acme-fra-10g", "cloud-fra"]
    inside = max(math.dist(position[a], position[b]) for a in frankfurt for b in frankfurt)
    across = min(math.dist(position[a], position[b]) for a in frankfurt for b in ("acme-ams", "cloud-dc"))
    assert inside < across

    styles = _line_style(figure)
    assert styles["FAILED"]["dash"] == "dash"
    assert styles["FAILED"]["color"] == "#dc2626"
    assert styles["PENDING_APPROVAL"]["dash"] == "dot"
    assert styles["ACTIVE"]["dash"] == "solid"
    drawn = [trace["meta"]["state"] for trace in _traces(figure, "connections")]
    assert drawn.index("FAILED") > drawn.index("ACTIVE")  # drawn last: on top
    annotations = " ".join(a["text"] for a in figure["layout"]["annotations"])
    assert "<b>FR</b> Frankfurt" in annotations

    html = logged_in(network.acme.member).get(LOGICAL, {"part": "table", "state": "FAILED,ACTIVE,PENDING_APPROVAL"})
    html = html.content.decode()
    ports = html[html.index('id="topology-ports"') :]
    assert "provider endpoint" in ports
    table = html[html.index('id="topology-connections"') :]
    assert table.index("acme-broken") < table.index("acme-to-cloud-fra") < table.index("acme-fra-ams")


def test_logical_view_is_the_same_every_time(network, logged_in):
    client = logged_in(network.acme.member)
    assert _figure(client.get(LOGICAL).content.decode()) == _figure(client.get(LOGICAL).content.decode())


# --- Navigation and the home dashboard --------------------------------------------------------
def test_the_topology_menu_entry_is_live(network, logged_in):
    html = logged_in(network.acme.member).get("/").content.decode()
    assert f'href="{MAP}"' in html


def test_home_tiles_show_connections_by_state_busiest_and_recent_events(
    network, logged_in, django_capture_on_commit_callbacks
):
    now = timezone.now()
    samples = [
        {
            "time": (now - timedelta(hours=2, minutes=minute)).isoformat(),
            "interval_seconds": 60,
            "bytes_in": 1_000_000,
            "bytes_out": 500_000_000,
            "packets_in": 10,
            "packets_out": 10,
        }
        for minute in range(30)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        telemetry_ingest(membership=network.acme.member, connection=network.to_dc, samples=samples)
    rollup_pending()

    html = logged_in(network.acme.member).get("/").content.decode()
    by_state = html[html.index('data-testid="connections-by-state"') :]
    by_state = by_state[: by_state.index("</ul>")]
    assert re.search(r"Active</span> 2<", by_state)
    assert re.search(r"Pending approval</span> 1<", by_state)
    assert re.search(r"Cancelled</span> 1<", by_state)

    busiest = html[html.index('data-testid="busiest-connections"') :]
    busiest = busiest[: busiest.index("</ol>")]
    assert f'href="/fabric/connections/{network.to_dc.public_id}/"' in busiest
    assert "acme-fra-ams" not in busiest  # no telemetry

    events = html[html.index('data-testid="connection-events"') :]
    events = events[: events.index("</ul>")]
    assert "acme-cancelled" in events
    assert "globex" not in events.lower()


def test_the_provider_sees_requests_waiting_on_it(network, logged_in):
    html = logged_in(network.cloud.member).get("/").content.decode()
    assert "1 waiting on you" in html


@pytest.mark.parametrize("url", [MAP, LOGICAL])
def test_markup_in_names_cannot_break_out_of_the_figure_data(network, logged_in, url):
    name = 'evil</script><script>alert(1)</script><!-- & "quoted" é'
    Connection.objects.filter(pk=network.own.pk).update(name=name)
    html = logged_in(network.acme.member).get(url).content.decode()
    assert "<script>alert(1)" not in html
    figure = _figure(html)  # the island still parses, and carries the name as it is
    labels = [row[1] for trace in _traces(figure, "connection-links") for row in trace["customdata"]]
    assert name in labels
