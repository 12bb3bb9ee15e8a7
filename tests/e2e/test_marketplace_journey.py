"""The marketplace's "must show" journey for an enterprise, in a real browser with a real Celery worker.

Acme's owner searches the catalog for "H100", narrows it to EMEA, sorts by latency from the Frankfurt
port, compares three offerings, opens one and connects to it after seeing the quote. The provider
approves the request in its console, in its own browser; a real worker provisions the connection and
the order turns ACTIVE in My orders. Screenshots go to docs/img/catalog-*.png.
"""

import re
from types import SimpleNamespace

import pytest
from playwright.sync_api import Page, expect

from fabric.choices import ConnectionState, PortSpeed, PortState
from fabric.models import Metro
from fabric.services import metros_load
from hub.choices import OrganizationKind, Role
from marketplace import services
from marketplace.choices import ApprovalMode, Category, PriceUnit
from marketplace.models import Order
from tests.conftest import wait_for
from tests.fabric.factories import PortFactory
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
GPU = {"vcpus": 208, "ram_gb": 1800}


def _provider(slug: str, name: str, metros: list[str], email: str):
    org = OrganizationFactory(name=name, slug=slug, kind=OrganizationKind.PROVIDER)
    member = MembershipFactory(
        organization=org, role=Role.ADMIN, user=UserFactory(full_name=f"{name} Admin", email=email)
    )
    services.provider_profile_upsert(membership=member, name=name, certifications=["SOC 2"], hq_country="US")
    ports = {
        code: PortFactory(
            organization=org,
            metro=Metro.objects.get(code=code),
            name=f"{slug}-{code.lower()}-1",
            speed_mbps=PortSpeed.G100,
            state=PortState.ACTIVE,
        )
        for code in metros
    }
    return SimpleNamespace(org=org, member=member, ports=ports)


def _listing(provider, metro, name, price, accelerator, count, memory, approval=ApprovalMode.MANUAL, **fields):
    offering = services.offering_create(
        membership=provider.member,
        category=Category.GPU_CLOUD,
        name=name,
        price_amount=price,
        price_unit=PriceUnit.HOUR,
        attributes={"accelerator": accelerator, "gpu_count": count, "gpu_memory_gb": memory, **GPU},
        summary=f"{count}x {accelerator} ({memory} GB each)",
        **fields,
    )
    services.access_point_create(
        membership=provider.member,
        offering=offering,
        port=provider.ports[metro],
        allowed_bandwidths_mbps=[1000, 10000],
        approval_mode=approval,
    )
    return services.offering_publish(membership=provider.member, offering=offering)


def _world():
    """The demo enterprise (Acme, with a 10G port in Frankfurt) and GPU clouds in four regions."""
    metros_load()
    acme = MembershipFactory(
        organization=OrganizationFactory(name="Acme", slug="acme"),
        user=UserFactory(full_name="Acme Owner", email="owner@acme.example"),
        role=Role.OWNER,
    )
    PortFactory(
        organization=acme.organization,
        metro=Metro.objects.get(code="FR"),
        name="acme-fra-1",
        speed_mbps=PortSpeed.G10,
        state=PortState.ACTIVE,
    )
    lam = _provider("lambda", "Lambda", ["FR", "AM"], "admin@lambda.example")
    runpod = _provider("runpod", "RunPod", ["SG"], "admin@runpod.example")
    aws = _provider("aws", "Amazon Web Services", ["DC"], "admin@aws.example")
    gcp = _provider("gcp", "Google Cloud", ["LD"], "admin@gcp.example")
    _listing(lam, "FR", "8x H100 SXM", "23.92", "H100", 8, 80, compliance=["SOC 2", "ISO 27001"])
    _listing(lam, "AM", "1x H100 PCIe", "2.49", "H100", 1, 80)
    _listing(lam, "FR", "8x A100 80GB", "14.32", "A100", 8, 80)
    _listing(runpod, "SG", "8x H100 SXM Secure Cloud", "21.52", "H100", 8, 80, approval=ApprovalMode.AUTOMATIC)
    _listing(aws, "DC", "8x H100 · p5.48xlarge", "55.04", "H100", 8, 80)
    _listing(gcp, "LD", "8x H100 · a3-highgpu-8g", "88.25", "H100", 8, 80)
    return SimpleNamespace(acme=acme, provider=lam)


def _cards(page: Page):
    return page.locator("#catalog-body .offering-card")


def test_search_narrow_sort_compare_connect_approve_and_the_order_turns_active(
    page: Page, second_page: Page, live_server, log_in, screenshot, celery_worker
):
    _world()
    log_in(page, "owner@acme.example")

    # 1. The catalog, from the menu; search "H100" (the results follow the typing, the URL too).
    page.locator("header").get_by_role("link", name="Marketplace").click()
    expect(page.get_by_role("heading", name="Catalog", level=1)).to_be_visible()
    # The heading can show before htmx (a deferred script) has bound the search box: typing then
    # would go unheard, as it did in a cold CI run.
    page.wait_for_load_state("load")
    expect(page.get_by_test_id("result-count")).to_contain_text("6 offerings")
    expect(page.get_by_test_id("price-note").first).to_contain_text("public list prices in USD as of the data's date")
    page.get_by_label("Search the catalog").fill("H100")
    expect(page.get_by_test_id("result-count")).to_contain_text("5 offerings for “H100”")
    expect(page).to_have_url(re.compile(r"/marketplace/\?q=H100"))
    expect(_cards(page).filter(has_text="8x A100 80GB")).to_have_count(0)

    # 2. Narrow to EMEA with the region facet, whose counts respect the search.
    region = page.locator('fieldset[data-facet="region"]')
    expect(region.get_by_text("Europe, Middle East and Africa")).to_contain_text("3")
    region.get_by_label(re.compile("Europe, Middle East and Africa")).check()
    expect(page.get_by_test_id("result-count")).to_contain_text("3 offerings")
    expect(page).to_have_url(re.compile(r"region=EMEA"))
    expect(page.locator('fieldset[data-facet="region"]')).to_contain_text("Asia-Pacific")  # still offered

    # 3. Sort by latency from my Frankfurt port: the Frankfurt listing first, London and Amsterdam after.
    page.get_by_label("Latency from").select_option("FR")
    page.get_by_label("Sort").select_option("latency")
    expect(page.get_by_test_id("result-count")).to_contain_text("nearest to FR first")
    expect(page).to_have_url(re.compile(r"sort=latency"))
    expect(_cards(page).first).to_contain_text("8x H100 SXM")
    expect(_cards(page).first.get_by_test_id("latency")).to_have_text("≈ 1.0 ms from FR")
    screenshot(page, "catalog-search")

    # 4. Compare all three; the selection lives in the URL.
    for i in range(3):
        _cards(page).nth(i).get_by_label("Compare").check()
        expect(page.get_by_test_id("compare-link")).to_have_text(f"Compare {i + 1} selected")
    page.get_by_test_id("compare-link").click()
    expect(page).to_have_url(re.compile(rf"/marketplace/compare/\?ids={UUID}%2C{UUID}%2C{UUID}$"))
    table = page.locator("#compare")
    expect(table.locator("thead th[scope=col]")).to_have_count(3)
    latency_row = table.locator("tr", has_text="Latency from FR (Frankfurt)")
    expect(latency_row.locator("td.best")).to_have_text(["1 ms"])
    expect(table.locator("tr", has_text="Price per GPU-hour").locator("td.best")).to_have_count(1)
    screenshot(page, "catalog-compare")

    # 5. The Frankfurt offering's page, then Connect: the quote before confirming.
    table.get_by_role("link", name="8x H100 SXM", exact=True).click()
    expect(page.get_by_role("heading", name="8x H100 SXM", level=1)).to_be_visible()
    expect(page.get_by_test_id("price")).to_have_text("23.92 USD per hour")
    expect(page.locator("#latency")).to_contain_text("FR · acme-fra-1")
    reach_map = page.locator(".offering-map")
    expect(reach_map).not_to_contain_text("could not be drawn")
    expect(reach_map.locator(".main-svg").first).to_be_attached(timeout=30_000)  # plotly drew the map
    screenshot(page, "catalog-offering")
    page.get_by_test_id("connect").click()
    expect(page.get_by_role("heading", name="Connect to 8x H100 SXM")).to_be_visible()
    quote = page.locator("#quote")
    expect(quote).to_contain_text("Your quote")  # fetched as the page opened
    expect(quote).to_contain_text("8x H100 SXM: 23.92 USD per hour, billed by the provider on use")
    expect(quote.get_by_test_id("quote-latency")).to_contain_text("Latency FR → FR")
    expect(quote).to_contain_text("Lambda must approve")
    total_1g = quote.get_by_test_id("monthly-total").inner_text()
    page.get_by_label("Bandwidth").select_option("10000")
    expect(quote.get_by_test_id("monthly-total")).not_to_have_text(total_1g)  # the quote follows the choice
    page.get_by_label("Bandwidth").select_option("1000")
    expect(quote.get_by_test_id("monthly-total")).to_have_text(total_1g)
    page.get_by_label("Purchase order").fill("PO-2026-117")
    screenshot(page, "catalog-order")
    assert not Order.objects.exists()  # quotes are dry runs
    page.get_by_test_id("confirm-order").click()

    expect(page).to_have_url(f"{live_server.url}/marketplace/orders/")
    expect(page.locator(".messages")).to_contain_text("Ordered 8x H100 SXM: waiting for Lambda to approve.")
    row = page.locator("#orders tbody tr", has_text="8x H100 SXM")
    expect(row.get_by_test_id("order-status")).to_have_text("Pending provider")
    expect(row).to_contain_text("PO-2026-117")
    order = Order.objects.get()
    assert order.connection.state == ConnectionState.PENDING_APPROVAL

    # 6. The provider approves in its console, in its own browser.
    provider = second_page
    log_in(provider, "admin@lambda.example")
    provider.goto(f"{live_server.url}/provider/requests/")
    request = provider.locator(f"#request-{order.connection.public_id}")
    expect(request).to_contain_text("Acme")
    expect(request).to_contain_text("8x H100 SXM")
    request.get_by_role("button", name="Approve").click()
    expect(provider.locator(".messages")).to_contain_text("provisioning has started")

    # 7. The real worker provisions it; My orders shows it ACTIVE (the list refreshes itself).
    wait_for(lambda: Order.objects.get().connection.state == ConnectionState.ACTIVE, timeout=60)
    expect(row.get_by_test_id("order-status")).to_have_text("Active", timeout=15_000)
    screenshot(page, "catalog-orders")
    row.get_by_role("link", name="connection").click()
    expect(page).to_have_url(re.compile(rf"/fabric/connections/{UUID}/$"))
    expect(page.locator("#live .state")).to_have_text("Active")
