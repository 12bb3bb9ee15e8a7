"""The Django admin for platform operators: verifying providers (audited), finding offerings and orders."""

import pytest
from django.urls import reverse

from hub.errors import PermissionDenied
from hub.models import AuditEvent
from marketplace import services
from marketplace.models import ProviderProfile
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = UserFactory(email="ops@hub.example", is_staff=True, is_superuser=True)
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_operators_verify_providers_with_an_action_and_it_is_audited(operator, gpu_cloud, rival):
    url = reverse("admin:marketplace_providerprofile_changelist")
    response = operator.post(
        url, {"action": "verify", "_selected_action": [gpu_cloud.profile.pk, rival.profile.pk]}, follow=True
    )
    assert "2 providers verified." in response.content.decode()
    assert set(ProviderProfile.objects.values_list("verified", flat=True)) == {True}
    event = AuditEvent.objects.get(organization=gpu_cloud.org, action="provider.verify")
    assert (event.actor_email, event.after) == ("ops@hub.example", {"verified": True})

    operator.post(url, {"action": "unverify", "_selected_action": [rival.profile.pk]})
    rival.profile.refresh_from_db()
    assert rival.profile.verified is False
    filtered = operator.get(url, {"verified__exact": "1"}).content.decode()
    assert gpu_cloud.profile.name in filtered
    assert f">{rival.profile.name}<" not in filtered


def test_only_staff_can_verify(gpu_cloud):
    with pytest.raises(PermissionDenied):
        services.provider_set_verified(actor=gpu_cloud.member.user, profiles=[gpu_cloud.profile], verified=True)
    gpu_cloud.profile.refresh_from_db()
    assert gpu_cloud.profile.verified is False


def test_offerings_are_searched_and_filtered(operator, gpu_cloud, rival, make_offering):
    make_offering(gpu_cloud, name="Lambda H100 box")
    make_offering(rival, name="Runpod H100 box", published=False)
    url = reverse("admin:marketplace_offering_changelist")
    page = operator.get(url, {"q": "runpod"}).content.decode()
    assert "Runpod H100 box" in page
    assert "Lambda H100 box" not in page
    page = operator.get(url, {"status__exact": "PUBLISHED", "accelerator": "H100"}).content.decode()
    assert "Lambda H100 box" in page
    assert "Runpod H100 box" not in page


def test_orders_are_found_by_status_customer_and_id(operator, gpu_cloud, customer, make_offering):
    offering, access_point = make_offering(gpu_cloud)
    order = services.order_create(
        membership=customer.member,
        offering=offering,
        access_point=access_point,
        a_port=customer.fra,
        bandwidth_mbps=1000,
    ).order
    url = reverse("admin:marketplace_order_changelist")
    assert str(order.public_id) in operator.get(url, {"status": "PENDING_PROVIDER"}).content.decode()
    assert str(order.public_id) not in operator.get(url, {"status": "ACTIVE"}).content.decode()
    assert str(order.public_id) in operator.get(url, {"q": customer.org.name}).content.decode()
    assert str(order.public_id) in operator.get(url, {"q": str(order.public_id)}).content.decode()
    assert operator.get(url, {"q": "not-a-uuid"}).status_code == 200
