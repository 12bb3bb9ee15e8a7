"""The provider console through HTTP: what a provider's members see and can do, and what others cannot."""

from decimal import Decimal

import pytest
from django.urls import reverse

from fabric.choices import ConnectionState
from fabric.models import Connection, VlanAssignment
from hub.choices import OrganizationKind, Role
from hub.models import AuditEvent
from marketplace import services
from marketplace.choices import ApprovalMode, OfferingStatus
from marketplace.models import AccessPoint, Offering
from tests.factories import OrganizationFactory
from tests.marketplace.conftest import GPU_ATTRIBUTES

pytestmark = pytest.mark.django_db


def _form(**overrides):
    data = {
        "category": "GPU_CLOUD",
        "name": "8x H100 SXM",
        "slug": "",
        "summary": "Eight H100s with NVLink",
        "description": "",
        "price_amount": "23.92",
        "price_unit": "HOUR",
        "currency": "USD",
        "tags": "H100, training",
        "compliance": "SOC 2, GDPR",
        "attr_accelerator": "H100",
        "attr_gpu_count": "8",
        "attr_gpu_memory_gb": "80",
    }
    return data | overrides


def _order(customer, offering, access_point, bandwidth=1000, execute=None):
    return services.order_create(
        membership=customer.member,
        offering=offering,
        access_point=access_point,
        a_port=customer.fra,
        bandwidth_mbps=bandwidth,
    ).order


def _text(response) -> str:
    return response.content.decode()


# --- Who gets in ---------------------------------------------------------------------------
def test_non_provider_members_are_sent_back_with_the_reason(logged_in, customer):
    client = logged_in(customer.member)
    response = client.get(reverse("console:dashboard"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("home")
    assert "The provider console is for members of provider organizations" in _text(response)


def test_nav_shows_the_console_only_to_provider_members(logged_in, gpu_cloud, customer, client):
    page = _text(logged_in(gpu_cloud.member).get(reverse("home")))
    assert f'href="{reverse("console:dashboard")}"' in page
    client.logout()
    page = _text(logged_in(customer.member).get(reverse("home")))
    assert reverse("console:dashboard") not in page


def test_a_viewer_sees_the_console_but_no_buttons(logged_in, gpu_cloud, make_offering, member_factory):
    offering, _ = make_offering(gpu_cloud, published=False)
    viewer = member_factory(Role.VIEWER, organization=gpu_cloud.org)
    client = logged_in(viewer)
    page = _text(client.get(reverse("console:offering-detail", args=[offering.public_id])))
    assert offering.name in page
    assert "Publish" not in page
    assert "Add an access point" not in page
    assert client.get(reverse("console:offering-create")).status_code == 403
    response = client.post(reverse("console:offering-publish", args=[offering.public_id]))
    assert response.status_code == 403
    offering.refresh_from_db()
    assert offering.status == OfferingStatus.DRAFT


def test_another_providers_offering_is_not_found(logged_in, gpu_cloud, rival, make_offering):
    offering, access_point = make_offering(rival, published=False)
    client = logged_in(gpu_cloud.member)
    assert client.get(reverse("console:offering-detail", args=[offering.public_id])).status_code == 404
    assert client.post(reverse("console:offering-publish", args=[offering.public_id])).status_code == 404
    response = client.post(reverse("console:access-point-remove", args=[access_point.public_id]))
    assert response.status_code == 404
    response = client.post(reverse("console:offering-edit", args=[offering.public_id]), _form(name="hijacked"))
    assert response.status_code == 404
    offering.refresh_from_db()
    assert (offering.name, offering.status) == ("8x H100", OfferingStatus.DRAFT)
    assert AccessPoint.objects.filter(pk=access_point.pk).exists()


def test_a_provider_without_a_profile_is_asked_to_create_one(logged_in, member_factory):
    org = OrganizationFactory(name="New Cloud", slug="new-cloud", kind=OrganizationKind.PROVIDER)
    client = logged_in(member_factory(Role.ADMIN, organization=org))
    assert "Create your provider profile" in _text(client.get(reverse("console:dashboard")))
    assert client.get(reverse("console:offering-create"))["Location"] == reverse("console:profile")
    bad = client.post(reverse("console:profile"), {"name": "New Cloud", "hq_country": "D1"})
    assert bad.status_code == 400
    assert "HQ country is a two-letter ISO 3166 code." in _text(bad)
    response = client.post(
        reverse("console:profile"), {"name": "New Cloud", "hq_country": "de", "certifications": "SOC 2, ISO 27001"}
    )
    assert response.status_code == 302
    org.provider_profile.refresh_from_db()
    assert (org.provider_profile.hq_country, org.provider_profile.certifications) == ("DE", ["SOC 2", "ISO 27001"])


# --- Offerings -----------------------------------------------------------------------------
def test_create_shows_the_categorys_attribute_fields(logged_in, gpu_cloud):
    client = logged_in(gpu_cloud.member)
    picker = _text(client.get(reverse("console:offering-create")))
    assert "?category=MODEL_VENDOR" in picker
    page = _text(client.get(reverse("console:offering-create") + "?category=MODEL_VENDOR"))
    assert 'name="attr_context_window"' in page
    assert 'name="attr_accelerator"' not in page


def test_a_bad_attribute_is_an_error_next_to_its_field_and_nothing_is_saved(logged_in, gpu_cloud):
    client = logged_in(gpu_cloud.member)
    response = client.post(reverse("console:offering-create"), _form(attr_gpu_count="0"))
    assert response.status_code == 400
    page = _text(response)
    assert 'id="attr_gpu_count-errors"' in page
    assert "gpu_count must be at least 1." in page
    assert 'value="8x H100 SXM"' in page  # the rest of the input is kept
    response = client.post(reverse("console:offering-create"), _form(attr_gpu_count="eight"))
    assert response.status_code == 400
    assert "Enter a whole number." in _text(response)
    response = client.post(reverse("console:offering-create"), _form(attr_accelerator=""))
    assert "accelerator is required for this category." in _text(response)
    response = client.post(reverse("console:offering-create"), _form(price_amount="-1"))
    assert "The price cannot be below zero." in _text(response)
    assert not Offering.objects.exists()


def test_create_then_edit_an_offering(logged_in, gpu_cloud):
    client = logged_in(gpu_cloud.member)
    response = client.post(reverse("console:offering-create"), _form(attr_vcpus="208"))
    offering = Offering.objects.get()
    assert response["Location"] == reverse("console:offering-detail", args=[offering.public_id])
    assert offering.status == OfferingStatus.DRAFT
    assert offering.attributes == {"accelerator": "H100", "gpu_count": 8, "gpu_memory_gb": 80.0, "vcpus": 208.0}
    assert (offering.tags, offering.compliance) == (["H100", "training"], ["SOC 2", "GDPR"])
    edit_page = _text(client.get(reverse("console:offering-edit", args=[offering.public_id])))
    assert 'value="H100, training"' in edit_page
    response = client.post(
        reverse("console:offering-edit", args=[offering.public_id]), _form(name="8x H100 SXM5", attr_gpu_count="16")
    )
    assert response.status_code == 302
    offering.refresh_from_db()
    assert (offering.name, offering.gpu_count) == ("8x H100 SXM5", 16)
    assert AuditEvent.objects.filter(action="offering.update", organization=gpu_cloud.org).exists()


def test_publish_without_an_access_point_is_refused_with_the_reason(logged_in, gpu_cloud, make_offering):
    offering = services.offering_create(
        membership=gpu_cloud.member,
        category="GPU_CLOUD",
        name="Lonely GPU",
        price_amount="1",
        price_unit="HOUR",
        attributes=GPU_ATTRIBUTES,
    )
    client = logged_in(gpu_cloud.member)
    page = _text(client.get(reverse("console:offering-detail", args=[offering.public_id])))
    assert "Publishing needs at least one access point" in page
    response = client.post(reverse("console:offering-publish", args=[offering.public_id]), follow=True)
    assert "Not published: Add at least one access point" in _text(response)
    offering.refresh_from_db()
    assert offering.status == OfferingStatus.DRAFT


def test_add_an_access_point_publish_and_retire(logged_in, gpu_cloud):
    offering = services.offering_create(
        membership=gpu_cloud.member,
        category="GPU_CLOUD",
        name="GPU",
        price_amount="1",
        price_unit="HOUR",
        attributes=GPU_ATTRIBUTES,
    )
    client = logged_in(gpu_cloud.member)
    detail = reverse("console:offering-detail", args=[offering.public_id])
    page = _text(client.get(detail))
    assert str(gpu_cloud.fra.public_id) in page
    assert str(gpu_cloud.down.public_id) not in page
    too_fast = client.post(
        reverse("console:access-point-add", args=[offering.public_id]),
        {"port": gpu_cloud.fra.public_id, "allowed_bandwidths_mbps": ["100000"], "approval_mode": "MANUAL"},
    )
    assert too_fast.status_code == 400
    assert "Bandwidths must be between 1 and 10,000 Mbps" in _text(too_fast)
    assert not AccessPoint.objects.exists()
    response = client.post(
        reverse("console:access-point-add", args=[offering.public_id]),
        {"port": gpu_cloud.fra.public_id, "allowed_bandwidths_mbps": ["1000", "10000"], "approval_mode": "AUTOMATIC"},
    )
    assert response.status_code == 302
    access_point = AccessPoint.objects.get()
    assert (access_point.allowed_bandwidths_mbps, access_point.approval_mode) == ([1000, 10000], "AUTOMATIC")

    client.post(reverse("console:offering-publish", args=[offering.public_id]))
    offering.refresh_from_db()
    assert offering.status == OfferingStatus.PUBLISHED
    page = _text(client.get(detail))
    assert "Retire" in page
    assert ">Publish<" not in page
    assert "the last one of a published offering" in page  # removal is not offered
    response = client.post(reverse("console:access-point-remove", args=[access_point.public_id]), follow=True)
    assert "A published offering needs at least one access point" in _text(response)
    assert AccessPoint.objects.filter(pk=access_point.pk).exists()

    client.post(reverse("console:offering-retire", args=[offering.public_id]))
    offering.refresh_from_db()
    assert offering.status == OfferingStatus.RETIRED
    assert "Publish again" in _text(client.get(detail))
    client.post(reverse("console:access-point-remove", args=[access_point.public_id]))
    assert not AccessPoint.objects.exists()


def test_preview_shows_what_customers_will_see(logged_in, gpu_cloud, make_offering):
    offering, _ = make_offering(gpu_cloud, published=False, summary="Eight GPUs, one box", compliance=["HIPAA"])
    page = _text(logged_in(gpu_cloud.member).get(reverse("console:offering-detail", args=[offering.public_id])))
    preview = page[page.index('id="preview"') :]
    assert "Customers cannot see this draft offering" in preview
    assert "Eight GPUs, one box" in preview
    assert "HIPAA" in preview
    assert "Frankfurt" in preview
    assert "23.92 USD" in preview
    assert "Accelerator" in preview
    assert "H100" in preview


# --- Incoming requests, dashboard, customers -----------------------------------------------
def test_approve_with_the_suggested_or_a_chosen_vlan(logged_in, gpu_cloud, customer, make_offering):
    offering, access_point = make_offering(gpu_cloud)
    first = _order(customer, offering, access_point).connection
    second = _order(customer, offering, access_point).connection
    client = logged_in(gpu_cloud.member)
    page = _text(client.get(reverse("console:requests")))
    assert page.count('value="100"') == 2  # the lowest free VLAN of the automatic range, suggested
    assert offering.name in page
    assert customer.org.name in page

    response = client.post(reverse("console:request-approve", args=[first.public_id]), {"z_vlan": "777"}, follow=True)
    assert "on VLAN 777" in _text(response)
    first.refresh_from_db()
    assert first.z_vlan == 777
    assert first.state != ConnectionState.PENDING_APPROVAL
    taken = client.post(reverse("console:request-approve", args=[second.public_id]), {"z_vlan": "777"}, follow=True)
    assert "Not approved: VLAN 777 is already in use" in _text(taken)
    second.refresh_from_db()
    assert second.state == ConnectionState.PENDING_APPROVAL
    assert not VlanAssignment.objects.filter(connection=second, port=second.z_port).exists()
    again = client.post(reverse("console:request-approve", args=[first.public_id]), {"z_vlan": "778"}, follow=True)
    assert "Not approved" in _text(again)


def test_reject_needs_a_reason_the_customer_sees(logged_in, gpu_cloud, customer, make_offering):
    offering, access_point = make_offering(gpu_cloud)
    connection = _order(customer, offering, access_point).connection
    client = logged_in(gpu_cloud.member)
    url = reverse("console:request-reject", args=[connection.public_id])
    assert "Say why the request is rejected" in _text(client.post(url, {"reason": "  "}, follow=True))
    connection.refresh_from_db()
    assert connection.state == ConnectionState.PENDING_APPROVAL
    client.post(url, {"reason": "No capacity in Frankfurt until March"})
    connection.refresh_from_db()
    assert (connection.state, connection.status_reason) == ("REJECTED", "No capacity in Frankfurt until March")


def test_a_provider_cannot_judge_its_own_outgoing_request(logged_in, gpu_cloud, rival, make_offering):
    offering, access_point = make_offering(rival)
    outgoing = services.order_create(
        membership=gpu_cloud.member,
        offering=offering,
        access_point=access_point,
        a_port=gpu_cloud.fra,
        bandwidth_mbps=1000,
    ).order.connection
    response = logged_in(gpu_cloud.member).post(reverse("console:request-approve", args=[outgoing.public_id]))
    assert response.status_code == 404
    assert Connection.objects.get(pk=outgoing.pk).state == ConnectionState.PENDING_APPROVAL


def test_dashboard_and_customers_count_active_orders_and_revenue(
    logged_in, gpu_cloud, customer, make_offering, django_capture_on_commit_callbacks
):
    gpu, gpu_ap = make_offering(gpu_cloud, approval_mode=ApprovalMode.AUTOMATIC)
    router, router_ap = make_offering(
        gpu_cloud,
        name="Cloud router",
        category="NETWORK_SERVICE",
        price_amount="450",
        price_unit="MONTH",
        attributes={"service_type": "cloud-router"},
        approval_mode=ApprovalMode.AUTOMATIC,
    )
    make_offering(gpu_cloud, published=False, name="Next GPU")
    with django_capture_on_commit_callbacks(execute=True):
        _order(customer, gpu, gpu_ap)
        _order(customer, router, router_ap)
    pending_gpu, pending_ap = make_offering(gpu_cloud, name="Manual GPU")
    _order(customer, pending_gpu, pending_ap)  # waits for the provider: not revenue yet
    assert set(Connection.objects.values_list("state", flat=True)) == {"ACTIVE", "PENDING_APPROVAL"}

    client = logged_in(gpu_cloud.member)
    page = _text(client.get(reverse("console:dashboard")))
    expected = Decimal("23.92") * 730 + Decimal("450")  # 17,911.60
    assert "17,911.60 USD" in page, expected
    tiles = page[page.index('id="tile-listings"') :]
    assert ">3</span> published" in tiles
    assert ">1</span> draft" in tiles
    assert page[page.index('id="tile-incoming"') :].split('class="kpi">')[1].startswith("1<")
    assert page[page.index('id="tile-customers"') :].split('class="kpi">')[1].startswith("1<")

    customers = _text(client.get(reverse("console:customers")))
    row = customers[customers.index(customer.org.name) :]
    assert "<td>3</td><td>2</td><td>17,911.60 USD</td>" in row
