"""A request a guard holds for approval waits on the requester's own admins before the provider sees it."""

import pytest
from django.urls import reverse

from fabric.choices import ConnectionState, PendingOn
from fabric.guards import Severity, Violation
from fabric.services import connection_request
from hub.choices import Role

pytestmark = pytest.mark.django_db


def hold_large_requests(request):
    """A test guard: anything above 500 Mbps needs an admin of the requesting organization."""
    if request.bandwidth_mbps > 500:
        return [Violation("test", Severity.APPROVAL, "Above 500 Mbps an admin must approve.")]
    return []


@pytest.fixture
def held(settings, acme, cloud, member_factory, django_capture_on_commit_callbacks):
    settings.FABRIC_CONNECTION_GUARDS = [f"{__name__}.hold_large_requests"]
    engineer = member_factory(Role.NETWORK_ENGINEER, organization=acme.org)
    with django_capture_on_commit_callbacks(execute=True):
        plan = connection_request(
            membership=engineer, name="big-pipe", a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=1000
        )
    return plan.connections[0]


def _login(client, membership):
    client.force_login(membership.user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session["active_org_id"] = membership.organization_id
    session.save()
    return client


def test_the_provider_sees_a_held_request_only_after_the_requesters_admin_approved(held, acme, cloud, client):
    assert (held.state, held.pending_on) == (ConnectionState.PENDING_APPROVAL, PendingOn.REQUESTER)
    detail = reverse("fabric:connection-detail", args=[held.public_id])

    _login(client, cloud.member)
    assert "big-pipe" not in client.get(reverse("fabric:incoming-requests")).content.decode()
    assert 'action="/fabric/connections/' not in client.get(detail).content.decode()  # no approve/reject yet

    _login(client, acme.member)  # the requester's owner
    page = client.get(detail).content.decode()
    assert "Approve for your organization" in page
    assert "Above 500 Mbps an admin must approve." in page
    response = client.post(reverse("fabric:connection-action", args=[held.public_id, "approve"]), follow=True)
    assert f"now waiting for {cloud.org.name}" in response.content.decode()
    held.refresh_from_db()
    assert (held.state, held.pending_on) == (ConnectionState.PENDING_APPROVAL, PendingOn.PROVIDER)

    _login(client, cloud.member)
    assert "big-pipe" in client.get(reverse("fabric:incoming-requests")).content.decode()


def test_a_network_engineer_cannot_approve_their_own_held_request(held, acme, member_factory, client):
    engineer = member_factory(Role.NETWORK_ENGINEER, organization=acme.org)
    _login(client, engineer)
    detail = reverse("fabric:connection-detail", args=[held.public_id])
    assert "Approve for your organization" not in client.get(detail).content.decode()
    response = client.post(reverse("fabric:connection-action", args=[held.public_id, "approve"]), follow=True)
    assert "Only an admin or owner of your organization can approve" in response.content.decode()
    held.refresh_from_db()
    assert held.pending_on == PendingOn.REQUESTER
