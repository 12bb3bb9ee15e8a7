"""The topology's "must show" journey in a real browser (Playwright + Debian's chromium).

The demo organization (``fabric.demo``, which ``seed_demo`` runs: Acme with ports in Frankfurt, New York, Washington DC and
Singapore) opens **Topology**: the map shows its network across three continents; the connection
still waiting for the provider's approval is drawn differently from the active ones; clicking an
active connection opens its page with the live utilisation chart. The logical view groups the same
network by metro. Filters swap the figure through htmx. Screenshots go to docs/img/topology-*.png.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from fabric import services
from fabric.demo import seed_fabric_demo
from fabric.models import Connection, Port
from fabric.services import metros_load
from fabric.telemetry import rollup_pending, telemetry_ingest
from hub.choices import OrganizationKind, Role
from hub.models import Membership
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# The drawn figure (plotly keeps it on the container) and what its SVG shows.
FIGURE_STATE = """(div) => div.data
  .filter((t) => t.meta && t.meta.role === "connections")
  .map((t) => ({state: t.meta.state, dash: t.line.dash, color: t.line.color, name: t.name, legend: t.showlegend}))"""
DRAWN_DASHES = """(div) => Array.from(div.querySelectorAll("g.trace.scattergeo")).flatMap((g) => {
  const trace = g.__data__ && g.__data__[0] && g.__data__[0].trace;
  if (!trace || !trace.meta || trace.meta.role !== "connections") return [];
  return Array.from(g.querySelectorAll("path.js-line")).map((p) => [trace.meta.state, p.style.strokeDasharray || ""]);
})"""
MARKER_CENTRE = """(div, name) => {
  for (const g of div.querySelectorAll("g.trace.scattergeo")) {
    const trace = g.__data__ && g.__data__[0] && g.__data__[0].trace;
    if (!trace || !trace.meta || trace.meta.role !== "connection-links") continue;
    for (const point of g.querySelectorAll("path.point")) {
      if (trace.customdata[point.__data__.i][1] === name) {
        const box = point.getBoundingClientRect();
        return [box.x + box.width / 2, box.y + box.height / 2];
      }
    }
  }
  return null;
}"""


def _demo_with_traffic():
    """The fabric part of the demo (``fabric.demo``, as ``seed_demo`` runs it), provisioned (tasks run
    eagerly), plus an hour of traffic on one connection. Returns Acme's owner."""
    metros_load()
    orgs = {
        slug: OrganizationFactory(slug=slug, name=name, kind=kind)
        for slug, name, kind in (
            ("acme", "Acme Corporation", OrganizationKind.ENTERPRISE),
            ("globex", "Globex", OrganizationKind.ENTERPRISE),
            ("demo-provider", "Demo Provider", OrganizationKind.PROVIDER),
        )
    }
    for slug, email in (
        ("acme", "owner@acme.example"),
        ("globex", "owner@globex.example"),
        ("demo-provider", "admin@demo-provider.example"),
    ):
        MembershipFactory(organization=orgs[slug], user=UserFactory(email=email), role=Role.OWNER)
    seed_fabric_demo()
    owner = Membership.objects.get(user__email="owner@acme.example")
    acme, provider = orgs["acme"], orgs["demo-provider"]
    # The demo's transatlantic link carries the traffic; one more long-haul request to the provider.
    backbone = Connection.objects.get(organization=acme, name="acme-fr-ny-transatlantic")
    services.connection_request(
        membership=owner,
        name="acme-sg-fr-replication",
        a_port=Port.objects.get(organization=acme, name="sg-edge-1"),
        z_port=Port.objects.get(organization=provider, name="fr-gpu-1"),
        bandwidth_mbps=500,
    )
    now = timezone.now()
    samples = [
        {
            "time": (now - timedelta(minutes=minute)).isoformat(),
            "interval_seconds": 60,
            "bytes_in": 2_000_000_000 + 20_000_000 * (minute % 7),
            "bytes_out": 4_500_000_000 + 50_000_000 * (minute % 5),
            "packets_in": 3_000_000,
            "packets_out": 7_000_000,
        }
        for minute in range(1, 60)
    ]
    telemetry_ingest(membership=owner, connection=backbone, samples=samples)
    rollup_pending()
    return owner


def test_the_demo_map_shows_the_network_states_and_opens_a_connection(page: Page, live_server, log_in, screenshot):
    owner = _demo_with_traffic()
    states = dict(Connection.objects.filter(organization=owner.organization).values_list("name", "state"))
    assert states["acme-sg-gpu-burst"] == "PENDING_APPROVAL"
    assert states["acme-dc-gpu-inference"] == "ACTIVE"

    log_in(page, "owner@acme.example")
    page.locator("header").get_by_role("link", name="Topology").click()
    expect(page).to_have_url(f"{live_server.url}/fabric/topology/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Network map")
    figure = page.locator("#topology-figure")
    # The world map drew, from our own static files (plotly.js is 4.8 MB: give a busy machine time).
    expect(figure.locator(".geolayer .layer.land path")).to_be_visible(timeout=30_000)
    expect(figure.locator("g.trace.scattergeo path.point").first).to_be_visible()

    # Three continents: Frankfurt, New York/Washington and Singapore, with their ports.
    metros = figure.evaluate(
        """(div) => { const t = div.data.find((t) => t.meta && t.meta.role === "metros"); return t.text; }"""
    )
    assert {"FR", "NY", "DC", "SG"} <= set(metros)
    expect(page.locator("#topology-summary")).to_contain_text("7 connections")

    # Pending is drawn differently from active: dotted and in another colour, in the figure and the SVG.
    traces = {t["state"]: t for t in figure.evaluate(FIGURE_STATE)}
    assert traces["ACTIVE"]["dash"] == "solid"
    assert traces["PENDING_APPROVAL"]["dash"] == "dot"
    assert traces["ACTIVE"]["color"] != traces["PENDING_APPROVAL"]["color"]
    dashes = dict(figure.evaluate(DRAWN_DASHES))
    assert dashes["ACTIVE"] in ("", "none")
    assert dashes["PENDING_APPROVAL"] not in ("", "none")
    legend = figure.locator(".legend .legendtext")
    expect(legend.filter(has_text="Active (in service)")).to_have_count(1)
    expect(legend.filter(has_text="Pending approval (waiting for approval)")).to_have_count(1)

    # The table alternative holds the same connections.
    page.get_by_text("Table of the same data (7 connections)").click()
    table = page.locator("#topology-connections")
    expect(table.locator("tbody tr")).to_have_count(7)
    expect(table.locator("tbody tr").first).to_contain_text("acme-sg-gpu-burst")  # pending first
    expect(table.locator("tbody tr").first).to_contain_text("Pending approval · waiting on provider")
    page.get_by_text("Table of the same data (7 connections)").click()
    screenshot(page, "topology-map")

    # Filters swap the figure through htmx: only the pending request is left, and the URL follows.
    page.get_by_label("State").select_option(label="Pending approval")
    expect(page).to_have_url(re.compile(r"/fabric/topology/\?.*state=PENDING_APPROVAL"))
    expect(page.locator("#topology-summary")).to_contain_text("1 connection ")
    expect(figure.locator(".legend .legendtext")).to_contain_text(["Pending approval (waiting for approval)"])
    page.get_by_label("State").select_option(label="Live (all but ended)")
    expect(page.locator("#topology-summary")).to_contain_text("7 connections")

    # Clicking an active connection on the map opens its page with the utilisation chart.
    figure = page.locator("#topology-figure")
    expect(figure.locator("g.trace.scattergeo path.point").first).to_be_visible()
    centre = figure.evaluate(MARKER_CENTRE, "acme-fr-ny-transatlantic")
    assert centre is not None, "the connection's marker is not on the map"
    x, y = centre
    page.mouse.move(x, y)
    expect(page.locator(".hoverlayer")).to_contain_text("acme-fr-ny-transatlantic")
    page.mouse.click(x, y)
    expect(page).to_have_url(re.compile(rf"/fabric/connections/{UUID}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("acme-fr-ny-transatlantic")
    chart = page.locator("[data-utilisation-chart]")
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(page.get_by_test_id("p95")).to_contain_text("Mbps")


def test_the_logical_view_groups_the_demo_network_by_metro(page: Page, live_server, log_in, screenshot):
    _demo_with_traffic()
    log_in(page, "owner@acme.example")
    page.locator("header").get_by_role("link", name="Topology").click()
    page.get_by_role("navigation", name="Topology").get_by_role("link", name="Logical view").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Logical view")
    figure = page.locator("#topology-figure")
    expect(figure.locator("g.trace.scatter .point").first).to_be_visible(timeout=30_000)
    expect(figure.locator(".annotation-text").filter(has_text="Frankfurt")).to_have_count(1)
    legend = figure.locator(".legend .legendtext")
    expect(legend.filter(has_text="My ports")).to_have_count(1)
    expect(legend.filter(has_text="Provider endpoints")).to_have_count(1)
    expect(legend.filter(has_text="Pending approval (waiting for approval)")).to_have_count(1)
    screenshot(page, "topology-logical")
