"""Reads of the fabric app."""

from django.db.models import Prefetch, QuerySet

from fabric.choices import PendingOn
from fabric.models import Connection, ConnectionEvent, Port, VlanAssignment, Workflow


def port_list(*, org) -> QuerySet[Port]:
    return Port.objects.for_org(org).select_related("metro")


def connection_list(*, org) -> QuerySet[Connection]:
    """Connections the organization requested and those that land on its ports."""
    return Connection.objects.for_org(org).select_related(
        "organization", "a_port__metro", "a_port__organization", "z_port__metro", "z_port__organization"
    )


def incoming_requests(*, org) -> QuerySet[Connection]:
    """Requests waiting for ``org`` to approve as the Z side; a request a policy holds for the
    requester's own admins (``pending_on`` REQUESTER) reaches the provider only once they approved it."""
    return (
        connection_list(org=org)
        .filter(z_port__organization=org, state="PENDING_APPROVAL", pending_on=PendingOn.PROVIDER)
        .exclude(organization=org)
    )


def connection_detail(*, org, public_id) -> Connection:
    return (
        connection_list(org=org)
        .prefetch_related(
            Prefetch("events", queryset=ConnectionEvent.objects.order_by("created_at", "id")),
            Prefetch("workflows", queryset=Workflow.objects.prefetch_related("steps").order_by("-created_at", "-id")),
        )
        .get(public_id=public_id)
    )


def port_vlans(*, port: Port) -> list[int]:
    return list(VlanAssignment.objects.filter(port=port).values_list("vlan", flat=True))
