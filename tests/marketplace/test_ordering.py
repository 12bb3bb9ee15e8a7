"""Connecting to an offering from the portal: the quote first, then the order and its status."""

import re

import pytest

from fabric.choices import ConnectionState
from fabric.models import Connection
from hub.choices import Role
from marketplace.choices import ApprovalMode
from marketplace.models import Order

pytestmark = pytest.mark.django_db


@pytest.fixture
def offering(gpu_cloud, make_offering):
    return make_offering(gpu_cloud)


@pytest.fixture
def browser(customer, logged_in):
    return logged_in(customer.member)


def _form(customer, access_point, **overrides):
    return {
        "a_port": str(customer.fra.public_id),
        "access_point": str(access_point.public_id),
        "bandwidth_mbps": "1000",
        "purchase_order": "PO-42",
        **overrides,
    }


def test_the_form_offers_my_ports_the_access_points_and_their_bandwidths(offering, browser):
    body = browser.get(f"/marketplace/offerings/{offering[0].public_id}/connect/").content.decode()
    assert "FR · acme-fra (10,000 Mbps free)" in body
    assert "FR · Frankfurt (the provider approves)" in body
    assert '<option value="1000">1 Gbps</option>' in body
    assert '<option value="10000">10 Gbps</option>' in body
    assert 'hx-trigger="load, change' in body  # the quote is fetched as soon as the page is shown


def test_checking_the_quote_shows_prices_latency_and_approval_and_creates_nothing(offering, customer, browser):
    _, access_point = offering
    response = browser.post(
        f"/marketplace/offerings/{offering[0].public_id}/connect/",
        {**_form(customer, access_point), "check": "1"},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="quote"')
    assert "8x H100: 23.92 USD per hour, billed by the provider on use" in body
    assert re.search(r'data-testid="monthly-total">\d+\.\d\d<', body)
    assert re.search(r"Latency FR → FR: about <strong>[\d.]+ ms</strong>", body)
    assert "Lambda must approve" in body
    assert not Order.objects.exists()
    assert not Connection.objects.exists()


def test_confirming_creates_the_order_and_my_orders_show_its_status(offering, customer, browser):
    _, access_point = offering
    response = browser.post(f"/marketplace/offerings/{offering[0].public_id}/connect/", _form(customer, access_point))
    assert response.status_code == 302
    assert response["Location"] == "/marketplace/orders/"
    order = Order.objects.get()
    assert (order.purchase_order, order.connection.bandwidth_mbps) == ("PO-42", 1000)
    assert order.connection.state == ConnectionState.PENDING_APPROVAL
    page = browser.get("/marketplace/orders/").content.decode()
    assert "Ordered 8x H100: waiting for Lambda to approve." in page
    assert 'data-testid="order-status">Pending provider<' in page
    assert f'href="/fabric/connections/{order.connection.public_id}/"' in page
    assert "PO-42" in page


def test_an_automatic_access_point_is_approved_at_once(
    gpu_cloud, customer, browser, make_offering, django_capture_on_commit_callbacks
):
    offering, access_point = make_offering(gpu_cloud, approval_mode=ApprovalMode.AUTOMATIC)
    with django_capture_on_commit_callbacks(execute=True):  # the provisioning tasks run eagerly after commit
        browser.post(f"/marketplace/offerings/{offering.public_id}/connect/", _form(customer, access_point))
    order = Order.objects.get()
    assert order.connection.state == ConnectionState.ACTIVE
    page = browser.get("/marketplace/orders/").content.decode()
    assert "approved at once" in page
    assert 'data-testid="order-status">Active<' in page


def test_a_bandwidth_the_access_point_does_not_allow_is_a_form_error(gpu_cloud, customer, browser, make_offering):
    offering, access_point = make_offering(gpu_cloud)
    response = browser.post(
        f"/marketplace/offerings/{offering.public_id}/connect/", _form(customer, access_point, bandwidth_mbps="200")
    )
    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert not Order.objects.exists()


def test_a_port_of_another_organization_is_not_found(offering, other_org, browser, metros):
    from tests.fabric.factories import PortFactory

    foreign = PortFactory(organization=other_org, metro=metros["FR"], speed_mbps=10_000)
    _, access_point = offering
    response = browser.post(
        f"/marketplace/offerings/{offering[0].public_id}/connect/",
        {"a_port": str(foreign.public_id), "access_point": str(access_point.public_id), "bandwidth_mbps": "1000"},
    )
    assert response.status_code == 404
    assert not Order.objects.exists()


def test_a_viewer_cannot_order(offering, customer, member_factory, logged_in):
    viewer = logged_in(member_factory(Role.VIEWER))
    _, access_point = offering
    response = viewer.post(f"/marketplace/offerings/{offering[0].public_id}/connect/", _form(customer, access_point))
    assert response.status_code == 403
    assert not Order.objects.exists()


def hold_every_request(request):
    """A test guard standing in for a security policy that wants an admin's approval."""
    from fabric.guards import Severity, Violation

    return [Violation("test", Severity.APPROVAL, "An admin of your organization must approve.")]


def test_a_held_order_to_an_automatic_access_point_provisions_once_my_admin_approves(
    settings, gpu_cloud, customer, browser, make_offering, django_capture_on_commit_callbacks
):
    """The provider approved in advance: after the requester's own admin, nobody else is waited on."""
    settings.FABRIC_CONNECTION_GUARDS = [f"{__name__}.hold_every_request"]
    offering, access_point = make_offering(gpu_cloud, approval_mode=ApprovalMode.AUTOMATIC)
    browser.post(f"/marketplace/offerings/{offering.public_id}/connect/", _form(customer, access_point))
    connection = Order.objects.get().connection
    assert (connection.state, connection.pending_on) == (ConnectionState.PENDING_APPROVAL, "REQUESTER")

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(f"/fabric/connections/{connection.public_id}/approve/", follow=True)
    assert "Approved in advance by the Z side" in response.content.decode()
    connection.refresh_from_db()
    assert connection.state == ConnectionState.ACTIVE
    assert connection.z_vlan is not None


def test_a_held_order_to_a_manual_access_point_then_waits_on_the_provider(
    settings, gpu_cloud, customer, browser, make_offering
):
    settings.FABRIC_CONNECTION_GUARDS = [f"{__name__}.hold_every_request"]
    offering, access_point = make_offering(gpu_cloud)
    browser.post(f"/marketplace/offerings/{offering.public_id}/connect/", _form(customer, access_point))
    connection = Order.objects.get().connection
    browser.post(f"/fabric/connections/{connection.public_id}/approve/")
    connection.refresh_from_db()
    assert (connection.state, connection.pending_on) == (ConnectionState.PENDING_APPROVAL, "PROVIDER")
