"""Browser-journey fixtures: a console guard on every page, log-in and screenshot helpers.

Every test here gets ``console_watch``: it listens to the page's console and uncaught errors, and
after the test body the ``pytest_runtest_call`` hook below fails the test if the page logged a
Content-Security-Policy violation, a JavaScript error or a sub-resource that did not load.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Error, Page, Request, expect

from tests.factories import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"

# Chromium reports a 4xx/5xx answer as "Failed to load resource". For the page's own document the
# test asserts what the user sees instead (a form error comes back as 400 on purpose).
_FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of \d+")

# A second channel for CSP: the DOM event fires for every blocked load or inline script/style.
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


@dataclass
class ConsoleWatch:
    """Collects what a user's browser console would show as broken."""

    problems: list[str] = field(default_factory=list)
    documents: set[str] = field(default_factory=set)

    def watch(self, page: Page) -> Page:
        page.add_init_script(_CSP_LISTENER)
        page.on("request", self._on_request)
        page.on("console", self._on_console)
        page.on("pageerror", self._on_pageerror)
        return page

    def _on_request(self, request: Request) -> None:
        if request.is_navigation_request():
            self.documents.add(request.url)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        if _FAILED_LOAD.match(message.text) and url in self.documents:
            return
        self.problems.append(f"console.error on {url or 'page'}: {message.text}")

    def _on_pageerror(self, error: Error) -> None:
        self.problems.append(f"uncaught JavaScript error: {error.name}: {error.message}")

    def csp_violations(self) -> list[str]:
        return [p for p in self.problems if "Content Security Policy" in p or "CSP violation" in p]


@pytest.fixture(autouse=True)
def console_watch(page: Page) -> ConsoleWatch:
    page.set_default_timeout(10_000)
    watch = ConsoleWatch()
    watch.watch(page)
    return watch


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    watch = getattr(item, "funcargs", {}).get("console_watch")
    if watch is not None and watch.problems:
        pytest.fail("The browser console reported problems:\n  " + "\n  ".join(watch.problems), pytrace=False)
    return result


@pytest.fixture
def second_page(page: Page, console_watch: ConsoleWatch, browser_context_args) -> Page:
    """A page in a separate browser context (another person's browser, no shared cookies)."""
    context = page.context.browser.new_context(**browser_context_args)
    other = context.new_page()
    other.set_default_timeout(10_000)
    console_watch.watch(other)
    yield other
    context.close()


@pytest.fixture
def screenshot():
    """``screenshot(page, "name")`` writes docs/img/name.png (full page) on every run."""

    def take(page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
        return path

    return take


@pytest.fixture
def log_in(live_server):
    """``log_in(page, email)`` logs in through the form and waits for the dashboard."""

    def do(page: Page, email: str, password: str = PASSWORD) -> None:
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("main").get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{live_server.url}/")

    return do
