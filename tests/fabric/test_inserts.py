"""Rows written together in one statement (PostgreSQL) are the rows the ORM would write."""

import pytest
from django.forms.models import model_to_dict

from fabric.inserts import insert_together, insert_with_children
from fabric.models import Connection, ConnectionEvent, Workflow, WorkflowStep
from hub.models import AuditEvent
from hub.services import audit_entry

pytestmark = pytest.mark.django_db


def _link(acme) -> Connection:
    return Connection.objects.create(
        organization=acme.org, name="l", a_port=acme.fra, a_vlan=7, z_port=acme.ams, bandwidth_mbps=10
    )


def _rows(objs, *exclude) -> list[dict]:
    return [model_to_dict(type(obj).objects.get(pk=obj.pk), exclude=["id", *exclude]) for obj in objs]


def _timeline(connection, owner):
    events = [
        ConnectionEvent(connection=connection, from_state="", to_state="PENDING_APPROVAL", actor=owner.user),
        ConnectionEvent(connection=connection, from_state="PENDING_APPROVAL", to_state="APPROVED", message="ok"),
    ]
    entries = [
        audit_entry(org=owner.organization, actor=owner.user, action="connection.request", target=connection),
        audit_entry(org=None, actor=None, action="connection.approved", before={"state": "A"}, after={"n": [1, None]}),
    ]
    return events, entries


def test_insert_together_writes_what_bulk_create_writes_and_sets_primary_keys(acme, owner):
    connection = _link(acme)
    events, entries = _timeline(connection, owner)
    insert_together([events, entries, []])
    assert all(obj.pk and not obj._state.adding for obj in [*events, *entries])
    by_orm_events, by_orm_entries = _timeline(connection, owner)
    ConnectionEvent.objects.bulk_create(by_orm_events)
    AuditEvent.objects.bulk_create(by_orm_entries)
    assert _rows(events, "created_at") == _rows(by_orm_events, "created_at")
    assert _rows(entries, "public_id", "created_at") == _rows(by_orm_entries, "public_id", "created_at")
    assert [e.created_at for e in events] == [ConnectionEvent.objects.get(pk=e.pk).created_at for e in events]


def test_insert_with_children_writes_the_parent_and_its_children(acme):
    workflow = Workflow(kind="CONNECTION_PROVISION", connection=_link(acme))
    steps = [WorkflowStep(workflow=workflow, position=i, name=f"step-{i}") for i in (1, 2)]
    insert_with_children(workflow, steps, fk="workflow")
    assert Workflow.objects.get(pk=workflow.pk).public_id == workflow.public_id
    assert list(workflow.steps.values_list("pk", "position", "name", "status", "attempts")) == [
        (steps[0].pk, 1, "step-1", "PENDING", 0),
        (steps[1].pk, 2, "step-2", "PENDING", 0),
    ]
