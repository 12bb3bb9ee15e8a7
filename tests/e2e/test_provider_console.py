"""The provider console's "must show" journey in a real browser (Playwright + Debian's chromium).

A GPU cloud's admin opens the console, creates an offering with a bad attribute and sees the error next
to the field, fixes it, adds an access point at its Frankfurt port, publishes it and finds it in the
catalog search at once. Then it approves a customer's waiting request, choosing the VLAN. A customer
asks the placement advisor where to run 8x H100 near Frankfurt. Screenshots go to docs/img/console-*.png.
"""

import re
from types import SimpleNamespace

import pytest
from playwright.sync_api import Page, expect

from fabric import services as fabric_services
from fabric.choices import ConnectionState, PortSpeed, PortState
from fabric.models import Connection, Metro, Port
from hub.choices import OrganizationKind, Role
from marketplace import services
from marketplace.choices import OfferingStatus
from marketplace.models import Offering
from tests.fabric.factories import PortFactory
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _main(page: Page):
    return page.get_by_role("main")


def _messages(page: Page):
    return page.locator(".messages")


def _console_nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Provider console").get_by_role("link", name=name, exact=True).click()


def _parties():
    """A GPU cloud (admin, profile, 10G ports in Frankfurt and Amsterdam) with one published listing that a
    customer has ordered (waiting for approval), and the customer with a Frankfurt port."""
    fabric_services.metros_load()
    cloud_org = OrganizationFactory(name="Helios Cloud", slug="helios", kind=OrganizationKind.PROVIDER)
    admin = MembershipFactory(
        organization=cloud_org,
        user=UserFactory(full_name="Hana Helios", email="hana@helios.example"),
        role=Role.ADMIN,
    )
    services.provider_profile_upsert(membership=admin, name="Helios Cloud", hq_country="DE", certifications=["SOC 2"])
    fra = PortFactory(
        organization=cloud_org,
        metro=Metro.objects.get(code="FR"),
        name="helios-fra-1",
        speed_mbps=PortSpeed.G10,
        state=PortState.ACTIVE,
    )
    PortFactory(
        organization=cloud_org,
        metro=Metro.objects.get(code="AM"),
        name="helios-ams-1",
        speed_mbps=PortSpeed.G10,
        state=PortState.ACTIVE,
    )
    storage = services.offering_create(
        membership=admin,
        category="DATA_PLATFORM",
        name="Helios Object Storage",
        price_amount="0.02",
        price_unit="GB_MONTH",
        attributes={"storage_type": "object"},
    )
    storage_ap = services.access_point_create(
        membership=admin, offering=storage, port=fra, allowed_bandwidths_mbps=[1000, 10000]
    )
    storage = services.offering_publish(membership=admin, offering=storage)

    customer_org = OrganizationFactory(name="Initech", slug="initech")
    customer = MembershipFactory(
        organization=customer_org,
        user=UserFactory(full_name="Peter Gibbons", email="peter@initech.example"),
        role=Role.OWNER,
    )
    customer_port = PortFactory(
        organization=customer_org,
        metro=Metro.objects.get(code="FR"),
        name="initech-fra",
        speed_mbps=PortSpeed.G10,
        state=PortState.ACTIVE,
    )
    order = services.order_create(
        membership=customer,
        offering=storage,
        access_point=storage_ap,
        a_port=customer_port,
        bandwidth_mbps=1000,
        purchase_order="PO-4711",
    ).order
    return SimpleNamespace(admin=admin, customer=customer, order=order)


def test_provider_lists_publishes_finds_and_approves(page: Page, live_server, log_in, screenshot):
    parties = _parties()

    # 1. The dashboard: one listing, one request waiting, no active customer yet.
    log_in(page, parties.admin.user.email)
    page.locator("header").get_by_role("link", name="Provider console").click()
    expect(page).to_have_url(f"{live_server.url}/provider/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Provider console")
    expect(page.locator("#tile-listings")).to_contain_text("1 published")
    expect(page.locator("#tile-incoming .kpi")).to_have_text("1")
    expect(page.locator("#tile-customers .kpi")).to_have_text("0")
    expect(_main(page)).to_contain_text("Helios Object Storage")  # the request waiting for us
    screenshot(page, "console-dashboard")

    # 2. A new GPU offering with a bad attribute: a clear error next to the field, nothing saved.
    _console_nav(page, "Offerings")
    _main(page).get_by_role("button", name="New offering").click()
    _main(page).get_by_role("button", name="GPU cloud").click()
    expect(page.get_by_role("group", name="GPU cloud specifications")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("Helios 8x H100 SXM")
    page.get_by_label("Summary").fill("Eight H100 SXM GPUs with NVLink, next to your data in Frankfurt")
    page.get_by_label("Price", exact=True).fill("21.50")
    page.get_by_label("Price unit").select_option(label="per hour")
    page.get_by_label("Compliance").fill("SOC 2, GDPR")
    page.get_by_label("Accelerator (required)").fill("H100")
    page.get_by_label("GPU count (required)").fill("0")
    page.get_by_label("GPU memory (GB) (required)").fill("80")
    page.get_by_role("button", name="Create draft").click()

    expect(page.get_by_role("alert")).to_have_text("Nothing was saved: correct the field marked below.")
    gpu_count = page.get_by_label("GPU count (required)")
    expect(gpu_count).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#attr_gpu_count-errors")).to_have_text("gpu_count must be at least 1.")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Helios 8x H100 SXM")  # the rest is kept
    screenshot(page, "console-offering-error")
    assert not Offering.objects.filter(name="Helios 8x H100 SXM").exists()

    # 3. Fixed: a draft, which cannot be published before it has an access point.
    gpu_count.fill("8")
    page.get_by_role("button", name="Create draft").click()
    expect(page).to_have_url(re.compile(rf"/provider/offerings/{UUID}/$"))
    expect(_messages(page)).to_contain_text("Created Helios 8x H100 SXM as a draft.")
    expect(page.locator("#offering-status")).to_have_text("Draft")
    expect(page.locator("#publish-hint")).to_contain_text("Publishing needs at least one access point")
    preview = page.locator("#preview")
    expect(preview).to_contain_text("Customers cannot see this draft offering")
    expect(preview).to_contain_text("21.5 USD per hour")
    expect(preview.get_by_role("row", name="GPU count 8")).to_be_visible()
    _main(page).get_by_role("button", name="Publish").click()
    expect(_messages(page)).to_contain_text(
        "Not published: Add at least one access point (a port where customers can reach it) before publishing."
    )
    expect(page.locator("#offering-status")).to_have_text("Draft")

    # 4. An access point at the Frankfurt port, then publish.
    add = page.locator("#add-access-point")
    add.get_by_label("Your port").select_option(label="FR · helios-fra-1 (10 Gbps)")
    add.get_by_label("10 Gbps").check()  # 1 Gbps is ticked already
    add.get_by_label("Manual: the provider approves each request").check()
    add.get_by_role("button", name="Add access point").click()
    expect(_messages(page)).to_contain_text("Helios 8x H100 SXM is now reachable in Frankfurt.")
    expect(page.locator("#access-points tbody tr")).to_have_count(1)
    expect(page.locator("#access-points tbody")).to_contain_text("1 Gbps, 10 Gbps")
    _main(page).get_by_role("button", name="Publish").click()
    expect(_messages(page)).to_contain_text("Helios 8x H100 SXM is published: customers find it in the catalog now.")
    expect(page.locator("#offering-status")).to_have_text("Published")
    expect(_main(page).get_by_role("button", name="Publish")).to_have_count(0)  # only what the state allows
    expect(_main(page).get_by_role("button", name="Retire")).to_be_visible()
    assert Offering.objects.get(name="Helios 8x H100 SXM").status == OfferingStatus.PUBLISHED

    # 5. Found at once in the catalog search.
    page.goto(f"{live_server.url}/marketplace/?q=Helios+H100")
    expect(_main(page)).to_contain_text("Helios 8x H100 SXM")

    # 6. The customer's request: approve it with a VLAN of our choosing (the lowest free one is suggested).
    page.goto(f"{live_server.url}/provider/")
    _console_nav(page, "Incoming requests")
    row = page.locator("#incoming tbody tr", has_text="Helios Object Storage")
    expect(row).to_contain_text("Initech")
    expect(row).to_contain_text("PO-4711")
    expect(row).to_contain_text("FR · helios-fra-1")
    vlan = row.get_by_role("spinbutton")
    expect(vlan).to_have_value("100")
    vlan.fill("321")
    screenshot(page, "console-requests")
    row.get_by_role("button", name="Approve").click()
    expect(_messages(page)).to_contain_text("for Initech on VLAN 321; provisioning has started.")
    expect(page.locator("#incoming")).to_contain_text("No requests are waiting for you.")
    connection = Connection.objects.get(pk=parties.order.connection_id)
    assert (connection.z_vlan, connection.state) == (321, ConnectionState.ACTIVE)  # tasks run eagerly

    # 7. The customer shows up, with its active connection and the revenue it brings.
    _console_nav(page, "Customers")
    row = page.locator("#customers tbody tr", has_text="Initech")
    expect(row.locator("td").nth(2)).to_have_text("1")
    expect(row.locator("td").nth(3)).to_have_text("0.00 USD")  # storage is billed on use, not estimated


def test_customer_asks_the_advisor(page: Page, live_server, log_in, screenshot):
    parties = _parties()
    admin = parties.admin
    fra, ams = Port.objects.get(name="helios-fra-1"), Port.objects.get(name="helios-ams-1")
    for name, price, accelerator, gpus, port in (
        ("Helios 8x H100 SXM", "21.50", "H100", 8, fra),
        ("Helios 8x H100 Amsterdam", "19.90", "H100", 8, ams),
        ("Helios 4x H100", "11.00", "H100", 4, fra),
        ("Helios 8x A100", "12.00", "A100", 8, fra),
    ):
        offering = services.offering_create(
            membership=admin,
            category="GPU_CLOUD",
            name=name,
            price_amount=price,
            price_unit="HOUR",
            attributes={"accelerator": accelerator, "gpu_count": gpus, "gpu_memory_gb": 80},
        )
        services.access_point_create(membership=admin, offering=offering, port=port, allowed_bandwidths_mbps=[1000])
        services.offering_publish(membership=admin, offering=offering)

    log_in(page, parties.customer.user.email)
    page.goto(f"{live_server.url}/marketplace/advisor/")
    form = page.locator("#advisor-form")
    expect(form.get_by_label("My data is in")).to_have_value("FR")  # the metro of my port
    form.get_by_label("Accelerator").fill("H100")
    form.get_by_label("At least GPUs per instance").fill("8")
    form.get_by_label("Latency budget (ms, round trip)").fill("20")
    form.get_by_label("EU", exact=True).check()
    form.get_by_role("button", name="Advise").click()

    expect(page.locator("#advice h2").first).to_have_text("2 offerings meet your requirements")
    ranked = page.locator("#ranked tbody tr")
    expect(ranked).to_have_count(2)
    # Amsterdam: 19.90 x 730 h + 800 (1 Gbps, same region) beats Frankfurt: 21.50 x 730 h + 500 (same metro).
    expect(ranked.nth(0)).to_contain_text("Helios 8x H100 Amsterdam")
    expect(ranked.nth(0)).to_contain_text("15,327.00")
    expect(ranked.nth(1)).to_contain_text("Helios 8x H100 SXM")
    expect(ranked.nth(1)).to_contain_text("16,195.00")
    excluded = page.locator("#excluded tbody")
    expect(excluded).to_contain_text("too few GPUs: 4 GPUs per instance; at least 8 needed.")
    expect(excluded).to_contain_text("wrong accelerator: Offers A100, not H100.")
    screenshot(page, "console-advisor")
