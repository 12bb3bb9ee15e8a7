"""The fabric's "must show" journey in a real browser (Playwright + Debian's chromium).

An enterprise orders a 10G port in Frankfurt, then a 1G connection from it to a provider's port in
Amsterdam, seeing the live quote and latency before confirming; the provider approves in its own
browser; the requester sees the steps complete and the connection turn ACTIVE, raises its bandwidth
and deprovisions it. Also: a rejection with a reason, and a viewer who is shown no buttons.

Tasks run eagerly: with ``live_server`` a workflow runs inside the request, after its commit, so a
page reached by the redirect already shows the outcome. Screenshots go to docs/img/.
"""

import re
from types import SimpleNamespace

import pytest
from playwright.sync_api import Page, expect

from fabric import services
from fabric.choices import PortSpeed, PortState
from fabric.models import Connection, Metro, Port
from hub.choices import OrganizationKind, Role
from tests.fabric.factories import PortFactory
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _change_buttons(page: Page):
    """Buttons in the page's main part, but for the utilisation chart's time-window picker."""
    return _main(page).get_by_role("button").and_(page.locator(":not([data-window])"))


def _main(page: Page):
    return page.get_by_role("main")


def _messages(page: Page):
    return page.locator(".messages")


def _subnav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Fabric").get_by_role("link", name=name, exact=True).click()


def _state(page: Page):
    """The state badge of the connection (``#live``) or port (``#port-status``) detail page."""
    return page.locator("#live .state, #port-status .state")


def _events(page: Page):
    """The target state of each entry of the connection's history, in order."""
    return page.locator("#events li strong")


def _parties():
    """An enterprise with an owner, and a provider with an admin and an ACTIVE 100G port in Amsterdam."""
    services.metros_load()
    requester = MembershipFactory(
        organization=OrganizationFactory(name="Initech", slug="initech"),
        user=UserFactory(full_name="Peter Gibbons", email="peter@initech.example"),
        role=Role.OWNER,
    )
    provider_org = OrganizationFactory(name="GPU Cloud", slug="gpu-cloud", kind=OrganizationKind.PROVIDER)
    provider = MembershipFactory(
        organization=provider_org,
        user=UserFactory(full_name="Grace Cloud", email="grace@gpucloud.example"),
        role=Role.ADMIN,
    )
    am_port = PortFactory(
        organization=provider_org,
        metro=Metro.objects.get(code="AM"),
        name="am-gpu-1",
        speed_mbps=PortSpeed.G100,
        state=PortState.ACTIVE,
    )
    return SimpleNamespace(requester=requester, provider=provider, am_port=am_port)


# --- The journey -----------------------------------------------------------------------------
def test_port_order_connection_request_approval_bandwidth_change_and_deprovision(
    page: Page, second_page: Page, live_server, log_in, screenshot
):
    parties = _parties()

    # 1. The enterprise owner orders a 10 Gbps port in Frankfurt.
    log_in(page, parties.requester.user.email)
    page.locator("header").get_by_role("link", name="Fabric").click()
    _subnav(page, "Ports")
    expect(page.locator("#ports")).to_contain_text("No ports yet.")
    _main(page).get_by_role("button", name="Order a port").click()
    expect(page.get_by_role("heading", name="Order a port")).to_be_visible()
    page.get_by_label("Name:", exact=True).fill("fr-core-1")
    page.get_by_label("Metro:", exact=True).select_option(label="FR · Frankfurt")
    page.get_by_label("Speed:", exact=True).select_option(label="10 Gbps")
    page.get_by_role("button", name="Order port").click()

    expect(page).to_have_url(re.compile(rf"/fabric/ports/{UUID}/$"))
    expect(_messages(page)).to_contain_text("Port fr-core-1 ordered in Frankfurt; it is being provisioned.")
    expect(page.get_by_role("heading", level=1)).to_have_text("fr-core-1")
    expect(_main(page)).to_contain_text("10 Gbps port in Frankfurt (FR)")
    expect(_state(page)).to_have_text("Active")  # the provisioning workflow ran during the request
    steps = page.get_by_role("figure", name="Port provisioning progress")
    expect(steps.locator("figcaption")).to_have_text("Port provisioning · succeeded")
    expect(steps.locator("li")).to_have_count(4)
    expect(steps.locator("li.step-succeeded")).to_have_count(4)
    # Step names are not asserted: steps.html renders "allocate_port" as "Allocateport" (reported).
    screenshot(page, "fabric-port")
    fr_port = Port.objects.get(organization=parties.requester.organization, name="fr-core-1")
    assert (fr_port.state, fr_port.speed_mbps, fr_port.metro.code) == (PortState.ACTIVE, 10_000, "FR")

    # 2. A 1 Gbps connection to the provider's Amsterdam port, priced live before confirming.
    _subnav(page, "Connections")
    expect(page.locator("#connection-table")).to_contain_text("No connections match.")
    _main(page).get_by_role("button", name="Request a connection").click()
    expect(page.get_by_role("heading", name="Request a connection")).to_be_visible()
    plan = page.locator("#plan")
    expect(plan).to_contain_text("appear here as you go")

    page.get_by_label("A side (your port)").select_option(label="FR · fr-core-1 (10,000 Mbps free)")
    expect(plan).to_contain_text("Not yet")  # the Z side is still missing, and the quote says so
    expect(plan.locator(".message.error")).to_contain_text("This field is required.")
    page.get_by_label("Z side:", exact=True).select_option(label="AM · GPU Cloud · am-gpu-1")
    expect(plan).to_contain_text("This request can go ahead")
    bandwidth = page.get_by_label("Bandwidth (Mbps)")
    expect(bandwidth).to_have_value("1000")  # the default
    total = plan.get_by_test_id("monthly-total")
    expect(total).to_have_text("800.00")  # 1 Gbps tier, same region

    bandwidth.fill("5000")  # the quote follows the bandwidth as it is typed
    expect(total).to_have_text("2400.00")
    bandwidth.fill("1000")
    expect(total).to_have_text("800.00")
    expect(plan).to_contain_text("1 Gbps tier, same region (FR to AM)")
    expect(plan).to_contain_text(re.compile(r"Latency FR → AM: about \d+(\.\d+)? ms round trip"))
    expect(plan).to_contain_text("Approvals needed:")
    expect(plan.locator("li")).to_have_text(["GPU Cloud must approve the connection to am-gpu-1."])
    page.get_by_label("Name:", exact=True).fill("fr-am-gpu")
    screenshot(page, "fabric-quote")
    assert not Connection.objects.exists()  # the quotes were dry runs
    page.get_by_role("button", name="Request connection").click()

    expect(page).to_have_url(re.compile(rf"/fabric/connections/{UUID}/$"))
    expect(_messages(page)).to_contain_text("Connection fr-am-gpu requested: waiting for GPU Cloud to approve.")
    expect(page.get_by_role("heading", level=1)).to_have_text("fr-am-gpu")
    expect(_state(page)).to_have_text("Pending approval")
    expect(page.get_by_test_id("pending-on")).to_have_text("Provider (Z side)")
    expect(page.locator("#live")).to_contain_text("Z side chosen on approval")
    expect(_events(page)).to_have_text(["PENDING_APPROVAL"])
    expect(_main(page).get_by_role("button", name="Approve")).to_have_count(0)  # not the requester's call
    expect(_main(page).get_by_role("button", name="Cancel request")).to_be_visible()
    connection = Connection.objects.get(name="fr-am-gpu")
    assert (connection.a_port, connection.z_port, connection.bandwidth_mbps) == (fr_port, parties.am_port, 1000)

    # 3. The provider, in its own browser, approves with a VLAN of its choosing.
    provider = second_page
    log_in(provider, parties.provider.user.email)
    provider.locator("header").get_by_role("link", name="Fabric").click()
    _subnav(provider, "Incoming requests")
    expect(provider.get_by_role("heading", name="Incoming requests")).to_be_visible()
    row = provider.locator("#incoming tbody tr", has_text="fr-am-gpu")
    expect(row).to_contain_text("Initech")
    expect(row).to_contain_text("AM · am-gpu-1")
    expect(row).to_contain_text("1000 Mbps")
    row.get_by_label("Your VLAN").fill("300")
    screenshot(provider, "fabric-incoming")
    row.get_by_role("button", name="Approve").click()
    expect(provider).to_have_url(f"{live_server.url}/fabric/requests/")
    expect(_messages(provider)).to_contain_text("Approved: provisioning has started.")
    expect(provider.locator("#incoming")).to_contain_text("No requests are waiting for you.")

    # 4. The requester sees the connection provisioned and ACTIVE, with its steps and history.
    page.reload()
    expect(_state(page)).to_have_text("Active")
    expect(page.get_by_test_id("pending-on")).to_have_text("Nobody")
    expect(page.locator("#live")).to_contain_text(re.compile(r"A side \d+ · Z side 300"))
    steps = page.get_by_role("figure", name="Connection provisioning progress")
    expect(steps.locator("figcaption")).to_have_text("Connection provisioning · succeeded")
    expect(steps.locator("li.step-succeeded")).to_have_count(5)
    expect(_events(page)).to_have_text(["PENDING_APPROVAL", "APPROVED", "PROVISIONING", "ACTIVE"])
    expect(page.locator("#events li").nth(1)).to_contain_text("grace@gpucloud.example")
    expect(page.locator("#events li").nth(1)).to_contain_text("Approved by GPU Cloud.")
    expect(page.locator("#live")).to_contain_text(re.compile(r"Latency \(estimate\)\s*\d+(\.\d+)? ms"))
    expect(page.locator("#live")).to_contain_text("$800.00")
    expect(_main(page).get_by_role("button", name="Cancel request")).to_have_count(0)
    screenshot(page, "fabric-connection")

    _subnav(page, "Connections")
    row = page.locator("#connection-table tbody tr", has_text="fr-am-gpu")
    expect(row).to_contain_text("FR · fr-core-1")
    expect(row).to_contain_text("AM · GPU Cloud · am-gpu-1")
    expect(row).to_contain_text("VLAN 300")
    expect(row).to_contain_text("1000 Mbps")
    expect(row.locator(".state")).to_have_text("Active")
    screenshot(page, "fabric-connections")
    row.get_by_role("link", name="fr-am-gpu").click()

    # 5. Raise the bandwidth to 2 Gbps.
    change = _main(page).locator("article", has=page.get_by_text("Change bandwidth", exact=True))
    change.get_by_label("New bandwidth (Mbps)").fill("2000")
    change.get_by_role("button", name="Change").click()
    expect(_messages(page)).to_contain_text("Bandwidth change started.")
    expect(_state(page)).to_have_text("Active")
    expect(page.locator("#live")).to_contain_text("2000 Mbps")
    expect(page.locator("#live")).not_to_contain_text("changing to")
    expect(page.locator("#live")).to_contain_text("$1280.00")  # the 2 Gbps tier
    steps = page.get_by_role("figure", name="Bandwidth change progress")
    expect(steps.locator("figcaption")).to_have_text("Bandwidth change · succeeded")
    expect(steps.locator("li.step-succeeded")).to_have_count(3)
    expect(_events(page)).to_have_text(
        ["PENDING_APPROVAL", "APPROVED", "PROVISIONING", "ACTIVE", "MODIFYING", "ACTIVE"]
    )
    expect(page.locator("#events li").last).to_contain_text("Bandwidth now 2,000 Mbps.")

    # 6. Deprovision it.
    _main(page).get_by_role("button", name="Deprovision").click()
    expect(_messages(page)).to_contain_text("Deprovisioning started.")
    expect(_state(page)).to_have_text("Deprovisioned")
    expect(page.get_by_test_id("pending-on")).to_have_text("Nobody")
    steps = page.get_by_role("figure", name="Connection deprovisioning progress")
    expect(steps.locator("li.step-succeeded")).to_have_count(3)
    expect(_events(page).last).to_have_text("DEPROVISIONED")
    expect(page.locator("#events li").last).to_contain_text("Deprovisioned; VLANs and bandwidth released.")
    expect(page.locator("section.actions button")).to_have_count(0)  # nothing left to do

    connection.refresh_from_db()
    fr_port.refresh_from_db()
    parties.am_port.refresh_from_db()
    assert (connection.state, connection.bandwidth_mbps, connection.z_vlan) == ("DEPROVISIONED", 2000, 300)
    assert fr_port.committed_mbps == parties.am_port.committed_mbps == 0


# --- Rejection -------------------------------------------------------------------------------
def test_provider_rejects_with_a_reason_the_requester_sees(page: Page, second_page: Page, live_server, log_in):
    parties = _parties()
    fr_port = PortFactory(
        organization=parties.requester.organization,
        metro=Metro.objects.get(code="FR"),
        name="fr-core-1",
        speed_mbps=PortSpeed.G10,
    )
    plan = services.connection_request(
        membership=parties.requester,
        name="fr-am-burst",
        a_port=fr_port,
        z_port=parties.am_port,
        bandwidth_mbps=1000,
    )
    connection = plan.connections[0]
    reason = "Amsterdam is full until June; try Frankfurt."

    provider = second_page
    log_in(provider, parties.provider.user.email)
    provider.goto(f"{live_server.url}/fabric/requests/")
    row = provider.locator("#incoming tbody tr", has_text="fr-am-burst")
    reject = row.get_by_role("button", name="Reject")
    reject.click()  # no reason: the browser keeps the form back
    assert row.get_by_label("Reason").evaluate("input => input.validity.valueMissing")
    expect(_messages(provider)).to_have_count(0)
    row.get_by_label("Reason").fill(reason)
    reject.click()
    expect(_messages(provider)).to_contain_text("Request rejected; the requester sees your reason.")
    expect(provider.locator("#incoming")).to_contain_text("No requests are waiting for you.")

    log_in(page, parties.requester.user.email)
    page.goto(f"{live_server.url}/fabric/connections/{connection.public_id}/")
    expect(_state(page)).to_have_text("Rejected")
    expect(page.get_by_test_id("pending-on")).to_have_text("Nobody")
    expect(page.locator("#live .message.error")).to_have_text(reason)
    expect(_events(page)).to_have_text(["PENDING_APPROVAL", "REJECTED"])
    expect(page.locator("#events li").last).to_contain_text(f"Rejected: {reason}")
    expect(page.locator("#events li").last).to_contain_text("grace@gpucloud.example")
    expect(page.locator("section.actions button")).to_have_count(0)

    _subnav(page, "Connections")
    expect(page.locator("#connection-table tbody tr", has_text="fr-am-burst").locator(".state")).to_have_text(
        "Rejected"
    )
    fr_port.refresh_from_db()
    assert fr_port.committed_mbps == 0  # the reservation was released


# --- Viewers ---------------------------------------------------------------------------------
def test_viewers_see_the_fabric_but_no_buttons_to_change_it(page: Page, second_page: Page, live_server, log_in):
    parties = _parties()
    org = parties.requester.organization
    fr_port = PortFactory(organization=org, metro=Metro.objects.get(code="FR"), name="fr-core-1")
    active = services.connection_request(
        membership=parties.requester,
        name="fr-fr-own",
        a_port=fr_port,
        z_port=PortFactory(organization=org, metro=Metro.objects.get(code="FR"), name="fr-core-2"),
        bandwidth_mbps=100,
    ).connections[0]
    pending = services.connection_request(
        membership=parties.requester, name="fr-am-gpu", a_port=fr_port, z_port=parties.am_port, bandwidth_mbps=100
    ).connections[0]
    active.refresh_from_db()
    assert active.state == "ACTIVE"  # own-to-own: provisioned at once
    viewer = MembershipFactory(organization=org, role=Role.VIEWER, user=UserFactory(email="milton@initech.example"))
    provider_viewer = MembershipFactory(
        organization=parties.provider.organization, role=Role.VIEWER, user=UserFactory(email="bob@gpucloud.example")
    )

    log_in(page, viewer.user.email)
    page.locator("header").get_by_role("link", name="Fabric").click()
    expect(page.locator("#connection-table tbody tr")).to_have_count(2)
    expect(_main(page).get_by_role("button", name="Request a connection")).to_have_count(0)
    for name, state in (("fr-fr-own", "Active"), ("fr-am-gpu", "Pending approval")):
        page.goto(f"{live_server.url}/fabric/connections/")
        page.locator("#connection-table").get_by_role("link", name=name).click()
        expect(_state(page)).to_have_text(state)
        expect(_change_buttons(page)).to_have_count(0)
        expect(page.get_by_label("New bandwidth (Mbps)")).to_have_count(0)
    _subnav(page, "Ports")
    expect(page.locator("#ports tbody tr")).to_have_count(2)
    expect(_main(page).get_by_text("Order a port")).to_have_count(0)
    expect(_main(page).get_by_text("Order your first port")).to_have_count(0)
    page.get_by_role("link", name="fr-core-1").click()
    expect(_state(page)).to_have_text("Active")
    expect(_change_buttons(page)).to_have_count(0)  # no settings, no decommission
    response = page.goto(f"{live_server.url}/fabric/connections/new/")
    assert response.status == 403

    log_in(second_page, provider_viewer.user.email)
    second_page.goto(f"{live_server.url}/fabric/requests/")
    row = second_page.locator("#incoming tbody tr", has_text="fr-am-gpu")
    expect(row).to_contain_text("Initech")
    expect(row.get_by_role("button")).to_have_count(0)
    expect(second_page.get_by_label("Your VLAN")).to_have_count(0)
    second_page.goto(f"{live_server.url}/fabric/connections/{pending.public_id}/")
    expect(_state(second_page)).to_have_text("Pending approval")
    expect(_change_buttons(second_page)).to_have_count(0)
