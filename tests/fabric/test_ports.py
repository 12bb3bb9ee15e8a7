"""Ports: ordering runs a recorded workflow to ACTIVE; names are unique per organization;
decommissioning is refused while a live connection uses the port; every change is audited."""

import pytest

from fabric.choices import PortSpeed, PortState, StepStatus, WorkflowKind, WorkflowStatus
from fabric.models import Port, Workflow
from fabric.services import connection_cancel, connection_request, port_decommission, port_order, port_update
from hub.choices import Role
from hub.errors import Conflict, DomainError
from hub.models import AuditEvent

pytestmark = pytest.mark.django_db

PORTS = "/api/v1/ports/"


def _error(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["status"] == status
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    return error


def _steps(workflow):
    return list(workflow.steps.order_by("position").values_list("name", "status", "attempts"))


def _audit_actions(org, target):
    return list(
        AuditEvent.objects.filter(organization=org, object_id=str(target.public_id))
        .order_by("created_at", "id")
        .values_list("action", flat=True)
    )


# --- Ordering ----------------------------------------------------------------------------------
def test_an_ordered_port_is_provisioned_through_recorded_steps(owner, metros, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        port = port_order(membership=owner, metro=metros["FR"], name=" fra-edge-1 ", speed_mbps=PortSpeed.G10)
        # Until the transaction commits, the port is only ordered.
        assert port.state == PortState.PROVISIONING

    port.refresh_from_db()
    assert port.state == PortState.ACTIVE
    assert port.name == "fra-edge-1"
    assert (port.speed_mbps, port.capacity_mbps, port.committed_mbps) == (10_000, 10_000, 0)
    workflow = port.workflows.get()
    assert (workflow.kind, workflow.status, workflow.error) == (
        WorkflowKind.PORT_PROVISION,
        WorkflowStatus.SUCCEEDED,
        "",
    )
    assert workflow.finished_at is not None
    assert _steps(workflow) == [
        ("allocate_port", StepStatus.SUCCEEDED, 1),
        ("configure_port", StepStatus.SUCCEEDED, 1),
        ("verify_port", StepStatus.SUCCEEDED, 1),
        ("activate_port", StepStatus.SUCCEEDED, 1),
    ]
    assert _audit_actions(owner.organization, port) == ["port.order", "port.active"]
    ordered = AuditEvent.objects.get(action="port.order", object_id=str(port.public_id))
    assert ordered.actor == owner.user
    assert ordered.after == {
        "name": "fra-edge-1",
        "metro": "FR",
        "speed_mbps": 10_000,
        "state": PortState.PROVISIONING,
        "auto_approve": False,
    }


def test_ordering_over_the_api_answers_provisioning_then_the_port_reads_active(
    owner, metros, token_client, django_capture_on_commit_callbacks
):
    client = token_client(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(PORTS, {"name": "ams-1", "metro": "AM", "speed_mbps": 1000}, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["state"], created["metro"], created["capacity_mbps"]) == ("PROVISIONING", "AM", 1000)

    detail = client.get(f"{PORTS}{created['id']}/").json()
    assert detail["state"] == "ACTIVE"
    assert (detail["available_mbps"], detail["vlans_in_use"]) == (1000, [])


def test_capacity_is_speed_times_the_oversubscription_factor(owner, metros, settings):
    settings.FABRIC_OVERSUBSCRIPTION = 1.5
    port = port_order(membership=owner, metro=metros["FR"], name="oversold", speed_mbps=PortSpeed.G1)
    assert port.capacity_mbps == 1500


def test_a_port_whose_provisioning_fails_permanently_is_failed_with_the_step_error(
    owner, metros, fail_steps, django_capture_on_commit_callbacks
):
    fail_steps({"verify_port": "permanent"})
    with django_capture_on_commit_callbacks(execute=True):
        port = port_order(membership=owner, metro=metros["FR"], name="doomed", speed_mbps=PortSpeed.G1)

    port.refresh_from_db()
    assert port.state == PortState.FAILED
    workflow = port.workflows.get()
    assert workflow.status == WorkflowStatus.FAILED
    assert workflow.error == "Verify port failed: Simulated permanent failure in verify port."
    assert [status for _, status, _ in _steps(workflow)] == [
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
        StepStatus.FAILED,
        StepStatus.PENDING,
    ]
    failed = AuditEvent.objects.get(action="port.failed", object_id=str(port.public_id))
    assert failed.after == {"reason": workflow.error}


def test_unknown_speed_and_metro_are_refused_with_field_errors(owner, metros, token_client):
    client = token_client(owner)
    error = _error(client.post(PORTS, {"name": "x", "metro": "ZZ", "speed_mbps": 2500}, format="json"), 400)
    assert set(error["fields"]) == {"metro", "speed_mbps"}
    with pytest.raises(DomainError) as excinfo:
        port_order(membership=owner, metro=metros["FR"], name="x", speed_mbps=2500)
    assert excinfo.value.field == "speed_mbps"
    assert Port.objects.count() == 0


def test_a_viewer_may_list_ports_but_not_order_one(org, member_factory, metros, token_client):
    viewer = token_client(member_factory(Role.VIEWER))
    assert viewer.get(PORTS).status_code == 200
    error = _error(viewer.post(PORTS, {"name": "x", "metro": "FR", "speed_mbps": 1000}, format="json"), 403)
    assert error["code"] == "permission_denied"
    assert Port.objects.count() == 0


# --- Names ---------------------------------------------------------------------------------------
def test_port_names_are_unique_per_organization_while_in_service(
    owner, globex, metros, token_client, django_capture_on_commit_callbacks
):
    client = token_client(owner)
    first = client.post(PORTS, {"name": "edge", "metro": "FR", "speed_mbps": 1000}, format="json")
    assert first.status_code == 201

    error = _error(client.post(PORTS, {"name": "edge", "metro": "AM", "speed_mbps": 1000}, format="json"), 409)
    assert error["code"] == "conflict"
    assert error["fields"] == {"name": ["You already have a port named 'edge'."]}
    assert Port.objects.filter(organization=owner.organization).count() == 1

    # Another organization may use the same name.
    port_order(membership=globex.member, metro=metros["FR"], name="edge", speed_mbps=PortSpeed.G1)

    # Renaming onto a taken name is refused the same way.
    other = port_order(membership=owner, metro=metros["AM"], name="edge-2", speed_mbps=PortSpeed.G1)
    with pytest.raises(Conflict) as excinfo:
        port_update(membership=owner, port=other, name="edge")
    assert (excinfo.value.field, excinfo.value.message) == ("name", "You already have a port named 'edge'.")


def test_a_decommissioned_ports_name_can_be_used_again(owner, metros, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        old = port_order(membership=owner, metro=metros["FR"], name="edge", speed_mbps=PortSpeed.G1)
    with django_capture_on_commit_callbacks(execute=True):
        port_decommission(membership=owner, port=Port.objects.get(pk=old.pk))

    new = port_order(membership=owner, metro=metros["FR"], name="edge", speed_mbps=PortSpeed.G1)
    assert new.pk != old.pk
    assert Port.objects.get(pk=old.pk).state == PortState.DECOMMISSIONED


# --- Decommissioning -----------------------------------------------------------------------------
def test_decommissioning_an_idle_port_runs_its_workflow_and_is_audited(
    acme, token_client, django_capture_on_commit_callbacks
):
    client = token_client(acme.member)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"{PORTS}{acme.fra.public_id}/")
    assert response.status_code == 202, response.content
    assert response.json()["state"] == "DECOMMISSIONING"

    acme.fra.refresh_from_db()
    assert acme.fra.state == PortState.DECOMMISSIONED
    workflow = Workflow.objects.get(port=acme.fra)
    assert workflow.kind == WorkflowKind.PORT_DECOMMISSION
    assert _steps(workflow) == [("shutdown_port", StepStatus.SUCCEEDED, 1), ("release_port", StepStatus.SUCCEEDED, 1)]
    assert _audit_actions(acme.org, acme.fra) == ["port.decommission", "port.decommissioned"]
    event = AuditEvent.objects.get(action="port.decommission")
    assert (event.before["state"], event.after["state"]) == (PortState.ACTIVE, PortState.DECOMMISSIONING)

    # Gone is gone: a second request is refused, and the port cannot carry new connections.
    error = _error(client.delete(f"{PORTS}{acme.fra.public_id}/"), 409)
    assert error["code"] == "invalid_state"
    assert error["message"] == "A port that is decommissioned cannot be decommissioned."
    with pytest.raises(Conflict, match="decommissioned, not active"):
        connection_request(membership=acme.member, name="x", a_port=acme.fra, z_port=acme.ams, bandwidth_mbps=10)


def test_decommissioning_is_refused_while_a_live_connection_uses_the_port(
    acme, token_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        connection_request(membership=acme.member, name="link", a_port=acme.fra, z_port=acme.ams, bandwidth_mbps=100)
    client = token_client(acme.member)

    for port in (acme.fra, acme.ams):  # the A side and the Z side alike
        error = _error(client.delete(f"{PORTS}{port.public_id}/"), 409)
        assert error["code"] == "port_in_use"
        assert "Deprovision" in error["message"]
        port.refresh_from_db()
        assert port.state == PortState.ACTIVE
    assert not Workflow.objects.filter(port__in=[acme.fra, acme.ams]).exists()
    assert not AuditEvent.objects.filter(action="port.decommission").exists()


def test_the_port_in_use_message_reads_correctly_for_one_connection(acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        connection_request(membership=acme.member, name="link", a_port=acme.fra, z_port=acme.ams, bandwidth_mbps=100)
    with pytest.raises(Conflict) as excinfo:
        port_decommission(membership=acme.member, port=acme.fra)
    assert excinfo.value.message == "1 live connection still uses this port. Deprovision it first."


def test_a_provider_cannot_decommission_a_port_with_a_pending_inbound_request(acme, cloud):
    plan = connection_request(
        membership=acme.member, name="to-cloud", a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=100
    )
    with pytest.raises(Conflict) as excinfo:
        port_decommission(membership=cloud.member, port=cloud.fra)
    assert excinfo.value.code == "port_in_use"

    # Once the request is withdrawn, nothing holds the port.
    connection_cancel(membership=acme.member, connection=plan.connections[0])
    assert port_decommission(membership=cloud.member, port=cloud.fra).state == PortState.DECOMMISSIONING


def test_another_organizations_port_is_not_found(acme, globex, token_client):
    client = token_client(globex.member)
    assert _error(client.delete(f"{PORTS}{acme.fra.public_id}/"), 404)["code"] == "not_found"
    assert _error(client.patch(f"{PORTS}{acme.fra.public_id}/", {"auto_approve": True}, format="json"), 404)
    acme.fra.refresh_from_db()
    assert (acme.fra.state, acme.fra.auto_approve) == (PortState.ACTIVE, False)


# --- Auto-approve --------------------------------------------------------------------------------
def test_auto_approve_lets_inbound_requests_skip_approval_until_turned_off(
    acme, cloud, token_client, django_capture_on_commit_callbacks
):
    provider = token_client(cloud.member)
    response = provider.patch(f"{PORTS}{cloud.fra.public_id}/", {"auto_approve": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["auto_approve"] is True
    update = AuditEvent.objects.get(action="port.update", object_id=str(cloud.fra.public_id))
    assert (update.before["auto_approve"], update.after["auto_approve"]) == (False, True)
    assert update.actor == cloud.member.user

    cloud.fra.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        plan = connection_request(
            membership=acme.member, name="auto", a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=100
        )
    assert plan.approvals == []
    auto = plan.connections[0]
    auto.refresh_from_db()
    assert auto.state == "ACTIVE"
    assert auto.z_vlan == 100
    assert auto.events.filter(to_state="APPROVED").get().message == "Approved automatically by the Z-side port."

    provider.patch(f"{PORTS}{cloud.fra.public_id}/", {"auto_approve": False}, format="json")
    cloud.fra.refresh_from_db()
    manual = connection_request(
        membership=acme.member, name="manual", a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=100
    ).connections[0]
    assert (manual.state, manual.pending_on) == ("PENDING_APPROVAL", "PROVIDER")
