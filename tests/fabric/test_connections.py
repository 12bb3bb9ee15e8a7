"""Connections: the published state machine through services and the REST API, VLANs, capacity,
redundant pairs, dry runs, guards, who may see and do what, quotes, idempotency and retries."""

from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection as db_connection

from fabric.choices import ConnectionState, PendingOn, Priority, StepStatus, WorkflowKind, WorkflowStatus
from fabric.guards import Severity, Violation
from fabric.models import Connection, ConnectionEvent, Port, VlanAssignment, Workflow
from fabric.services import (
    ConnectionSpec,
    connection_approve,
    connection_cancel,
    connection_deprovision,
    connection_modify_bandwidth,
    connection_reject,
    connection_request,
    connection_retry,
)
from fabric.tasks import run_workflow
from fabric.workflows import STEPS
from hub.choices import Role
from hub.errors import Conflict, DomainError, NotFound, PermissionDenied
from hub.models import AuditEvent, IdempotencyRecord
from tests.fabric.factories import PortFactory

pytestmark = pytest.mark.django_db

CONNECTIONS = "/api/v1/connections/"
QUOTES = "/api/v1/quotes/"
S = ConnectionState


# --- Helpers -------------------------------------------------------------------------------------
def _error(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["status"] == status
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    return error


def _request(member, a_port, z_port, bandwidth_mbps=100, name="link", **kwargs) -> Connection:
    return connection_request(
        membership=member, name=name, a_port=a_port, z_port=z_port, bandwidth_mbps=bandwidth_mbps, **kwargs
    ).connections[0]


def _state(connection) -> str:
    return Connection.objects.get(pk=connection.pk).state


def _committed(*ports) -> list[int]:
    return [Port.objects.get(pk=port.pk).committed_mbps for port in ports]


def _vlans(port) -> set[int]:
    return set(VlanAssignment.objects.filter(port=port).values_list("vlan", flat=True))


def _transitions(connection) -> list[tuple[str, str]]:
    return list(connection.events.order_by("created_at", "id").values_list("from_state", "to_state"))


def _body(a_port, z_port, bandwidth_mbps=100, **extra) -> dict:
    return {
        "name": "link",
        "a_port": str(a_port.public_id),
        "z_port": str(z_port.public_id),
        "bandwidth_mbps": bandwidth_mbps,
        **extra,
    }


def _url(connection, verb="") -> str:
    return f"{CONNECTIONS}{connection.public_id}/{verb + '/' if verb else ''}"


@pytest.fixture
def pending(acme, cloud) -> Connection:
    """A 100 Mbps request from acme's Frankfurt port to the provider's, waiting for approval."""
    return _request(acme.member, acme.fra, cloud.fra, name="to-cloud")


@pytest.fixture
def active(acme, django_capture_on_commit_callbacks) -> Connection:
    """A 400 Mbps own-to-own connection, provisioned."""
    with django_capture_on_commit_callbacks(execute=True):
        connection = _request(acme.member, acme.fra, acme.ams, 400, name="backbone")
    connection.refresh_from_db()
    assert connection.state == S.ACTIVE
    return connection


# --- Guards used by the pluggability tests (referenced by dotted path) ----------------------------
def forbid_inter_region(request) -> list[Violation]:
    if request.a_port.metro.region != request.z_port.metro.region:
        return [Violation("data_residency", Severity.BLOCK, "Connections may not leave the region.")]
    return []


def security_review(request) -> list[Violation]:
    return [Violation("security_review", Severity.APPROVAL, "The security team must review this connection.")]


def capacity_warning(request) -> list[Violation]:
    return [Violation("capacity_note", Severity.WARN, "This port is getting busy.")]


# --- Own-to-own and approval ---------------------------------------------------------------------
def test_own_to_own_goes_straight_to_active(acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        plan = connection_request(
            membership=acme.member, name="backbone", a_port=acme.fra, z_port=acme.ams, bandwidth_mbps=250
        )
    assert plan.approvals == []
    connection = Connection.objects.get(pk=plan.connections[0].pk)
    assert (connection.state, connection.pending_on) == (S.ACTIVE, PendingOn.NONE)
    assert (connection.a_vlan, connection.z_vlan, connection.bandwidth_mbps) == (100, 100, 250)
    assert _committed(acme.fra, acme.ams) == [250, 250]
    assert _vlans(acme.fra) == {100}
    assert _vlans(acme.ams) == {100}
    assert _transitions(connection) == [
        ("", S.PENDING_APPROVAL),
        (S.PENDING_APPROVAL, S.APPROVED),
        (S.APPROVED, S.PROVISIONING),
        (S.PROVISIONING, S.ACTIVE),
    ]
    assert connection.events.get(to_state=S.APPROVED).message == "Own port: no approval needed."
    workflow = connection.workflows.get()
    assert (workflow.kind, workflow.status) == (WorkflowKind.CONNECTION_PROVISION, WorkflowStatus.SUCCEEDED)
    assert list(workflow.steps.values_list("name", "status", "attempts")) == [
        (name, StepStatus.SUCCEEDED, 1)
        for name in ("reserve_vlans", "configure_a_side", "configure_z_side", "verify", "activate")
    ]
    actions = list(
        AuditEvent.objects.filter(object_id=str(connection.public_id))
        .order_by("created_at", "id")
        .values_list("action", flat=True)
    )
    assert actions == ["connection.request", "connection.approved", "connection.provisioning", "connection.active"]


def test_an_own_to_own_request_takes_a_bounded_number_of_statements(acme, django_assert_max_num_queries):
    """Two guards, the ports' lock and reservation (one UPDATE), both tags (one query), the
    connection with its tags, its timeline with the audit entries and the workflow with its steps
    (one statement each on PostgreSQL), the webhook look-up: 10 with the test's savepoint pair.
    The Z side's check reads the ports the request already holds."""
    _request(acme.member, acme.fra, acme.ams)  # warm: the first request loads what every request shares
    with django_assert_max_num_queries(10 if db_connection.vendor == "postgresql" else 13):
        connection = _request(acme.member, acme.fra, acme.ams, name="second")
    assert (connection.state, connection.a_vlan, connection.z_vlan) == (S.PROVISIONING, 101, 101)
    assert list(connection.workflows.get().steps.values_list("position", "name", "status", "attempts")) == [
        (position, name, StepStatus.PENDING, 0)
        for position, name in enumerate(STEPS[WorkflowKind.CONNECTION_PROVISION], 1)
    ]


def test_a_port_that_left_active_after_it_was_read_is_refused_under_the_lock(acme):
    """The request's ports may be stale: the locked rows decide, and nothing is written."""
    a_port, z_port = Port.objects.get(pk=acme.fra.pk), Port.objects.get(pk=acme.ams.pk)
    Port.objects.filter(pk=acme.ams.pk).update(state="DECOMMISSIONING")
    with pytest.raises(NotFound) as excinfo:
        _request(acme.member, a_port, z_port)
    assert excinfo.value.field == "z_port"
    Port.objects.filter(pk=acme.ams.pk).update(state="ACTIVE")
    Port.objects.filter(pk=acme.fra.pk).update(state="DECOMMISSIONING")
    with pytest.raises(Conflict, match="not active") as excinfo:
        _request(acme.member, a_port, z_port)
    assert excinfo.value.field == "a_port"
    assert Connection.objects.count() == 0
    assert _committed(acme.fra, acme.ams) == [0, 0]
    assert not VlanAssignment.objects.exists()


def test_a_tag_booked_behind_the_locks_back_is_refused_by_the_constraint(acme):
    """The (port, vlan) constraint is the last line of defence: a clash it catches (here a tag
    pick that ignores a booking, as a writer bypassing the locks would) is a clear 409."""
    _request(acme.member, acme.fra, acme.ams)  # books 100 on both ports
    stale = {acme.fra.pk: 100, acme.ams.pk: 100}
    with mock.patch("fabric.services._lowest_free_vlans", return_value=stale), pytest.raises(Conflict) as excinfo:
        _request(acme.member, acme.fra, acme.ams, name="clash")
    assert excinfo.value.code == "vlan_in_use"
    assert list(Connection.objects.values_list("name", flat=True)) == ["link"]
    assert _committed(acme.fra, acme.ams) == [100, 100]


def test_a_redundant_pair_to_one_own_port_gets_two_tags_on_it(acme):
    plan = connection_request(
        membership=acme.member,
        name="pair",
        a_port=acme.fra,
        z_port=acme.ams,
        bandwidth_mbps=100,
        a_vlan=100,
        secondary=ConnectionSpec(a_port=acme.fra10, z_port=acme.ams),
    )
    primary, secondary = plan.connections
    assert (primary.a_vlan, primary.z_vlan, secondary.a_vlan, secondary.z_vlan) == (100, 100, 100, 101)
    assert _vlans(acme.ams) == {100, 101}
    assert _committed(acme.fra, acme.fra10, acme.ams) == [100, 100, 200]


def test_provider_approval_over_the_api(acme, cloud, token_client, django_capture_on_commit_callbacks):
    requester, provider = token_client(acme.member), token_client(cloud.member)

    response = requester.post(CONNECTIONS, _body(acme.fra, cloud.fra, purchase_order="PO-7"), format="json")
    assert response.status_code == 201, response.content
    plan = response.json()
    assert plan["approvals"] == ["GPU Cloud must approve the connection to cloud-fra."]
    [created] = plan["connections"]
    assert (created["state"], created["pending_on"], created["z_vlan"]) == ("PENDING_APPROVAL", "PROVIDER", None)
    assert created["purchase_order"] == "PO-7"
    assert _committed(acme.fra, cloud.fra) == [100, 100]  # reserved while waiting

    # The provider sees it as incoming; the requester as outgoing.
    incoming = provider.get(CONNECTIONS, {"direction": "incoming"}).json()
    assert [c["id"] for c in incoming["results"]] == [created["id"]]
    assert requester.get(CONNECTIONS, {"direction": "incoming"}).json()["count"] == 0
    assert requester.get(CONNECTIONS, {"direction": "outgoing"}).json()["count"] == 1
    assert provider.get(CONNECTIONS, {"pending_on": "PROVIDER"}).json()["count"] == 1

    url = f"{CONNECTIONS}{created['id']}/"
    with django_capture_on_commit_callbacks(execute=True):
        approved = provider.post(f"{url}approve/", {"z_vlan": 321}, format="json")
    assert approved.status_code == 200, approved.content
    assert (approved.json()["state"], approved.json()["z_vlan"]) == ("PROVISIONING", 321)

    detail = requester.get(url).json()
    assert (detail["state"], detail["pending_on"], detail["z_vlan"]) == ("ACTIVE", "NONE", 321)
    assert _vlans(cloud.fra) == {321}

    events = requester.get(f"{url}events/").json()
    assert [(e["from_state"], e["to_state"], e["actor"]) for e in events] == [
        ("", "PENDING_APPROVAL", acme.member.user.email),
        ("PENDING_APPROVAL", "APPROVED", cloud.member.user.email),
        ("APPROVED", "PROVISIONING", "fabric"),
        ("PROVISIONING", "ACTIVE", "fabric"),
    ]
    assert events[1]["message"] == "Approved by GPU Cloud."
    approve_audit = AuditEvent.objects.get(action="connection.approve")
    assert (approve_audit.organization, approve_audit.after) == (cloud.org, {"z_vlan": 321})

    workflows = provider.get(f"{url}workflows/").json()
    assert [(w["kind"], w["status"]) for w in workflows] == [("CONNECTION_PROVISION", "SUCCEEDED")]
    assert [s["name"] for s in workflows[0]["steps"]] == [
        "reserve_vlans",
        "configure_a_side",
        "configure_z_side",
        "verify",
        "activate",
    ]


def test_approval_allocates_the_lowest_free_vlan_when_none_is_chosen(acme, cloud):
    taken = _request(acme.member, acme.fra, cloud.fra, name="first")
    connection_approve(membership=cloud.member, connection=taken, z_vlan=100)
    second = _request(acme.member, acme.fra, cloud.fra, name="second")
    approved = connection_approve(membership=cloud.member, connection=second)
    assert approved.z_vlan == 101
    assert _vlans(cloud.fra) == {100, 101}


def test_approving_with_a_vlan_in_use_is_refused_and_can_be_retried_with_another(acme, cloud, token_client):
    first = _request(acme.member, acme.fra, cloud.fra, name="first")
    connection_approve(membership=cloud.member, connection=first, z_vlan=700)
    second = _request(acme.member, acme.fra, cloud.fra, name="second")
    provider = token_client(cloud.member)

    error = _error(provider.post(_url(second, "approve"), {"z_vlan": 700}, format="json"), 409)
    assert error["code"] == "vlan_in_use"
    assert error["fields"] == {"z_vlan": ["VLAN 700 is already in use on port cloud-fra."]}
    assert _state(second) == S.PENDING_APPROVAL

    assert provider.post(_url(second, "approve"), {"z_vlan": 701}, format="json").status_code == 200
    assert _vlans(cloud.fra) == {700, 701}


def test_reject_requires_a_reason_and_releases_capacity_and_vlans(acme, cloud, pending, token_client):
    provider = token_client(cloud.member)
    assert _error(provider.post(_url(pending, "reject"), {}, format="json"), 400)["fields"].keys() == {"reason"}
    assert _error(provider.post(_url(pending, "reject"), {"reason": "  "}, format="json"), 400)["fields"].keys() == {
        "reason"
    }
    with pytest.raises(DomainError) as excinfo:
        connection_reject(membership=cloud.member, connection=pending, reason="   ")
    assert excinfo.value.field == "reason"
    assert _state(pending) == S.PENDING_APPROVAL

    response = provider.post(_url(pending, "reject"), {"reason": "No capacity in that cage."}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["state"], body["pending_on"], body["status_reason"]) == (
        "REJECTED",
        "NONE",
        "No capacity in that cage.",
    )
    assert pending.events.last().message == "Rejected: No capacity in that cage."
    assert _committed(acme.fra, cloud.fra) == [0, 0]
    assert _vlans(acme.fra) == set()
    assert AuditEvent.objects.get(action="connection.reject").after == {"reason": "No capacity in that cage."}

    # The VLAN and bandwidth are free for the next request.
    again = _request(acme.member, acme.fra, cloud.fra, 1000)
    assert again.a_vlan == pending.a_vlan == 100


def test_requester_cancels_before_provisioning_and_gets_everything_back(acme, pending, token_client, cloud):
    response = token_client(acme.member).post(_url(pending, "cancel"))
    assert response.status_code == 200, response.content
    assert (response.json()["state"], response.json()["pending_on"]) == ("CANCELLED", "NONE")
    assert _committed(acme.fra, cloud.fra) == [0, 0]
    assert _vlans(acme.fra) == set()
    assert AuditEvent.objects.filter(action="connection.cancel", organization=acme.org).count() == 1


def test_cancel_is_refused_once_provisioning_has_started(acme, token_client):
    # Own-to-own is approved at once; its workflow is enqueued but not run yet.
    provisioning = _request(acme.member, acme.fra, acme.ams)
    assert provisioning.state == S.PROVISIONING

    error = _error(token_client(acme.member).post(_url(provisioning, "cancel")), 409)
    assert error["code"] == "invalid_state"
    assert error["message"] == "A connection that is provisioning cannot become cancelled."
    assert _state(provisioning) == S.PROVISIONING
    assert _committed(acme.fra) == [100]


@pytest.mark.parametrize(
    ("method", "verb", "data", "message"),
    [
        ("post", "approve", {}, "A connection that is active cannot become approved."),
        ("post", "reject", {"reason": "no"}, "A connection that is active cannot become rejected."),
        ("post", "cancel", None, "A connection that is active cannot become cancelled."),
        ("post", "retry", None, "Only a failed connection can be retried."),
    ],
)
def test_invalid_transitions_answer_409_invalid_state(acme, active, token_client, method, verb, data, message):
    error = _error(getattr(token_client(acme.member), method)(_url(active, verb), data, format="json"), 409)
    assert (error["code"], error["message"]) == ("invalid_state", message)
    assert _state(active) == S.ACTIVE
    assert active.events.count() == 4


def test_pending_requests_cannot_be_deprovisioned_or_modified(acme, pending, token_client):
    client = token_client(acme.member)
    error = _error(client.delete(_url(pending)), 409)
    assert (error["code"], error["message"]) == (
        "invalid_state",
        "This connection is not provisioned yet: cancel the request instead.",
    )
    error = _error(client.patch(_url(pending), {"bandwidth_mbps": 200}, format="json"), 409)
    assert (error["code"], error["message"]) == (
        "invalid_state",
        "A connection that is pending approval cannot become modifying.",
    )
    assert _state(pending) == S.PENDING_APPROVAL


def test_a_rejected_request_stays_rejected(cloud, pending):
    connection_reject(membership=cloud.member, connection=pending, reason="no")
    with pytest.raises(Conflict) as excinfo:
        connection_approve(membership=cloud.member, connection=pending)
    assert excinfo.value.code == "invalid_state"
    assert _state(pending) == S.REJECTED


# --- VLANs ---------------------------------------------------------------------------------------
def test_a_given_vlan_is_used_and_others_are_allocated_lowest_free_from_100(acme):
    assert _request(acme.member, acme.fra, acme.ams, a_vlan=42).a_vlan == 42
    assert _request(acme.member, acme.fra, acme.ams, a_vlan=100).a_vlan == 100
    assert _request(acme.member, acme.fra, acme.ams, a_vlan=102).a_vlan == 102
    assert _request(acme.member, acme.fra, acme.ams).a_vlan == 101
    assert _request(acme.member, acme.fra, acme.ams).a_vlan == 103
    assert _vlans(acme.fra) == {42, 100, 101, 102, 103}


def test_a_vlan_in_use_is_refused_with_a_field_error_and_nothing_is_written(acme, token_client):
    _request(acme.member, acme.fra, acme.ams, a_vlan=42)
    before = (Connection.objects.count(), ConnectionEvent.objects.count(), _committed(acme.fra, acme.ams))

    error = _error(
        token_client(acme.member).post(CONNECTIONS, _body(acme.fra, acme.ams, a_vlan=42), format="json"), 409
    )
    assert error["code"] == "vlan_in_use"
    assert error["fields"] == {"a_vlan": ["VLAN 42 is already in use on port acme-fra."]}
    assert (Connection.objects.count(), ConnectionEvent.objects.count(), _committed(acme.fra, acme.ams)) == before


def test_vlan_tags_outside_2_to_4094_are_invalid(acme, token_client):
    error = _error(
        token_client(acme.member).post(CONNECTIONS, _body(acme.fra, acme.ams, a_vlan=4095), format="json"), 400
    )
    assert set(error["fields"]) == {"a_vlan"}
    with pytest.raises(DomainError) as excinfo:
        _request(acme.member, acme.fra, acme.ams, a_vlan=1)
    assert (excinfo.value.field, excinfo.value.message) == ("a_vlan", "A VLAN tag is between 2 and 4094.")
    assert Connection.objects.count() == 0


# --- Capacity ------------------------------------------------------------------------------------
def test_a_port_is_never_oversubscribed(acme, token_client):
    client = token_client(acme.member)
    assert client.post(CONNECTIONS, _body(acme.fra, acme.fra10, 600), format="json").status_code == 201

    error = _error(client.post(CONNECTIONS, _body(acme.fra, acme.fra10, 500), format="json"), 409)
    assert error["code"] == "port_capacity"
    assert error["fields"] == {"bandwidth_mbps": ["Port acme-fra has 400 Mbps free; this needs 500 Mbps."]}
    assert _committed(acme.fra, acme.fra10) == [600, 600]

    # Exactly filling the port is fine; one more Mbps is not.
    assert client.post(CONNECTIONS, _body(acme.fra, acme.fra10, 400), format="json").status_code == 201
    assert _committed(acme.fra) == [1000]
    assert (
        _error(client.post(CONNECTIONS, _body(acme.fra, acme.fra10, 1), format="json"), 409)["code"] == "port_capacity"
    )
    assert Connection.objects.count() == 2


def test_a_full_provider_port_is_refused_without_revealing_its_numbers(acme, cloud, globex, metros):
    small = PortFactory(organization=cloud.org, metro=metros["FR"], name="cloud-small")
    _request(acme.member, acme.fra10, small, 800)
    with pytest.raises(Conflict) as excinfo:
        _request(acme.member, acme.fra10, small, 300, name="more")
    assert excinfo.value.code == "port_capacity"
    assert (
        excinfo.value.message == "The Z-side port cannot take this much more bandwidth. Choose less, or another port."
    )
    assert "800" not in excinfo.value.message


def test_capacity_and_vlans_are_released_only_when_deprovisioning_finishes(acme, active, token_client):
    client = token_client(acme.member)
    response = client.delete(_url(active))  # the workflow is enqueued, not run yet
    assert response.status_code == 202, response.content
    assert response.json()["state"] == "DEPROVISIONING"
    assert _committed(acme.fra, acme.ams) == [400, 400]
    assert _vlans(acme.fra) == {100}

    run_workflow(active.workflows.get(kind=WorkflowKind.CONNECTION_DEPROVISION).pk)
    active.refresh_from_db()
    assert (active.state, active.pending_on) == (S.DEPROVISIONED, PendingOn.NONE)
    assert _committed(acme.fra, acme.ams) == [0, 0]
    assert _vlans(acme.fra) == set()
    assert _vlans(acme.ams) == set()
    assert active.events.last().message == "Deprovisioned; VLANs and bandwidth released."


def test_modify_up_checks_capacity_and_reserves_before_the_change(acme, active, token_client):
    client = token_client(acme.member)
    error = _error(client.patch(_url(active), {"bandwidth_mbps": 1200}, format="json"), 409)
    assert error["code"] == "port_capacity"
    assert error["fields"] == {"bandwidth_mbps": ["Port acme-fra has 600 Mbps free; this needs 800 Mbps."]}
    assert _state(active) == S.ACTIVE
    assert _committed(acme.fra, acme.ams) == [400, 400]

    response = client.patch(_url(active), {"bandwidth_mbps": 900}, format="json")  # enqueued, not run yet
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["state"], body["bandwidth_mbps"], body["requested_bandwidth_mbps"]) == ("MODIFYING", 400, 900)
    assert _committed(acme.fra, acme.ams) == [900, 900]  # the extra is held during the change

    # A second change while one is running is refused.
    assert _error(client.patch(_url(active), {"bandwidth_mbps": 500}, format="json"), 409)["code"] == "invalid_state"

    run_workflow(active.workflows.get(kind=WorkflowKind.CONNECTION_MODIFY).pk)
    active.refresh_from_db()
    assert (active.state, active.bandwidth_mbps, active.requested_bandwidth_mbps) == (S.ACTIVE, 900, None)
    assert _committed(acme.fra, acme.ams) == [900, 900]
    assert active.events.last().message == "Bandwidth now 900 Mbps."
    assert active.workflows.filter(kind=WorkflowKind.CONNECTION_MODIFY, status=WorkflowStatus.SUCCEEDED).count() == 1


def test_modify_down_releases_capacity_only_when_the_change_is_done(acme, active, token_client):
    client = token_client(acme.member)
    assert _error(client.patch(_url(active), {"bandwidth_mbps": 400}, format="json"), 400)["fields"] == {
        "bandwidth_mbps": ["That is the current bandwidth."]
    }

    response = client.patch(_url(active), {"bandwidth_mbps": 150}, format="json")
    assert response.status_code == 202, response.content
    assert _committed(acme.fra, acme.ams) == [400, 400]  # the old bandwidth is in service until the change

    run_workflow(active.workflows.get(kind=WorkflowKind.CONNECTION_MODIFY).pk)
    active.refresh_from_db()
    assert (active.state, active.bandwidth_mbps) == (S.ACTIVE, 150)
    assert _committed(acme.fra, acme.ams) == [150, 150]


# --- Redundancy ----------------------------------------------------------------------------------
def test_a_redundant_pair_is_created_in_one_request(acme, cloud, token_client):
    body = _body(
        acme.fra,
        cloud.fra,
        200,
        name="dc-link",
        secondary={"a_port": str(acme.ams.public_id), "z_port": str(cloud.fra.public_id)},
    )
    response = token_client(acme.member).post(CONNECTIONS, body, format="json")
    assert response.status_code == 201, response.content
    plan = response.json()
    primary, secondary = plan["connections"]
    assert (primary["name"], primary["priority"]) == ("dc-link (primary)", Priority.PRIMARY)
    assert (secondary["name"], secondary["priority"]) == ("dc-link (secondary)", Priority.SECONDARY)
    assert primary["redundancy_group"] is not None
    assert primary["redundancy_group"] == secondary["redundancy_group"]
    assert (primary["a_port"]["name"], secondary["a_port"]["name"]) == ("acme-fra", "acme-ams")
    assert len(plan["latency"]) == 2
    assert len(plan["quote"]["lines"]) == 4
    # Both land on the same provider port: it carries both.
    assert _committed(acme.fra, acme.ams, cloud.fra) == [200, 200, 400]


def test_a_redundant_pair_needs_two_different_a_ports(acme, cloud, token_client):
    body = _body(acme.fra, cloud.fra, secondary={"a_port": str(acme.fra.public_id), "z_port": str(cloud.dc.public_id)})
    error = _error(token_client(acme.member).post(CONNECTIONS, body, format="json"), 400)
    assert error["fields"] == {"secondary.a_port": ["A redundant pair needs two different A-side ports."]}
    assert Connection.objects.count() == 0
    assert _committed(acme.fra, cloud.fra, cloud.dc) == [0, 0, 0]


# --- Dry runs ------------------------------------------------------------------------------------
def _footprint(*ports):
    return (
        Connection.objects.count(),
        VlanAssignment.objects.count(),
        ConnectionEvent.objects.count(),
        Workflow.objects.count(),
        AuditEvent.objects.count(),
        IdempotencyRecord.objects.count(),
        _committed(*ports),
    )


def test_a_dry_run_answers_price_latency_and_approvals_and_writes_nothing(
    acme, cloud, token_client, django_capture_on_commit_callbacks
):
    client = token_client(acme.member)
    before = _footprint(acme.fra, acme.ams, cloud.fra)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(CONNECTIONS, _body(acme.fra, cloud.fra, 150, dry_run=True), format="json")
        own = client.post(CONNECTIONS, _body(acme.fra, acme.ams, 150, dry_run=True), format="json")
    assert (response.status_code, own.status_code) == (200, 200)
    assert _footprint(acme.fra, acme.ams, cloud.fra) == before
    assert callbacks == []  # no workflow was enqueued

    plan = response.json()
    assert (plan["dry_run"], plan["allowed"], plan["violations"]) == (True, True, [])
    assert plan["approvals"] == ["GPU Cloud must approve the connection to cloud-fra."]
    assert plan["quote"] == {
        "currency": "USD",
        "monthly_total": "160.00",
        "one_off_total": "100.00",
        "lines": [
            {"description": "200 Mbps tier, same metro (FR to FR)", "monthly": "160.00", "one_off": "0.00"},
            {"description": "Connection setup", "monthly": "0.00", "one_off": "100.00"},
        ],
    }
    [leg] = plan["latency"]
    assert (leg["a_metro"], leg["z_metro"], leg["distance_km"]) == ("FR", "FR", 0)
    assert leg["estimated_rtt_ms"] >= leg["floor_rtt_ms"] >= 0

    own_plan = own.json()
    assert own_plan["approvals"] == []
    assert own_plan["quote"]["monthly_total"] == "256.00"  # same region: 160 x 1.6
    [own_leg] = own_plan["latency"]
    assert own_leg["distance_km"] > 300
    assert own_leg["estimated_rtt_ms"] >= own_leg["floor_rtt_ms"] > 0


def test_a_dry_run_reports_a_blocking_guard_instead_of_failing(acme, token_client, settings):
    settings.FABRIC_MAX_ORG_BANDWIDTH_MBPS = 100
    client = token_client(acme.member)
    before = _footprint(acme.fra, acme.ams)
    response = client.post(CONNECTIONS, _body(acme.fra, acme.ams, 150, dry_run=True), format="json")
    assert response.status_code == 200, response.content
    plan = response.json()
    assert (plan["dry_run"], plan["allowed"], plan["connections"]) == (True, False, [])
    assert [(v["guard"], v["severity"]) for v in plan["violations"]] == [("max_org_bandwidth", "block")]
    assert _footprint(acme.fra, acme.ams) == before


# --- Guards --------------------------------------------------------------------------------------
def test_the_org_bandwidth_guard_blocks_with_its_reason(acme, cloud, token_client, settings):
    settings.FABRIC_MAX_ORG_BANDWIDTH_MBPS = 1000
    client = token_client(acme.member)
    assert client.post(CONNECTIONS, _body(acme.fra10, cloud.fra, 600), format="json").status_code == 201

    error = _error(client.post(CONNECTIONS, _body(acme.fra10, cloud.fra, 500), format="json"), 403)
    assert error["code"] == "policy_violation"
    assert error["message"] == (
        "Your organization's connections would total 1,100 Mbps, above its limit of 1,000 Mbps "
        "(600 Mbps in use). Ask the operator to raise the limit."
    )
    assert Connection.objects.count() == 1
    assert _committed(acme.fra10) == [600]

    # A redundant pair counts twice.
    pair = _body(
        acme.fra, cloud.fra, 300, secondary={"a_port": str(acme.ams.public_id), "z_port": str(cloud.fra.public_id)}
    )
    assert _error(client.post(CONNECTIONS, pair, format="json"), 403)["code"] == "policy_violation"


def test_the_org_bandwidth_guard_counts_only_live_connections(acme, cloud, settings):
    settings.FABRIC_MAX_ORG_BANDWIDTH_MBPS = 1000
    first = _request(acme.member, acme.fra10, cloud.fra, 800)
    connection_cancel(membership=acme.member, connection=first)
    assert _request(acme.member, acme.fra10, cloud.fra, 800).state == S.PENDING_APPROVAL


def test_the_org_bandwidth_guard_blocks_a_bandwidth_increase(acme, active, token_client, settings):
    settings.FABRIC_MAX_ORG_BANDWIDTH_MBPS = 500
    error = _error(token_client(acme.member).patch(_url(active), {"bandwidth_mbps": 600}, format="json"), 403)
    assert error["code"] == "policy_violation"
    assert "above its limit of 500 Mbps" in error["message"]
    active.refresh_from_db()
    assert (active.state, active.requested_bandwidth_mbps) == (S.ACTIVE, None)
    assert _committed(acme.fra) == [400]


def test_the_org_bandwidth_guard_counts_a_pending_increase(acme, cloud, active, settings):
    """While a change 400 -> 800 Mbps is running, the organization already has 800 Mbps committed."""
    settings.FABRIC_MAX_ORG_BANDWIDTH_MBPS = 1000
    connection_modify_bandwidth(membership=acme.member, connection=active, bandwidth_mbps=800)
    with pytest.raises(DomainError) as excinfo:
        _request(acme.member, acme.fra10, cloud.fra, 300, name="over-the-limit")
    assert excinfo.value.code == "policy_violation"


def test_guards_are_pluggable_and_block_with_a_readable_reason(acme, cloud, token_client, settings):
    settings.FABRIC_CONNECTION_GUARDS = [
        "fabric.guards.max_org_bandwidth",
        "tests.fabric.test_connections.forbid_inter_region",
    ]
    client = token_client(acme.member)
    error = _error(client.post(CONNECTIONS, _body(acme.fra, cloud.dc), format="json"), 403)
    assert (error["code"], error["message"]) == ("policy_violation", "Connections may not leave the region.")
    assert Connection.objects.count() == 0

    plan = client.post(CONNECTIONS, _body(acme.fra, cloud.dc, dry_run=True), format="json").json()
    assert plan["violations"] == [
        {"guard": "data_residency", "severity": "block", "message": "Connections may not leave the region."}
    ]
    assert client.post(CONNECTIONS, _body(acme.fra, cloud.fra), format="json").status_code == 201


def test_approval_and_warning_guards_let_the_request_through_and_say_so(acme, cloud, token_client, settings):
    settings.FABRIC_CONNECTION_GUARDS = [
        "tests.fabric.test_connections.security_review",
        "tests.fabric.test_connections.capacity_warning",
    ]
    client = token_client(acme.member)
    plan = client.post(CONNECTIONS, _body(acme.fra, cloud.fra, dry_run=True), format="json").json()
    assert plan["allowed"] is True
    assert plan["approvals"] == [
        "GPU Cloud must approve the connection to cloud-fra.",
        "The security team must review this connection.",
    ]
    assert [v["severity"] for v in plan["violations"]] == ["approval", "warn"]

    created = client.post(CONNECTIONS, _body(acme.fra, cloud.fra), format="json")
    assert created.status_code == 201, created.content
    requested = ConnectionEvent.objects.get(to_state=S.PENDING_APPROVAL)
    assert "The security team must review this connection." in requested.message
    assert "This port is getting busy." in requested.message


# --- Who may see and do what ---------------------------------------------------------------------
def test_the_z_side_sees_the_request_but_cannot_act_as_the_requester(cloud, pending, active, token_client):
    provider = token_client(cloud.member)
    assert provider.get(_url(pending)).json()["state"] == "PENDING_APPROVAL"
    assert provider.get(_url(pending, "events")).status_code == 200
    assert [c["name"] for c in provider.get(CONNECTIONS).json()["results"]] == ["to-cloud"]

    for response in (
        provider.post(_url(pending, "cancel")),
        provider.patch(_url(pending), {"bandwidth_mbps": 200}, format="json"),
        provider.delete(_url(pending)),
        provider.post(_url(pending, "retry")),
    ):
        error = _error(response, 403)
        assert (error["code"], error["message"]) == (
            "permission_denied",
            "Only the requesting organization can do this.",
        )
    assert _state(pending) == S.PENDING_APPROVAL
    # The requester's own-to-own connection is none of the provider's business.
    assert _error(provider.get(_url(active)), 404)["code"] == "not_found"


def test_the_requester_cannot_approve_or_reject_its_own_request_to_a_provider(acme, pending, token_client):
    client = token_client(acme.member)
    for verb, data in (("approve", {}), ("reject", {"reason": "changed my mind"})):
        error = _error(client.post(_url(pending, verb), data, format="json"), 403)
        assert error["message"] == "Only the Z-side port's organization can approve or reject this request."
    assert _state(pending) == S.PENDING_APPROVAL


def test_a_third_organization_gets_404_for_everything(globex, pending, token_client):
    client = token_client(globex.member)
    assert client.get(CONNECTIONS).json()["count"] == 0
    for response in (
        client.get(_url(pending)),
        client.get(_url(pending, "events")),
        client.get(_url(pending, "workflows")),
        client.post(_url(pending, "approve"), {}, format="json"),
        client.post(_url(pending, "cancel")),
        client.delete(_url(pending)),
    ):
        assert _error(response, 404)["code"] == "not_found"
    with pytest.raises(NotFound):
        connection_approve(membership=globex.member, connection=pending)
    assert _state(pending) == S.PENDING_APPROVAL


def test_a_viewer_reads_but_cannot_request(acme, member_factory, pending, token_client):
    viewer = token_client(member_factory(Role.VIEWER))
    assert viewer.get(_url(pending)).status_code == 200
    assert (
        _error(viewer.post(CONNECTIONS, _body(acme.fra, acme.ams), format="json"), 403)["code"] == "permission_denied"
    )
    assert _error(viewer.post(_url(pending, "cancel")), 403)["code"] == "permission_denied"
    with pytest.raises(PermissionDenied):
        connection_cancel(membership=member_factory(Role.VIEWER), connection=pending)


def test_another_enterprises_port_cannot_be_a_z_side(acme, globex, token_client):
    error = _error(token_client(acme.member).post(CONNECTIONS, _body(acme.fra, globex.fra), format="json"), 404)
    assert error["code"] == "not_found"
    with pytest.raises(NotFound) as excinfo:
        _request(acme.member, acme.fra, globex.fra)
    assert excinfo.value.field == "z_port"
    # Nor can another organization's port be an A side.
    assert _error(token_client(acme.member).post(CONNECTIONS, _body(globex.fra, acme.fra), format="json"), 404)
    assert Connection.objects.count() == 0


def test_a_provider_port_that_is_not_active_cannot_be_a_z_side(acme, cloud):
    Port.objects.filter(pk=cloud.fra.pk).update(state="PROVISIONING")
    with pytest.raises(NotFound):
        _request(acme.member, acme.fra, Port.objects.get(pk=cloud.fra.pk))


def test_the_api_accepts_own_ports_as_a_sides_and_connectable_ones_as_z_sides(acme, cloud, globex, token_client):
    """POST /connections/ takes the org's own ports as A sides (in any state: the service says why
    an inactive one cannot be used) and its own or providers' active ports as Z sides."""
    client = token_client(acme.member)

    def post(a_port, z_port, **extra):
        return client.post(CONNECTIONS, _body(a_port, z_port, **extra), format="json")

    assert _error(post(cloud.fra, acme.fra), 404)["code"] == "not_found"  # a provider's port is no A side
    assert _error(post(globex.fra, acme.fra), 404)["code"] == "not_found"
    assert _error(post(acme.fra, globex.fra), 404)["code"] == "not_found"
    second = {"a_port": str(acme.ams.public_id), "z_port": str(globex.fra.public_id)}
    assert _error(post(acme.fra, cloud.fra, secondary=second), 404)["code"] == "not_found"
    second = {"a_port": str(cloud.dc.public_id), "z_port": str(cloud.fra.public_id)}
    assert _error(post(acme.fra, cloud.fra, secondary=second), 404)["code"] == "not_found"

    Port.objects.filter(pk__in=[acme.ams.pk, cloud.dc.pk]).update(state="PROVISIONING")
    assert _error(post(acme.fra, acme.ams), 404)["code"] == "not_found"  # an inactive Z side
    assert _error(post(acme.fra, cloud.dc), 404)["code"] == "not_found"
    error = _error(post(acme.ams, acme.fra), 409)  # an inactive A side of one's own: the service says why
    assert error["message"] == "Port acme-ams is provisioning, not active."
    assert Connection.objects.count() == 0

    created = post(acme.fra, cloud.fra)
    assert created.status_code == 201, created.content
    connection = created.json()["connections"][0]
    assert (connection["a_port"]["name"], connection["z_port"]["name"]) == ("acme-fra", "cloud-fra")


# --- Quotes --------------------------------------------------------------------------------------
def test_quotes_are_decimal_strings_and_grow_with_distance(owner, metros, token_client):
    client = token_client(owner)
    quotes = {}
    for z in ("FR", "AM", "DC"):
        response = client.post(QUOTES, {"a_metro": "FR", "z_metro": z, "bandwidth_mbps": 1000}, format="json")
        assert response.status_code == 200, response.content
        quotes[z] = response.json()

    for quote in quotes.values():
        assert quote["currency"] == "USD"
        for amount in (quote["monthly_total"], quote["one_off_total"], *(line["monthly"] for line in quote["lines"])):
            assert isinstance(amount, str)
            assert Decimal(amount).as_tuple().exponent == -2
    monthly = {z: Decimal(q["monthly_total"]) for z, q in quotes.items()}
    assert monthly["FR"] < monthly["AM"] < monthly["DC"]
    assert (monthly["FR"], monthly["AM"], monthly["DC"]) == (Decimal("500.00"), Decimal("800.00"), Decimal("1600.00"))
    assert "same metro" in quotes["FR"]["lines"][0]["description"]
    assert "same region" in quotes["AM"]["lines"][0]["description"]
    assert "inter-region" in quotes["DC"]["lines"][0]["description"]
    assert (
        quotes["FR"]["latency"]["distance_km"]
        < quotes["AM"]["latency"]["distance_km"]
        < quotes["DC"]["latency"]["distance_km"]
    )


def test_a_quote_rounds_up_to_the_tier_and_can_include_a_new_port(owner, metros, token_client):
    response = token_client(owner).post(
        QUOTES, {"a_metro": "FR", "z_metro": "FR", "bandwidth_mbps": 150, "port_speed_mbps": 10_000}, format="json"
    )
    quote = response.json()
    assert [line["description"] for line in quote["lines"]] == [
        "200 Mbps tier, same metro (FR to FR)",
        "Connection setup",
        "10 Gbps port",
    ]
    assert (quote["monthly_total"], quote["one_off_total"]) == ("1060.00", "600.00")


def test_a_quote_above_the_largest_tier_is_a_validation_error(owner, metros, token_client):
    response = token_client(owner).post(
        QUOTES, {"a_metro": "FR", "z_metro": "AM", "bandwidth_mbps": 500_000}, format="json"
    )
    error = _error(response, 400)
    assert set(error["fields"]) == {"bandwidth_mbps"}


def test_quotes_reject_unknown_metros(owner, metros, token_client):
    error = _error(
        token_client(owner).post(QUOTES, {"a_metro": "FR", "z_metro": "QQ", "bandwidth_mbps": 10}, format="json"), 400
    )
    assert set(error["fields"]) == {"z_metro"}


# --- Idempotency ---------------------------------------------------------------------------------
def test_an_idempotent_create_replays_without_creating_twice(acme, token_client):
    client = token_client(acme.member)
    body = _body(acme.fra, acme.ams, 100)
    first = client.post(CONNECTIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    second = client.post(CONNECTIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert (first.status_code, second.status_code) == (201, 201)
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Connection.objects.count() == 1
    assert _committed(acme.fra) == [100]
    assert _vlans(acme.fra) == {100}

    error = _error(
        client.post(CONNECTIONS, {**body, "bandwidth_mbps": 200}, format="json", HTTP_IDEMPOTENCY_KEY="order-42"), 422
    )
    assert error["code"] == "idempotency_key_reused"
    assert Connection.objects.count() == 1


# --- Failure and retry ---------------------------------------------------------------------------
def test_a_failed_connection_keeps_its_reservation_and_can_be_retried(
    acme, token_client, fail_steps, django_capture_on_commit_callbacks
):
    client = token_client(acme.member)
    fail_steps({"configure_z_side": "permanent"})
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(CONNECTIONS, _body(acme.fra, acme.ams, 300), format="json").json()["connections"][0]
    url = f"{CONNECTIONS}{created['id']}/"

    failed = client.get(url).json()
    reason = "Configure z side failed: Simulated permanent failure in configure z side."
    assert (failed["state"], failed["pending_on"], failed["status_reason"]) == ("FAILED", "REQUESTER", reason)
    assert _committed(acme.fra, acme.ams) == [300, 300]  # still held: a retry must not lose the port
    [workflow] = client.get(f"{url}workflows/").json()
    assert (workflow["status"], workflow["error"]) == ("FAILED", reason)
    steps = {step["name"]: step for step in workflow["steps"]}
    assert (steps["configure_z_side"]["status"], steps["configure_z_side"]["error"]) == ("FAILED", reason)
    assert (steps["verify"]["status"], steps["verify"]["attempts"]) == ("PENDING", 0)

    fail_steps({})
    with django_capture_on_commit_callbacks(execute=True):
        retried = client.post(f"{url}retry/")
    assert retried.status_code == 202, retried.content
    assert retried.json()["state"] == "PROVISIONING"

    assert client.get(url).json()["state"] == "ACTIVE"
    workflows = client.get(f"{url}workflows/").json()
    assert [w["status"] for w in workflows] == ["SUCCEEDED", "FAILED"]
    assert [e["to_state"] for e in client.get(f"{url}events/").json()][-3:] == ["FAILED", "PROVISIONING", "ACTIVE"]
    assert _committed(acme.fra, acme.ams) == [300, 300]


def test_a_connection_that_recovers_no_longer_shows_its_old_failure(
    acme, fail_steps, django_capture_on_commit_callbacks
):
    fail_steps({"configure_z_side": "permanent"})
    with django_capture_on_commit_callbacks(execute=True):
        connection = _request(acme.member, acme.fra, acme.ams)
    fail_steps({})
    with django_capture_on_commit_callbacks(execute=True):
        connection_retry(membership=acme.member, connection=connection)
    connection.refresh_from_db()
    assert connection.state == S.ACTIVE
    assert connection.status_reason == ""


def test_a_failed_connection_can_be_deprovisioned_instead(acme, fail_steps, django_capture_on_commit_callbacks):
    fail_steps({"verify": "permanent"})
    with django_capture_on_commit_callbacks(execute=True):
        connection = _request(acme.member, acme.fra, acme.ams, 300)
    assert _state(connection) == S.FAILED
    with django_capture_on_commit_callbacks(execute=True):
        connection_deprovision(membership=acme.member, connection=connection)
    assert _state(connection) == S.DEPROVISIONED
    assert _committed(acme.fra, acme.ams) == [0, 0]


def test_a_failed_deprovision_is_retried_as_a_deprovision(
    acme, active, token_client, fail_steps, django_capture_on_commit_callbacks
):
    client = token_client(acme.member)
    fail_steps({"unconfigure_z_side": "permanent"})
    with django_capture_on_commit_callbacks(execute=True):
        client.delete(_url(active))
    active.refresh_from_db()
    assert active.state == S.FAILED
    assert active.status_reason == "Unconfigure z side failed: Simulated permanent failure in unconfigure z side."
    assert _committed(acme.fra) == [400]

    fail_steps({})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url(active, "retry"))
    assert response.json()["state"] == "DEPROVISIONING"
    assert _state(active) == S.DEPROVISIONED
    assert _committed(acme.fra, acme.ams) == [0, 0]
