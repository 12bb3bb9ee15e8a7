"""Browser journeys through the portal, as a user would take them (Playwright + Debian's chromium).

Each test starts from an empty database and a fresh browser context. Screenshots of the key pages
are written to docs/img/ on every run. The console guard in conftest.py fails a test whose pages
log a CSP violation or a JavaScript error.
"""

import json
import re
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from fabric.models import Metro
from fabric.services import metros_load
from hub.choices import Role
from hub.models import Invitation, Membership, Organization, User
from hub.services import invitation_create, invitation_token
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "analytical-engine-1843"


def _main(page: Page):
    return page.get_by_role("main")


def _messages(page: Page):
    return page.locator(".messages")


def _org_switcher(page: Page):
    return page.locator("#org-switcher > summary")


def _api_me(live_server, secret: str) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - the live test server, plain http
        f"{live_server.url}/api/v1/me/", headers={"Authorization": f"Bearer {secret}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _create_token_in_ui(page: Page, live_server, name: str, extra_scopes=()) -> str:
    page.goto(f"{live_server.url}/settings/tokens/")
    name_field = page.get_by_label("Name:", exact=True)
    expect(name_field).to_be_hidden()  # the form is folded away until asked for
    page.get_by_text("Create a token", exact=True).click()
    expect(name_field).to_be_visible()
    name_field.fill(name)
    expect(page.get_by_label("Read", exact=True)).to_be_checked()  # the default scope
    for scope in extra_scopes:
        page.get_by_label(scope, exact=True).check()
    page.get_by_role("button", name="Create token").click()
    expect(_main(page)).to_contain_text(f"Token “{name}” created.")
    secret = page.get_by_test_id("token-secret")
    expect(secret).to_have_text(re.compile(r"^ihub_[0-9a-f]{12}_\S{20,}$"))
    return secret.inner_text().strip()


# --- 1. Sign-up ------------------------------------------------------------------------------
def test_sign_up_lands_on_the_new_organizations_dashboard(page: Page, live_server, screenshot):
    metros_load()  # so the dashboard screenshot shows the metros tile filled
    page.goto(f"{live_server.url}/accounts/signup/")
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.get_by_label("Your name").fill("Ada Lovelace")
    page.get_by_label("Work e-mail").fill("Ada@Example.com")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_label("Organization name").fill("Analytical Engines")
    screenshot(page, "signup")
    _main(page).get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(_messages(page)).to_contain_text("Welcome! Analytical Engines is ready and you are its owner.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Analytical Engines")
    expect(_main(page)).to_contain_text("Enterprise organization · you are Owner")
    expect(_org_switcher(page)).to_have_text("Analytical Engines")
    expect(page.locator("header").get_by_text("Ada", exact=True)).to_be_visible()
    screenshot(page, "dashboard")

    user = User.objects.get(email="ada@example.com")  # stored lower-cased
    membership = Membership.objects.get(user=user)
    assert membership.organization.name == "Analytical Engines"
    assert membership.role == Role.OWNER


@pytest.mark.parametrize(
    ("case", "email", "password", "field", "message"),
    [
        (
            "existing e-mail",
            "taken@example.com",
            NEW_PASSWORD,
            "email",
            "An account with this e-mail address already exists. Log in instead.",
        ),
        ("weak password", "newcomer@example.com", "1234567890", "password", "This password is entirely numeric."),
    ],
)
def test_bad_sign_up_shows_the_error_and_creates_nothing(
    page: Page, live_server, case, email, password, field, message
):
    UserFactory(email="taken@example.com")
    users_before, orgs_before = User.objects.count(), Organization.objects.count()

    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Your name").fill("Eve Example")
    page.get_by_label("Work e-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Organization name").fill("Should Not Exist")
    _main(page).get_by_role("button", name="Sign up").click()

    # Still on the form, with the error next to the field at fault and the other input kept.
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    expect(page.locator(f"#id_{field}_error")).to_contain_text(message)
    expect(page.locator(f"#id_{field}")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Your name")).to_have_value("Eve Example")
    expect(page.locator("header").get_by_role("link", name="Log in")).to_be_visible()  # not logged in

    assert User.objects.count() == users_before
    assert Organization.objects.count() == orgs_before
    assert not Organization.objects.filter(name="Should Not Exist").exists()


# --- 2. Log in / log out ---------------------------------------------------------------------
def test_log_in_and_log_out(page: Page, live_server):
    membership = MembershipFactory(
        organization=OrganizationFactory(name="Umbrella"), user=UserFactory(full_name="Grace Hopper"), role=Role.ADMIN
    )
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))  # the dashboard needs a log-in

    page.get_by_label("E-mail").fill(membership.user.email)
    page.get_by_label("Password").fill(PASSWORD)
    _main(page).get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Umbrella")
    expect(_main(page)).to_contain_text("you are Admin")

    user_menu = page.locator("header details", has_text="Log out")
    user_menu.locator("summary").click()
    expect(user_menu.locator("summary")).to_have_text("Grace")
    user_menu.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("#org-switcher")).to_have_count(0)

    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))  # the session is really gone


def test_log_in_with_a_wrong_password_shows_an_error(page: Page, live_server, log_in):
    membership = MembershipFactory(organization=OrganizationFactory(name="Umbrella"))
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("E-mail").fill(membership.user.email)
    page.get_by_label("Password").fill("not-the-password")
    _main(page).get_by_role("button", name="Log in").click()

    expect(page.locator(".errorlist.nonfield")).to_contain_text(
        re.compile(r"Please enter a correct e-mail address and password", re.IGNORECASE)
    )
    expect(page.get_by_label("E-mail")).to_have_value(membership.user.email)
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.locator("#org-switcher")).to_have_count(0)

    log_in(page, membership.user.email)  # one mistake does not lock the account
    expect(page.get_by_role("heading", level=1)).to_have_text("Umbrella")


# --- 3. Organizations and the switcher -------------------------------------------------------
def test_create_a_second_organization_and_switch_back(page: Page, live_server, log_in):
    first = MembershipFactory(organization=OrganizationFactory(name="Initech", slug="initech"), role=Role.ADMIN)
    log_in(page, first.user.email)
    expect(_org_switcher(page)).to_have_text("Initech")

    _org_switcher(page).click()
    page.get_by_role("link", name="+ New organization").click()
    expect(page).to_have_url(f"{live_server.url}/orgs/new/")
    page.get_by_label("Organization name").fill("Initrode")
    page.get_by_role("button", name="Create organization").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(_messages(page)).to_contain_text(
        "Created Initrode. You are its owner and it is now your active organization."
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Initrode")
    expect(_main(page)).to_contain_text("you are Owner")
    expect(_org_switcher(page)).to_have_text("Initrode")

    second = Organization.objects.get(name="Initrode")
    _org_switcher(page).click()
    expect(page.get_by_test_id(f"switch-{second.slug}")).to_have_class(re.compile(r"\bcurrent\b"))
    expect(page.get_by_test_id("switch-initech")).to_contain_text("Admin")
    page.get_by_test_id("switch-initech").click()

    expect(_messages(page)).to_contain_text("You are now working in Initech.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Initech")
    expect(_main(page)).to_contain_text("you are Admin")
    expect(_org_switcher(page)).to_have_text("Initech")

    page.reload()  # the choice is kept in the session
    expect(page.get_by_role("heading", level=1)).to_have_text("Initech")


# --- 4. Invitations --------------------------------------------------------------------------
def test_invite_a_member_who_signs_up_and_joins(
    page: Page, second_page: Page, live_server, log_in, screenshot, mailoutbox
):
    owner = MembershipFactory(
        organization=OrganizationFactory(name="Hooli", slug="hooli"),
        user=UserFactory(full_name="Gavin Belson", email="gavin@hooli.example"),
    )
    log_in(page, owner.user.email)
    page.goto(f"{live_server.url}/settings/members/")
    expect(page.get_by_role("heading", name="Open invitations")).to_have_count(0)

    page.get_by_label("Email:", exact=True).fill("Richard@Example.com")
    page.get_by_label("Role:", exact=True).select_option(label="Network engineer")
    page.get_by_role("button", name="Send invitation").click()

    expect(_messages(page)).to_contain_text("Invitation sent to richard@example.com.")
    expect(page.get_by_role("heading", name="Open invitations")).to_be_visible()
    row = page.locator("#invitations tbody tr", has_text="richard@example.com")
    expect(row).to_contain_text("Network engineer")
    expect(row).to_contain_text("sent")
    screenshot(page, "members")

    invitation = Invitation.objects.get(organization=owner.organization, email="richard@example.com")
    assert [m.to for m in mailoutbox] == [["richard@example.com"]]
    assert "/invitations/" in mailoutbox[0].body

    # The invitee, in their own browser, opens the link and signs up from it.
    invitee = second_page
    accept_url = f"{live_server.url}/invitations/{invitation_token(invitation)}/"
    invitee.goto(accept_url)
    expect(invitee.get_by_role("heading", name="Join Hooli")).to_be_visible()
    expect(invitee.get_by_role("main")).to_contain_text("You are invited as Network engineer (richard@example.com).")
    invitee.get_by_role("button", name="Create an account").click()

    expect(invitee.get_by_role("heading", name="Create your account")).to_be_visible()
    expect(invitee.get_by_label("Work e-mail")).to_have_value("richard@example.com")
    invitee.get_by_label("Your name").fill("Richard Hendricks")
    invitee.get_by_label("Password").fill(NEW_PASSWORD)
    invitee.get_by_label("Organization name").fill("Pied Piper")
    invitee.get_by_role("main").get_by_role("button", name="Sign up").click()

    expect(invitee).to_have_url(accept_url)  # back on the invitation, now logged in
    expect(invitee.get_by_role("heading", name="Join Hooli")).to_be_visible()
    invitee.get_by_role("button", name="Accept and join").click()

    expect(invitee).to_have_url(f"{live_server.url}/")
    expect(invitee.locator(".messages")).to_contain_text("You joined Hooli as Network engineer.")
    expect(invitee.get_by_role("heading", level=1)).to_have_text("Hooli")
    expect(invitee.get_by_role("main")).to_contain_text("you are Network engineer")
    expect(invitee.locator("#org-switcher > summary")).to_have_text("Hooli")

    joined = Membership.objects.get(user__email="richard@example.com", organization=owner.organization)
    assert joined.role == Role.NETWORK_ENGINEER

    # The owner now sees a new member and no open invitation.
    page.reload()
    expect(page.locator("#members")).to_contain_text("Richard Hendricks")
    expect(page.get_by_role("heading", name="Open invitations")).to_have_count(0)

    invitee.goto(accept_url)  # the link works once
    expect(invitee.get_by_role("heading", name="This invitation cannot be used")).to_be_visible()


# --- 5. API tokens ---------------------------------------------------------------------------
def test_api_token_is_shown_once_works_and_can_be_revoked(page: Page, live_server, log_in, screenshot):
    owner = MembershipFactory(
        organization=OrganizationFactory(name="Stark Industries", slug="stark"),
        user=UserFactory(full_name="Pepper Potts", email="pepper@stark.example"),
    )
    log_in(page, owner.user.email)
    page.goto(f"{live_server.url}/settings/tokens/")
    expect(page.locator("#tokens")).to_contain_text("No tokens yet.")

    secret = _create_token_in_ui(page, live_server, "terraform-ci", extra_scopes=["Write"])
    expect(page.locator("#new-token")).to_contain_text("Copy it now: it will not be shown again.")
    expect(page.locator("#new-token")).to_contain_text("Scopes: read, write")
    screenshot(page, "tokens")

    status, body = _api_me(live_server, secret)
    assert status == 200, body
    assert body["organization"]["slug"] == "stark"
    assert body["email"] == owner.user.email
    assert body["token"]["name"] == "terraform-ci"
    assert body["token"]["scopes"] == ["read", "write"]

    page.goto(f"{live_server.url}/settings/tokens/")
    expect(page.get_by_test_id("token-secret")).to_have_count(0)
    assert secret not in page.content()
    row = page.locator("#tokens tbody tr", has_text="terraform-ci")
    expect(row).to_contain_text(f"ihub_{secret.split('_')[1]}_…")  # only the prefix, to recognise it
    expect(row.locator(".badge")).to_have_text("active")
    expect(row.locator("td").nth(7)).to_contain_text("ago")  # "Last used" after the API call

    row.get_by_role("button", name="Revoke").click()
    expect(_messages(page)).to_contain_text("Revoked the token terraform-ci.")
    row = page.locator("#tokens tbody tr", has_text="terraform-ci")
    expect(row.locator(".badge")).to_have_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)

    status, body = _api_me(live_server, secret)
    assert status == 401, body
    assert body["error"]["message"] == "The token has been revoked."


# --- 6. Audit log ----------------------------------------------------------------------------
def test_audit_log_lists_the_token_creation_and_filters_by_action(page: Page, live_server, log_in, screenshot):
    owner = MembershipFactory(
        organization=OrganizationFactory(name="Wayne Enterprises", slug="wayne"),
        user=UserFactory(full_name="Bruce Wayne", email="bruce@wayne.example"),
    )
    invitation_create(actor_membership=owner, email="lucius@example.com", role=Role.VIEWER)
    log_in(page, owner.user.email)
    _create_token_in_ui(page, live_server, "billing-export")

    page.goto(f"{live_server.url}/settings/audit/")
    rows = page.locator("#audit-table tbody tr")
    expect(rows).to_have_count(3)  # the invitation, the log-in and the token
    expect(rows.filter(has_text="auth.login")).to_have_count(1)
    token_row = rows.filter(has_text="token.create")
    expect(token_row).to_contain_text("billing-export")
    expect(token_row).to_contain_text(owner.user.email)
    expect(rows.filter(has_text="invitation.create")).to_contain_text("lucius@example.com")
    screenshot(page, "audit")

    page.evaluate("window.__sameDocument = true")  # survives an htmx swap, not a page load
    action = page.get_by_label("Action starts with:", exact=True)
    action.fill("token.")
    action.press("Enter")

    expect(page).to_have_url(re.compile(r"/settings/audit/\?.*action=token\."))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("token.create")
    expect(page.locator("#audit-table")).not_to_contain_text("invitation.create")
    expect(page.get_by_role("link", name="Export these events as CSV")).to_have_attribute(
        "href", re.compile(r"action=token\.")
    )
    assert page.evaluate("window.__sameDocument === true"), "the filter reloaded the whole page instead of htmx"


# --- Fabric ----------------------------------------------------------------------------------
def test_metros_page_lists_and_searches_metros(page: Page, live_server, log_in, screenshot):
    metros_load()
    total = Metro.objects.count()
    assert total > 1
    owner = MembershipFactory(
        organization=OrganizationFactory(name="Cyberdyne"),
        user=UserFactory(full_name="Miles Dyson", email="miles@cyberdyne.example"),
    )
    log_in(page, owner.user.email)
    page.get_by_role("link", name="Fabric").click()
    page.get_by_role("navigation", name="Fabric").get_by_role("link", name="Metros").click()

    expect(page).to_have_url(f"{live_server.url}/fabric/metros/")
    expect(page.get_by_role("heading", name="Metros")).to_be_visible()
    expect(page.locator("#metro-table")).to_contain_text(f"{total} metros")
    expect(page.locator("#metro-table tbody tr")).to_have_count(total)
    expect(page.locator("#metro-table")).to_contain_text("Frankfurt")
    screenshot(page, "metros")

    page.get_by_label("Search:", exact=True).press_sequentially("frankfurt")  # search as you type
    expect(page.locator("#metro-table")).to_contain_text("1 metro")
    expect(page.locator("#metro-table tbody tr")).to_have_count(1)
    expect(page.locator("#metro-table tbody tr")).to_contain_text("Frankfurt")


# --- The console guard itself ----------------------------------------------------------------
def test_console_guard_catches_csp_violations(page: Page, live_server, console_watch):
    """The strict CSP blocks an inline script and a foreign image, and the guard notices both,
    through Chromium's own console report and through the ``securitypolicyviolation`` event."""
    page.goto(f"{live_server.url}/accounts/login/")
    injections = [
        "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        " document.body.appendChild(s); }",
        "() => { const i = document.createElement('img'); i.src = 'https://example.invalid/x.png';"
        " document.body.appendChild(i); }",
    ]
    for script in injections:
        with page.expect_console_message(lambda m: m.text.startswith("CSP violation")):
            page.evaluate(script)
    for _ in range(50):  # let both reports of both violations arrive before clearing them
        if len(console_watch.csp_violations()) >= 4:
            break
        page.wait_for_timeout(100)

    assert page.evaluate("window.__ran") is None  # the inline script did not run
    violations = console_watch.csp_violations()
    assert any("script-src" in v and "Content Security Policy" in v for v in violations), violations
    assert any("CSP violation: img-src blocked https://example.invalid/x.png" in v for v in violations), violations
    console_watch.problems.clear()  # expected here; in any other test they fail it
