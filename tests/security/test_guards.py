"""The security policy as a fabric guard: zones, blocked providers and categories, approval above a
bandwidth, and the record a denial leaves (audit event and policy alert)."""

import pytest
from django.urls import reverse

from fabric.choices import ConnectionState as S
from fabric.choices import PendingOn
from fabric.models import Connection, ConnectionEvent
from fabric.services import PolicyViolation, connection_approve, connection_modify_bandwidth, connection_request
from hub.choices import Role
from hub.errors import Conflict, PermissionDenied
from hub.models import AuditEvent
from marketplace import services as market
from marketplace.choices import ApprovalMode, Category, PriceUnit
from security import services
from security.models import Alert
from tests.fabric.conftest import _fast_simulated_driver, acme, cloud, metros  # noqa: F401

pytestmark = pytest.mark.django_db
CONNECTIONS = "/api/v1/connections/"
US_ONLY_EU = (
    "Your organization's policy allows connections only in the sovereignty zone(s) EU; "
    "the Z side is in Washington DC (Ashburn) (DC), zone US."
)


def _body(a_port, z_port, **extra):
    return {
        "name": "c1",
        "a_port": str(a_port.public_id),
        "z_port": str(z_port.public_id),
        "bandwidth_mbps": 100,
        **extra,
    }


@pytest.fixture
def eu_only(acme):  # noqa: F811
    return services.policy_update(membership=acme.member, allowed_zones=["EU"])


@pytest.fixture
def provider_profile(cloud):  # noqa: F811
    return market.provider_profile_upsert(membership=cloud.member, name="GPU Cloud", slug="gpu-cloud")


def test_eu_only_blocks_a_us_metro_with_the_reason_and_records_the_denial(acme, cloud, eu_only):  # noqa: F811
    with pytest.raises(PolicyViolation) as refused:
        connection_request(membership=acme.member, name="to-dc", a_port=acme.fra, z_port=cloud.dc, bandwidth_mbps=100)
    assert refused.value.message == US_ONLY_EU
    assert not Connection.objects.exists()
    denial = AuditEvent.objects.get(action="policy.deny")
    assert denial.after["reasons"] == [US_ONLY_EU]
    assert denial.actor == acme.member.user
    alert = Alert.objects.get()
    assert (alert.source, alert.category, alert.status) == ("POLICY", "policy_denial", "OPEN")
    assert alert.title == "Connection to Washington DC (Ashburn) (DC) refused by policy"
    # The same refusal again counts on the one alert.
    with pytest.raises(PolicyViolation):
        connection_request(membership=acme.member, name="to-dc", a_port=acme.fra, z_port=cloud.dc, bandwidth_mbps=100)
    assert Alert.objects.get().count == 2


def test_eu_only_allows_an_eu_metro(acme, cloud, eu_only):  # noqa: F811
    plan = connection_request(
        membership=acme.member, name="to-fra", a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=100
    )
    assert plan.connections[0].state == S.PENDING_APPROVAL
    assert not Alert.objects.exists()


def test_the_api_refuses_with_the_reason_and_a_dry_run_records_nothing(acme, cloud, eu_only, token_client):  # noqa: F811
    client = token_client(acme.member)
    dry = client.post(CONNECTIONS, _body(acme.fra, cloud.dc, dry_run=True), format="json").json()
    assert dry["allowed"] is False
    assert {"guard": "security_policy", "severity": "block", "message": US_ONLY_EU} in dry["violations"]
    assert not Alert.objects.exists()
    response = client.post(CONNECTIONS, _body(acme.fra, cloud.dc), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "policy_violation"
    assert response.json()["error"]["message"] == US_ONLY_EU
    assert Alert.objects.filter(source="POLICY").count() == 1


def test_the_order_form_shows_the_reason(acme, cloud, eu_only, logged_in):  # noqa: F811
    browser = logged_in(acme.member)
    response = browser.post(
        reverse("fabric:connection-request"),
        {"name": "to-dc", "a_port": acme.fra.public_id, "z_port": cloud.dc.public_id, "bandwidth_mbps": 100},
    )
    assert response.status_code == 400
    assert "allows connections only in the sovereignty zone(s) EU" in response.content.decode()
    assert not Connection.objects.exists()


def test_a_blocked_provider_is_refused(acme, cloud, provider_profile):  # noqa: F811
    services.policy_update(membership=acme.member, blocked_providers=[provider_profile])
    with pytest.raises(PolicyViolation, match="blocks connections to the provider GPU Cloud"):
        connection_request(membership=acme.member, name="x", a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=100)


def test_a_port_serving_a_blocked_category_is_refused_in_a_marketplace_order(acme, cloud, provider_profile):  # noqa: F811
    offering = market.offering_create(
        membership=cloud.member,
        category=Category.MODEL_VENDOR,
        name="Chat model",
        price_amount="1",
        price_unit=PriceUnit.MTOK_INPUT,
        attributes={
            "context_window": 128000,
            "input_price_per_mtok": 1,
            "output_price_per_mtok": 2,
            "modality": "text",
        },
    )
    access_point = market.access_point_create(
        membership=cloud.member,
        offering=offering,
        port=cloud.fra,
        allowed_bandwidths_mbps=[100],
        approval_mode=ApprovalMode.AUTOMATIC,
    )
    offering = market.offering_publish(membership=cloud.member, offering=offering)
    services.policy_update(membership=acme.member, blocked_categories=["MODEL_VENDOR"])
    with pytest.raises(PolicyViolation, match="blocks the category Model vendor, which the port cloud-fra serves"):
        market.order_create(
            membership=acme.member, offering=offering, access_point=access_point, a_port=acme.fra, bandwidth_mbps=100
        )
    assert not Connection.objects.exists()


# --- Approval inside the requesting organization ---------------------------------------------
@pytest.fixture
def approval_over_500(acme):  # noqa: F811
    return services.policy_update(membership=acme.member, approval_bandwidth_mbps=500)


@pytest.fixture
def engineer(acme, member_factory):  # noqa: F811
    return member_factory(Role.NETWORK_ENGINEER, organization=acme.org)


def test_above_the_approval_bandwidth_a_connection_waits_for_an_org_admin(
    acme,  # noqa: F811
    engineer,
    approval_over_500,
    django_capture_on_commit_callbacks,
):
    plan = connection_request(membership=engineer, name="big", a_port=acme.fra, z_port=acme.ams, bandwidth_mbps=800)
    assert plan.approvals == ["Above 500 Mbps, an admin or owner of Acme must approve this connection."]
    connection = Connection.objects.get()
    assert (connection.state, connection.pending_on) == (S.PENDING_APPROVAL, PendingOn.REQUESTER)
    # Not the engineer who asked, even though both ends are their own ports.
    with pytest.raises(PermissionDenied, match="Only an admin or owner"):
        connection_approve(membership=engineer, connection=connection)
    with django_capture_on_commit_callbacks(execute=True):
        connection_approve(membership=acme.member, connection=connection)
    connection.refresh_from_db()
    assert (connection.state, connection.pending_on) == (S.ACTIVE, PendingOn.NONE)
    assert AuditEvent.objects.filter(action="connection.authorize", actor=acme.member.user).exists()


def test_after_the_org_admin_a_provider_still_approves(acme, cloud, engineer, approval_over_500):  # noqa: F811
    connection = connection_request(
        membership=engineer, name="big", a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=800
    ).connections[0]
    with pytest.raises(Conflict, match="approval inside the requesting organization first"):
        connection_approve(membership=cloud.member, connection=connection)
    connection_approve(membership=acme.member, connection=connection)
    connection.refresh_from_db()
    assert (connection.state, connection.pending_on) == (S.PENDING_APPROVAL, PendingOn.PROVIDER)
    assert "Now waiting for GPU Cloud." in ConnectionEvent.objects.filter(connection=connection).last().message
    connection_approve(membership=cloud.member, connection=connection)
    connection.refresh_from_db()
    assert connection.state == S.PROVISIONING


def test_an_admins_own_request_passes_with_a_note(acme, approval_over_500, django_capture_on_commit_callbacks):  # noqa: F811
    with django_capture_on_commit_callbacks(execute=True):
        plan = connection_request(
            membership=acme.member, name="big", a_port=acme.fra, z_port=acme.ams, bandwidth_mbps=800
        )
    assert plan.approvals == []
    connection = Connection.objects.get()
    assert connection.state == S.ACTIVE
    requested = ConnectionEvent.objects.get(connection=connection, to_state=S.PENDING_APPROVAL)
    assert f"approved by {acme.member.user.email} as an admin" in requested.message


def test_below_the_approval_bandwidth_nothing_waits(acme, engineer, approval_over_500):  # noqa: F811
    connection_request(membership=engineer, name="small", a_port=acme.fra, z_port=acme.ams, bandwidth_mbps=500)
    assert Connection.objects.get().pending_on != PendingOn.REQUESTER


def test_an_engineers_bandwidth_increase_above_it_is_refused_and_recorded(
    acme,  # noqa: F811
    engineer,
    approval_over_500,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        connection = connection_request(
            membership=engineer, name="small", a_port=acme.fra, z_port=acme.ams, bandwidth_mbps=200
        ).connections[0]
    connection.refresh_from_db()
    assert connection.state == S.ACTIVE
    with pytest.raises(PolicyViolation, match="ask an admin or owner to make this change"):
        connection_modify_bandwidth(membership=engineer, connection=connection, bandwidth_mbps=900)
    connection.refresh_from_db()
    assert (connection.state, connection.bandwidth_mbps) == (S.ACTIVE, 200)
    alert = Alert.objects.get(source="POLICY")
    assert alert.connection == connection
    assert alert.evidence["bandwidth_change"] is True
