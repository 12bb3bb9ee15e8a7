"""The stats API and the utilisation charts on the connection and port pages."""

import json
import re
from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from fabric import tasks, telemetry
from hub.choices import Role
from tests.fabric.test_telemetry_support import active_connection, aligned_hour_ago

pytestmark = pytest.mark.django_db


@pytest.fixture
def link(acme, cloud):
    return active_connection(org=acme.org, a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=1000)


def fill(connection, *, start, hours, bytes_in=125_000_000, bytes_out=12_500_000, interval=60):
    """Steady traffic (by default 16.7 Mbps in, 1.67 Mbps out at 60 s) for ``hours``, rolled up."""
    count = int(hours * 3600 / interval)
    telemetry.store_samples(
        [
            (connection.pk, start + timedelta(seconds=interval * i), interval, bytes_in, bytes_out, 1, 1, 0, "")
            for i in range(count)
        ],
        organization_id=connection.organization_id,
    )
    tasks.telemetry_rollup()


def iso(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def stats_url(connection):
    return f"/api/v1/connections/{connection.public_id}/stats/"


def test_stats_give_rates_percent_and_p95(link, acme, token_client):
    start = aligned_hour_ago(5)
    fill(link, start=start, hours=2)
    # One hour at ten times the rate: the p95 of the 5-minute steps sees it, the average less so.
    fill(link, start=start + timedelta(hours=2), hours=1, bytes_in=1_250_000_000)
    viewer = token_client(acme.member, scopes=["read"])
    response = viewer.get(stats_url(link), {"from": iso(start), "to": iso(start + timedelta(hours=3)), "step": 300})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["step"], body["source"], body["bandwidth_mbps"]) == (300, "rollup_5m", 1000)
    assert len(body["points"]) == 36
    first = body["points"][0]
    assert first["bps_in"] == pytest.approx(125_000_000 * 8 / 60)
    assert first["percent_in"] == pytest.approx(125_000_000 * 8 / 60 / 1e9 * 100)
    assert first["percent_out"] == pytest.approx(12_500_000 * 8 / 60 / 1e9 * 100)
    summary = body["summary"]
    assert summary["avg_bps_in"] == pytest.approx((2 * 125_000_000 + 1_250_000_000) * 60 * 8 / (3 * 3600))
    assert summary["p95_bps_in"] == pytest.approx(1_250_000_000 * 8 / 60)
    assert summary["p95_percent"] == pytest.approx(1_250_000_000 * 8 / 60 / 1e9 * 100)
    assert summary["peak_bps_in"] == pytest.approx(1_250_000_000 * 8 / 60)


def test_long_windows_read_hourly_rollups_and_short_ones_raw(link, acme, token_client):
    start = aligned_hour_ago(3)
    fill(link, start=start, hours=2)
    client = token_client(acme.member, scopes=["read"])
    month = client.get(stats_url(link), {"from": iso(timezone.now() - timedelta(days=30))}).json()
    assert (month["step"], month["source"]) == (3600, "rollup_1h")
    assert [p["bytes_in"] for p in month["points"]] == [125_000_000 * 60] * 2
    hour = client.get(stats_url(link), {"from": iso(start), "to": iso(start + timedelta(hours=1))}).json()
    assert (hour["step"], hour["source"]) == (10, "raw")
    assert len(hour["points"]) == 60
    default = client.get(stats_url(link)).json()  # the last 24 hours
    assert default["step"] == 300
    assert sum(p["bytes_in"] for p in default["points"]) == 125_000_000 * 120


@pytest.mark.parametrize(
    ("params", "field", "needle"),
    [
        ({"from": "2016-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to", "at most 366 days"),
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from", "before"),
        ({"from": "last tuesday"}, "from", "ISO 8601"),
        ({"step": "fast"}, "step", "whole number"),
        ({"step": "0"}, "step", "positive"),
        ({"step": "-300"}, "step", "positive"),
        ({"step": "1"}, "step", "more than 10,000 points"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "step": "61"}, "step", "Raw samples are kept"),
    ],
)
def test_bad_windows_and_steps_are_clear_400s(link, acme, token_client, params, field, needle):
    response = token_client(acme.member, scopes=["read"]).get(stats_url(link), params)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert needle in error["fields"][field][0]


def test_stats_of_another_orgs_connection_are_404(link, globex, token_client):
    assert token_client(globex.member, scopes=["read"]).get(stats_url(link)).status_code == 404


def test_the_z_side_and_a_viewer_may_read_stats(link, cloud, member_factory, token_client):
    assert token_client(cloud.member, scopes=["read"]).get(stats_url(link)).status_code == 200
    assert token_client(member_factory(Role.VIEWER), scopes=["read"]).get(stats_url(link)).status_code == 200


# --- Charts --------------------------------------------------------------------------------------
def figure_of(html: str) -> dict:
    match = re.search(r'<script id="utilisation-figure" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no chart data island"
    return json.loads(match.group(1))


def test_connection_page_shows_the_chart_table_and_picker(link, acme, logged_in):
    fill(link, start=aligned_hour_ago(3), hours=2)
    page = logged_in(acme.member).get(f"/fabric/connections/{link.public_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    figure = figure_of(html)
    assert [trace["name"] for trace in figure["data"]] == ["In", "Out", "Bandwidth"]
    assert figure["data"][0]["y"][0] == pytest.approx(125_000_000 * 8 / 60 / 1e6)
    assert 'src="/static/js/utilisation.js"' in html
    assert "plotly.min.js" in html
    assert html.count('data-window="') == 4
    assert 'data-window="24h"' in html
    assert 'data-testid="utilisation-table"' in html
    # The connection is in service, so the chart refreshes itself.
    assert f'hx-get="/fabric/connections/{link.public_id}/utilisation/?window=24h" hx-trigger="every 60s"' in html


def test_window_picker_partial_and_its_no_javascript_fallback(link, acme, logged_in):
    fill(link, start=aligned_hour_ago(6 * 24), hours=1)
    client = logged_in(acme.member)
    partial = client.get(f"/fabric/connections/{link.public_id}/utilisation/", {"window": "7d"}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    html = partial.content.decode()
    assert "<html" not in html
    assert 'id="utilisation"' in html
    assert 'aria-current="true"' in html.split('data-window="7d"')[1].split(">")[0]
    assert len(figure_of(html)["data"][0]["x"]) == 2  # two 30-minute steps with traffic
    day = client.get(f"/fabric/connections/{link.public_id}/utilisation/", {"window": "24h"})
    assert 'data-testid="utilisation-empty"' in day.content.decode()
    full = client.get(f"/fabric/connections/{link.public_id}/", {"window": "7d"})
    assert len(figure_of(full.content.decode())["data"][0]["x"]) == 2
    bad = client.get(f"/fabric/connections/{link.public_id}/utilisation/", {"window": "10y"})
    assert bad.status_code == 400
    assert "Unknown window" in bad.content.decode()


def test_empty_state_and_no_refresh_for_a_connection_not_in_service(acme, cloud, logged_in):
    pending = active_connection(org=acme.org, a_port=acme.fra, z_port=cloud.fra, state="PENDING_APPROVAL")
    html = logged_in(acme.member).get(f"/fabric/connections/{pending.public_id}/").content.decode()
    assert 'data-testid="utilisation-empty"' in html
    assert "utilisation-figure" not in html
    assert "every 60s" not in html


def test_port_page_sums_its_connections_seen_from_the_port(acme, cloud, link, logged_in):
    inbound = active_connection(org=cloud.org, a_port=cloud.dc, z_port=acme.fra, name="inbound", vlan=140)
    start = aligned_hour_ago(3)
    fill(link, start=start, hours=1, bytes_in=600, bytes_out=60)
    fill(inbound, start=start, hours=1, bytes_in=7, bytes_out=3000)  # Z side: its out is the port's in
    # Five 60-second samples of each connection per 5-minute step.
    html = logged_in(acme.member).get(f"/fabric/ports/{acme.fra.public_id}/").content.decode()
    figure = figure_of(html)
    assert figure["data"][0]["y"][0] == pytest.approx((600 + 3000) * 5 * 8 / 300 / 1e6)
    assert figure["data"][1]["y"][0] == pytest.approx((60 + 7) * 5 * 8 / 300 / 1e6)
    assert figure["data"][2]["y"][0] == 1000  # the port's speed


def test_chart_partials_of_another_org_are_404(link, acme, globex, logged_in):
    client = logged_in(globex.member)
    assert client.get(f"/fabric/connections/{link.public_id}/utilisation/").status_code == 404
    assert client.get(f"/fabric/ports/{acme.fra.public_id}/utilisation/").status_code == 404
