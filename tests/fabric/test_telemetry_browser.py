"""The utilisation charts in a real browser (Playwright + Debian's chromium): drawn by plotly from
the data island without any CSP violation or JavaScript error, the window picker swapping the
chart through htmx, the table alternative, and the port page's chart. Screenshots go to docs/img/.
"""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from fabric.telemetry_simulation import simulate
from tests.fabric.test_telemetry_support import active_connection
from tests.factories import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def problems(page: Page) -> list[str]:
    """What the browser console reports as broken (checked at the end of each test)."""
    found: list[str] = []
    page.add_init_script(CSP_LISTENER)
    page.on("console", lambda message: found.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: found.append(f"{error.name}: {error.message}"))
    page.set_default_timeout(15_000)
    return found


def log_in(page: Page, live_server, email: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("main").get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/")


def test_connection_chart_window_picker_and_table(page: Page, live_server, acme, cloud, problems):
    link = active_connection(org=acme.org, a_port=acme.fra, z_port=cloud.fra, name="fra-to-gpu", bandwidth_mbps=1000)
    simulate([link], days=8, interval_seconds=300, now=timezone.now() - timedelta(minutes=1))
    log_in(page, live_server, acme.member.user.email)

    page.goto(f"{live_server.url}/fabric/connections/{link.public_id}/")
    chart = page.locator("#utilisation .utilisation-chart")
    expect(chart.locator(".main-svg").first).to_be_visible()  # plotly drew it
    expect(page.locator("#utilisation [aria-current='true']")).to_have_text("24h")
    expect(chart.locator(".legendtext")).to_have_text(["In", "Out", "Bandwidth"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#utilisation").screenshot(path=str(SCREENSHOTS / "telemetry-connection-chart.png"))

    page.locator("#utilisation").get_by_role("button", name="7d").click()
    expect(page.locator("#utilisation [aria-current='true']")).to_have_text("7d")
    expect(page.locator("#utilisation")).to_contain_text("30-minute steps")
    expect(page.locator("#utilisation .utilisation-chart .main-svg").first).to_be_visible()
    assert page.url.endswith(f"/fabric/connections/{link.public_id}/")  # swapped in place, no navigation

    page.locator("#utilisation summary", has_text="Data table").click()
    rows = page.get_by_test_id("utilisation-table").locator("tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 300  # about 7 days of 30-minute steps

    page.locator("#utilisation").get_by_role("button", name="1h").click()
    expect(page.locator("#utilisation [aria-current='true']")).to_have_text("1h")
    expect(page.locator("#utilisation .utilisation-chart .main-svg").first).to_be_visible()
    assert problems == []


def test_port_chart_and_empty_state(page: Page, live_server, acme, cloud, problems):
    link = active_connection(org=acme.org, a_port=acme.fra, z_port=cloud.fra, name="fra-to-gpu")
    simulate([link], days=1, interval_seconds=300)
    quiet = active_connection(org=acme.org, a_port=acme.ams, z_port=cloud.fra, name="quiet", vlan=150)
    log_in(page, live_server, acme.member.user.email)

    page.goto(f"{live_server.url}/fabric/ports/{acme.fra.public_id}/")
    expect(page.locator("#utilisation .utilisation-chart .main-svg").first).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "telemetry-port.png"), full_page=True)

    page.goto(f"{live_server.url}/fabric/connections/{quiet.public_id}/")
    expect(page.get_by_test_id("utilisation-empty")).to_contain_text("No traffic reported in the last 24h")
    assert problems == []
