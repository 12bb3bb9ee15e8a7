"""Fabric state changes reach both ends as notifications and as webhook deliveries."""

import pytest

from fabric.services import connection_approve, connection_request
from hub.models import Notification, WebhookDelivery
from hub.services import webhook_create

pytestmark = pytest.mark.django_db


def test_a_connection_request_and_its_approval_notify_both_ends(acme, cloud, django_capture_on_commit_callbacks):
    webhook, _ = webhook_create(
        membership=acme.member, url="http://127.0.0.1:9/hook", event_types=["connection.state_changed"]
    )
    with django_capture_on_commit_callbacks(execute=False):
        connection = connection_request(
            membership=acme.member, name="to-cloud", a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=100
        ).connections[0]
    provider_inbox = Notification.objects.filter(organization=cloud.org, user=cloud.member.user)
    assert [n.title for n in provider_inbox] == ["to-cloud: pending approval"]
    assert provider_inbox.get().link == f"/fabric/connections/{connection.public_id}/"

    with django_capture_on_commit_callbacks(execute=False):
        connection_approve(membership=cloud.member, connection=connection)
    requester_titles = set(
        Notification.objects.filter(organization=acme.org, user=acme.member.user).values_list("title", flat=True)
    )
    assert {"to-cloud: pending approval", "to-cloud: approved"} <= requester_titles
    # The fabric's own next step reaches webhooks and the timeline, not everybody's notifications.
    assert "to-cloud: provisioning" not in requester_titles
    deliveries = WebhookDelivery.objects.filter(webhook=webhook).order_by("created_at", "id")
    assert [d.payload["data"]["to_state"] for d in deliveries] == ["PENDING_APPROVAL", "APPROVED", "PROVISIONING"]
    assert deliveries[1].payload["type"] == "connection.state_changed"
    assert deliveries[1].payload["organization"] == acme.org.slug


def test_port_state_changes_are_announced(acme, django_capture_on_commit_callbacks):
    from fabric.services import port_order

    with django_capture_on_commit_callbacks(execute=True):
        port = port_order(membership=acme.member, metro=acme.fra.metro, name="new-port", speed_mbps=10_000)
    titles = list(Notification.objects.filter(organization=acme.org).values_list("title", flat=True))
    assert f"Port {port.name}: active" in titles
