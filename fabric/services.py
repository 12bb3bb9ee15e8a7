"""Writes of the fabric app: metros, ports, connections and what their workflows conclude.

Every service is keyword-only and atomic, checks the member's role, writes a connection event
and an audit event for each transition, and enqueues workflows on commit.
"""

import csv
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db import connection as connection_db
from django.db.models import F, Q
from django.urls import reverse

from fabric import pricing
from fabric.choices import (
    LIVE_CONNECTION_STATES,
    PENDING_ON,
    ConnectionState,
    PendingOn,
    PortSpeed,
    PortState,
    Priority,
    Region,
    WorkflowKind,
    can_transition,
)
from fabric.guards import GuardRequest, Severity, Violation, report_denied, run_guards
from fabric.inserts import insert_together, insert_with_children
from fabric.models import Connection, ConnectionEvent, Metro, Port, VlanAssignment, Workflow
from fabric.workflows import workflow_start
from hub.choices import OrganizationKind, Role
from hub.errors import Conflict, DomainError, NotFound, PermissionDenied
from hub.events import Event, publish, publish_many
from hub.models import AuditEvent, Membership
from hub.roles import Action
from hub.services import audit_entry, audit_record, require_action

METROS_CSV = Path(__file__).resolve().parent / "data" / "metros.csv"


@transaction.atomic
def metros_load(*, path: Path = METROS_CSV) -> tuple[int, int]:
    """Create or update metros from a CSV (``code,name,country_iso2,region,sovereignty_zone,lat,lon``).

    Idempotent: returns (created, updated). Rows are validated before anything is written.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    parsed = []
    for line, row in enumerate(rows, start=2):
        try:
            metro = Metro(
                code=row["code"].strip().upper(),
                name=row["name"].strip(),
                country=row["country_iso2"].strip().upper(),
                region=row["region"].strip().upper(),
                sovereignty_zone=row["sovereignty_zone"].strip().upper(),
                latitude=float(row["lat"]),
                longitude=float(row["lon"]),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path.name} line {line}: {exc}") from exc
        if metro.region not in Region.values:
            raise ValueError(f"{path.name} line {line}: unknown region {metro.region!r}")
        parsed.append(metro)
    created = updated = 0
    fields = ["name", "country", "region", "sovereignty_zone", "latitude", "longitude"]
    for metro in parsed:
        _, was_created = Metro.objects.update_or_create(
            code=metro.code, defaults={field: getattr(metro, field) for field in fields}
        )
        created += was_created
        updated += not was_created
    return created, updated


# --- Ports -----------------------------------------------------------------------------------
@transaction.atomic
def port_order(*, membership: Membership, metro: Metro, name: str, speed_mbps: int, auto_approve: bool = False) -> Port:
    """Order a port; a provisioning workflow brings it to ACTIVE."""
    require_action(membership, Action.FABRIC_MANAGE)
    name = name.strip()
    if not name:
        raise DomainError("Give the port a name.", field="name")
    if speed_mbps not in PortSpeed.values:
        raise DomainError("Port speed must be 1, 10, 100 or 400 Gbps.", field="speed_mbps")
    org = membership.organization
    if Port.objects.for_org(org).filter(name=name).exclude(state=PortState.DECOMMISSIONED).exists():
        raise Conflict(f"You already have a port named {name!r}.", field="name")
    port = Port.objects.create(
        organization=org,
        metro=metro,
        name=name,
        speed_mbps=speed_mbps,
        capacity_mbps=math.floor(speed_mbps * settings.FABRIC_OVERSUBSCRIPTION),
        auto_approve=auto_approve,
        created_by=membership.user,
    )
    audit_record(org=org, actor=membership.user, action="port.order", target=port, after=_port_snapshot(port))
    workflow_start(kind=WorkflowKind.PORT_PROVISION, port=port)
    return port


@transaction.atomic
def port_update(
    *, membership: Membership, port: Port, name: str | None = None, auto_approve: bool | None = None
) -> Port:
    require_action(membership, Action.FABRIC_MANAGE)
    _require_owner(membership, port)
    before = _port_snapshot(port)
    if name is not None:
        name = name.strip()
        if not name:
            raise DomainError("Give the port a name.", field="name")
        if (
            Port.objects.for_org(port.organization)
            .filter(name=name)
            .exclude(pk=port.pk)
            .exclude(state=PortState.DECOMMISSIONED)
            .exists()
        ):
            raise Conflict(f"You already have a port named {name!r}.", field="name")
        port.name = name
    if auto_approve is not None:
        port.auto_approve = auto_approve
    port.save(update_fields=["name", "auto_approve", "updated_at"])
    audit_record(
        org=port.organization,
        actor=membership.user,
        action="port.update",
        target=port,
        before=before,
        after=_port_snapshot(port),
    )
    return port


@transaction.atomic
def port_decommission(*, membership: Membership, port: Port) -> Port:
    """Take a port out of service; refused while any live connection uses it."""
    require_action(membership, Action.FABRIC_MANAGE)
    _require_owner(membership, port)
    port = Port.objects.select_for_update().get(pk=port.pk)
    if port.state not in (PortState.ACTIVE, PortState.FAILED):
        raise Conflict(
            f"A port that is {port.get_state_display().lower()} cannot be decommissioned.", code="invalid_state"
        )
    live = Connection.objects.filter(Q(a_port=port) | Q(z_port=port), state__in=LIVE_CONNECTION_STATES).count()
    if live:
        message = (
            "1 live connection still uses this port. Deprovision it first."
            if live == 1
            else f"{live} live connections still use this port. Deprovision them first."
        )
        raise Conflict(message, code="port_in_use")
    before = _port_snapshot(port)
    port.state = PortState.DECOMMISSIONING
    port.save(update_fields=["state", "updated_at"])
    _announce_port(port, before["state"])
    audit_record(
        org=port.organization,
        actor=membership.user,
        action="port.decommission",
        target=port,
        before=before,
        after=_port_snapshot(port),
    )
    workflow_start(kind=WorkflowKind.PORT_DECOMMISSION, port=port)
    return port


def _port_snapshot(port: Port) -> dict:
    return {
        "name": port.name,
        "metro": port.metro.code,
        "speed_mbps": port.speed_mbps,
        "state": port.state,
        "auto_approve": port.auto_approve,
    }


def _require_owner(membership: Membership, port: Port) -> None:
    if port.organization_id != membership.organization_id:
        raise NotFound("No such port.")


# --- Capacity and VLANs ----------------------------------------------------------------------
def _lock_ports(ports) -> dict[int, Port]:
    """Lock ports in primary-key order (so two requests never deadlock) and return them by id."""
    ids = sorted({port.pk for port in ports})
    return {port.pk: port for port in Port.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


def _lock_and_reserve(demand: dict[int, int], *, requester_org_id: int) -> dict[int, Port]:
    """Lock the ports of ``demand`` (port id -> extra Mbps) in primary-key order, so two requests
    never deadlock, and add the extra bandwidth to each where it fits, in one statement. Returns
    the locked ports as updated, by id; raises ``Conflict`` (the caller's transaction rolls the
    other ports back) when a port cannot take its share.
    """
    table = connection_db.ops.quote_name(Port._meta.db_table)
    fields = Port._meta.concrete_fields
    columns = ", ".join(connection_db.ops.quote_name(f.column) for f in fields)
    extra = "CASE id " + " ".join(["WHEN %s THEN %s"] * len(demand)) + " END"
    extra_params = [value for item in demand.items() for value in item]
    ids = sorted(demand)
    lock = "ORDER BY id FOR UPDATE" if connection_db.features.has_select_for_update else ""
    sql = f"""
        UPDATE {table} SET committed_mbps = committed_mbps + {extra}
        WHERE id IN (SELECT id FROM {table} WHERE id IN ({", ".join(["%s"] * len(ids))}) {lock})
          AND committed_mbps + {extra} <= capacity_mbps
        RETURNING {columns}
    """  # noqa: S608 - names come from the model, every value is a parameter
    with connection_db.cursor() as cursor:
        cursor.execute(sql, [*extra_params, *ids, *extra_params])
        rows = cursor.fetchall()
    names = [f.attname for f in fields]
    locked = {port.pk: port for port in (Port.from_db(connection_db.alias, names, row) for row in rows)}
    if len(locked) < len(demand):
        # A port without room was locked but left as it was: say which one (it is still locked).
        full = Port.objects.in_bulk(set(demand) - set(locked))
        for port_id, mbps in demand.items():
            if port_id in locked:
                continue
            port = full.get(port_id)
            if port is not None and port.organization_id != requester_org_id:
                message = "The Z-side port cannot take this much more bandwidth. Choose less, or another port."
            elif port is not None:
                message = f"Port {port.name} has {port.available_mbps:,} Mbps free; this needs {mbps:,} Mbps."
            else:
                raise NotFound("No such port.")
            raise Conflict(message, code="port_capacity", field="bandwidth_mbps")
    return locked


def _release_capacity(connection: Connection, mbps: int) -> None:
    locked = _lock_ports([connection.a_port, connection.z_port])
    for port in locked.values():
        Port.objects.filter(pk=port.pk).update(committed_mbps=F("committed_mbps") - min(mbps, port.committed_mbps))


def _pick_vlans(picks: list[tuple[Port, int | None, str]]) -> list[int]:
    """The tag for each ``(locked port, wanted tag or None, field name)``: the wanted tag if it is
    free on the port, or the lowest free tag in the automatic range (one query for all of them)."""
    low, high = settings.FABRIC_VLAN_AUTO_RANGE
    lowest = _lowest_free_vlans([port for port, vlan, _ in picks if vlan is None], low, high)
    tags = []
    for port, vlan, field_name in picks:
        if vlan is None:
            vlan = lowest[port.pk]
            if vlan is None:
                raise Conflict(f"Port {port.name} has no free VLAN left.", code="vlan_exhausted", field=field_name)
        elif not 2 <= vlan <= 4094:
            raise DomainError("A VLAN tag is between 2 and 4094.", field=field_name)
        elif VlanAssignment.objects.filter(port=port, vlan=vlan).exists():
            raise Conflict(f"VLAN {vlan} is already in use on port {port.name}.", code="vlan_in_use", field=field_name)
        tags.append(vlan)
    return tags


def _lowest_free_vlans(ports: list[Port], low: int, high: int) -> dict[int, int | None]:
    """The lowest tag in ``low..high`` not assigned on each of ``ports`` (None when the range is
    full), in one query on the (port, vlan) index.

    A port's answer is ``low`` or one above an assigned tag, so only those candidates are probed:
    the cost follows the tags in use, not the 4,000-tag range, and no tag list is read into Python.
    """
    if not ports:
        return {}
    ids = [port.pk for port in ports]
    table = connection_db.ops.quote_name(VlanAssignment._meta.db_table)
    port_table = connection_db.ops.quote_name(Port._meta.db_table)
    sql = f"""
        SELECT port.id, (
            SELECT MIN(candidate) FROM (
                SELECT %s AS candidate
                UNION ALL
                SELECT vlan + 1 FROM {table} WHERE port_id = port.id AND vlan >= %s AND vlan < %s
            ) candidates
            WHERE NOT EXISTS (SELECT 1 FROM {table} taken WHERE taken.port_id = port.id AND taken.vlan = candidate)
        )
        FROM {port_table} port WHERE port.id IN ({", ".join(["%s"] * len(ids))})
    """  # noqa: S608 - the table names come from the models, every value is a parameter
    with connection_db.cursor() as cursor:
        cursor.execute(sql, [low, low, high, *ids])
        return dict(cursor.fetchall())


def _book_vlans(connection: Connection, bookings: list[tuple[Port, int | None, str]]) -> None:
    """Record the connection's tags on their ports, with the connection itself when it is not
    written yet (one statement on PostgreSQL); the (port, vlan) constraint is the last line of defence."""
    rows = [VlanAssignment(port=port, vlan=vlan, connection=connection) for port, vlan, _ in bookings if vlan]
    # No savepoint of its own: every caller runs in a service's transaction, which a Conflict rolls back.
    try:
        with transaction.atomic(savepoint=False):
            if connection._state.adding:
                insert_with_children(connection, rows, fk="connection")
            else:
                VlanAssignment.objects.bulk_create(rows)
    except IntegrityError as exc:
        if VlanAssignment._meta.db_table not in str(exc) and "vlan_unique_per_port" not in str(exc):
            raise  # the connection's own row: not a tag taken
        # Tags are picked under the ports' row locks, so this means a writer that bypassed them.
        booked = [(port, vlan, field_name) for port, vlan, field_name in bookings if vlan]
        taken = " or ".join(f"VLAN {vlan} on port {port.name}" for port, vlan, _ in booked)
        raise Conflict(f"{taken} is already in use.", code="vlan_in_use", field=booked[0][2]) from exc


# --- Connections -----------------------------------------------------------------------------
@dataclass
class ConnectionSpec:
    a_port: Port
    z_port: Port
    a_vlan: int | None = None
    priority: str = Priority.PRIMARY


@dataclass
class ConnectionPlan:
    """What a connection request does (or, as a dry run, would do)."""

    connections: list[Connection] = field(default_factory=list)
    quote: pricing.Quote = field(default_factory=pricing.Quote)
    latency: list = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    dry_run: bool = False

    @property
    def allowed(self) -> bool:
        return not any(v.severity == Severity.BLOCK for v in self.violations)


class PolicyViolation(DomainError):
    status_code = 403
    default_code = "policy_violation"

    def __init__(self, violations: list[Violation], *, request: GuardRequest | None = None):
        super().__init__(" ".join(v.message for v in violations if v.severity == Severity.BLOCK))
        self.violations = violations
        self.request = request


def _report_denial(denial: PolicyViolation) -> None:
    """After the refused request rolled back: let listening guards record the denial."""
    if denial.request is not None:
        report_denied(denial.request, denial.violations)


class _DryRun(Exception):
    def __init__(self, plan: ConnectionPlan):
        self.plan = plan


def latency_leg(a_metro: Metro, z_metro: Metro) -> dict:
    """The latency estimate between two metros as shown to users and in the API."""
    from fabric.latency import metro_rtt

    estimate = metro_rtt(a_metro, z_metro)
    return {
        "a_metro": a_metro.code,
        "z_metro": z_metro.code,
        "distance_km": round(estimate.km, 1),
        "floor_rtt_ms": round(estimate.floor_ms, 2),
        "estimated_rtt_ms": round(estimate.estimate_ms, 2),
    }


def connectable_z_ports(org):
    """Ports a member of ``org`` may connect to: their own, and any provider's active port."""
    return Port.objects.select_related("metro", "organization").filter(
        Q(organization=org) | Q(organization__kind=OrganizationKind.PROVIDER), state=PortState.ACTIVE
    )


def _connectable(port: Port, org) -> bool:
    """``connectable_z_ports``' rule for one port already loaded (no query for an own port)."""
    return port.state == PortState.ACTIVE and (
        port.organization_id == org.pk or port.organization.kind == OrganizationKind.PROVIDER
    )


def connection_request(
    *,
    membership: Membership,
    name: str,
    a_port: Port,
    z_port: Port,
    bandwidth_mbps: int,
    a_vlan: int | None = None,
    purchase_order: str = "",
    secondary: ConnectionSpec | None = None,
    dry_run: bool = False,
    z_auto_approve: bool = False,
) -> ConnectionPlan:
    """Request a connection (or a PRIMARY + SECONDARY pair). Own-to-own and auto-approving ports
    go straight to provisioning; otherwise the Z-side owner must approve.

    ``z_auto_approve`` is for trusted callers only (never user input): the Z-side owner approved
    such requests in advance elsewhere, e.g. through a marketplace access point in automatic mode.

    With ``dry_run`` nothing is written: the plan says the price, latency, approvals needed and
    every reason it would be refused.
    """
    try:
        with transaction.atomic():
            plan = _connection_request(
                membership=membership,
                name=name,
                specs=[ConnectionSpec(a_port, z_port, a_vlan), *([secondary] if secondary else [])],
                bandwidth_mbps=bandwidth_mbps,
                purchase_order=purchase_order,
                dry_run=dry_run,
                z_auto_approve=z_auto_approve,
            )
            if dry_run:
                raise _DryRun(plan)
            return plan
    except _DryRun as rollback:
        return rollback.plan
    except PolicyViolation as denial:
        _report_denial(denial)
        raise


def _connection_request(
    *, membership, name, specs, bandwidth_mbps, purchase_order, dry_run, z_auto_approve=False
) -> ConnectionPlan:
    require_action(membership, Action.FABRIC_MANAGE)
    org, user = membership.organization, membership.user
    name = name.strip()
    if not name:
        raise DomainError("Give the connection a name.", field="name")
    if not 1 <= bandwidth_mbps <= pricing.MAX_BANDWIDTH_MBPS:
        raise DomainError(
            f"Bandwidth must be between 1 and {pricing.MAX_BANDWIDTH_MBPS:,} Mbps.", field="bandwidth_mbps"
        )
    if len(specs) == 2:
        specs[1].priority = Priority.SECONDARY
        if specs[0].a_port.pk == specs[1].a_port.pk:
            raise DomainError("A redundant pair needs two different A-side ports.", field="secondary.a_port")
    plan = ConnectionPlan(dry_run=dry_run)
    guard_request = None
    for index, spec in enumerate(specs):
        prefix = "" if index == 0 else "secondary."
        if spec.a_port.organization_id != org.pk:
            raise NotFound("No such A-side port.", field=f"{prefix}a_port")
        _require_active_sides(spec.a_port, spec.z_port, org=org, prefix=prefix)
        if spec.a_port.pk == spec.z_port.pk:
            raise DomainError("The A and Z sides must be different ports.", field=f"{prefix}z_port")
        if index == 0:
            guard_request = GuardRequest(
                organization=org,
                actor=user,
                a_port=spec.a_port,
                z_port=spec.z_port,
                bandwidth_mbps=bandwidth_mbps,
                added_mbps=bandwidth_mbps * len(specs),
            )
            plan.violations += run_guards(guard_request)
        quote = pricing.connection_quote(
            a_metro=spec.a_port.metro, z_metro=spec.z_port.metro, bandwidth_mbps=bandwidth_mbps
        )
        plan.quote.lines += quote.lines
        plan.latency.append(latency_leg(spec.a_port.metro, spec.z_port.metro))
        needs_approval = spec.z_port.organization_id != org.pk and not (spec.z_port.auto_approve or z_auto_approve)
        if needs_approval:
            plan.approvals.append(f"{spec.z_port.organization.name} must approve the connection to {spec.z_port.name}.")
    plan.approvals += [v.message for v in plan.violations if v.severity == Severity.APPROVAL]
    if not plan.allowed:
        if dry_run:
            return plan
        raise PolicyViolation(plan.violations, request=guard_request)

    if dry_run:
        try:
            with transaction.atomic():
                _reserve_and_create(
                    plan,
                    membership=membership,
                    name=name,
                    specs=specs,
                    bandwidth_mbps=bandwidth_mbps,
                    purchase_order=purchase_order,
                    z_auto_approve=z_auto_approve,
                )
        except Conflict as exc:
            plan.violations.append(Violation(guard="fabric", severity=Severity.BLOCK, message=exc.message))
        plan.connections = []  # rolled back: nothing to show but the checks
        return plan
    _reserve_and_create(
        plan,
        membership=membership,
        name=name,
        specs=specs,
        bandwidth_mbps=bandwidth_mbps,
        purchase_order=purchase_order,
        z_auto_approve=z_auto_approve,
    )
    return plan


def _require_active_sides(a_port: Port, z_port: Port, *, org, prefix: str) -> None:
    """The A side must be an active port and the Z side one ``org`` may connect to."""
    if a_port.state != PortState.ACTIVE:
        raise Conflict(
            f"Port {a_port.name} is {a_port.get_state_display().lower()}, not active.", field=f"{prefix}a_port"
        )
    if not _connectable(z_port, org):
        raise NotFound("No such Z-side port.", field=f"{prefix}z_port")


def _reserve_and_create(
    plan: ConnectionPlan, *, membership, name, specs, bandwidth_mbps, purchase_order, z_auto_approve=False
) -> None:
    org, user = membership.organization, membership.user
    demand: dict[int, int] = {}
    for spec in specs:
        for port in (spec.a_port, spec.z_port):
            demand[port.pk] = demand.get(port.pk, 0) + bandwidth_mbps
    locked = _lock_and_reserve(demand, requester_org_id=org.pk)
    for index, spec in enumerate(specs):
        # Checked again on the locked rows: a port may have left ACTIVE since the caller read it.
        a_port, z_port = locked[spec.a_port.pk], locked[spec.z_port.pk]
        # A port's owner never changes: the one the first check loaded serves (no query).
        z_port.organization = org if z_port.organization_id == org.pk else spec.z_port.organization
        _require_active_sides(a_port, z_port, org=org, prefix="" if index == 0 else "secondary.")
    group = uuid.uuid4() if len(specs) == 2 else None
    notes = "; ".join(v.message for v in plan.violations)
    requested = f"Requested {bandwidth_mbps:,} Mbps. {notes}".strip()
    # A guard asked for approval inside the requesting organization: the connection waits on it.
    held_by_requester = any(v.severity == Severity.APPROVAL for v in plan.violations)
    for index, spec in enumerate(specs):
        prefix = "" if index == 0 else "secondary."
        a_port, z_port = locked[spec.a_port.pk], locked[spec.z_port.pk]
        steps = [_Step(ConnectionState.PENDING_APPROVAL, requested, user)]
        own = z_port.organization_id == org.pk
        if not held_by_requester and (own or z_port.auto_approve or z_auto_approve):
            if own:
                message = "Own port: no approval needed."
            elif z_port.auto_approve:
                message = "Approved automatically by the Z-side port."
            else:
                message = "Approved in advance by the Z side's owner."
            steps += _approval_steps(message, actor=None)
        # The Z side's tag is picked now only when no one has to approve (the approver may choose it).
        if len(steps) > 1:
            a_vlan, z_vlan = _pick_vlans([(a_port, spec.a_vlan, f"{prefix}a_vlan"), (z_port, None, "z_vlan")])
        else:
            [a_vlan], z_vlan = _pick_vlans([(a_port, spec.a_vlan, f"{prefix}a_vlan")]), None
        # Written once in its final state (with its tags): the timeline below records every step it went through.
        connection = Connection(
            organization=org,
            name=name if len(specs) == 1 else f"{name} ({spec.priority.lower()})",
            a_port=spec.a_port,
            a_vlan=a_vlan,
            z_port=spec.z_port,
            z_vlan=z_vlan,
            bandwidth_mbps=bandwidth_mbps,
            redundancy_group=group,
            priority=spec.priority,
            purchase_order=purchase_order.strip(),
            created_by=user,
            z_preapproved=z_auto_approve,
            state=steps[-1].to_state,
            pending_on=PendingOn.REQUESTER if held_by_requester else PENDING_ON[steps[-1].to_state],
        )
        _book_vlans(connection, [(a_port, a_vlan, f"{prefix}a_vlan"), (z_port, connection.z_vlan, "z_vlan")])
        request_audit = audit_entry(
            org=org, actor=user, action="connection.request", target=connection, after=_connection_snapshot(connection)
        )
        _record_steps(connection, steps, from_state="", audit=[request_audit])
        if connection.state == ConnectionState.PROVISIONING:
            workflow_start(kind=WorkflowKind.CONNECTION_PROVISION, connection=connection)
        plan.connections.append(connection)


def _approval_steps(message: str, *, actor) -> list["_Step"]:
    return [
        _Step(ConnectionState.APPROVED, message, actor),
        _Step(ConnectionState.PROVISIONING, "Provisioning started.", None),
    ]


def _approve(connection: Connection, *, z_port: Port, z_vlan: int | None, actor, message: str) -> None:
    [connection.z_vlan] = _pick_vlans([(z_port, z_vlan, "z_vlan")])
    _book_vlans(connection, [(z_port, connection.z_vlan, "z_vlan")])
    _record_steps(
        connection, _approval_steps(message, actor=actor), from_state=connection.state, update_fields=["z_vlan"]
    )
    workflow_start(kind=WorkflowKind.CONNECTION_PROVISION, connection=connection)


def _locked_connection(connection: Connection) -> Connection:
    return (
        Connection.objects.select_for_update(of=("self",))
        .select_related("a_port__metro", "z_port__metro", "organization", "z_port__organization")
        .get(pk=connection.pk)
    )


@transaction.atomic
def connection_approve(*, membership: Membership, connection: Connection, z_vlan: int | None = None) -> Connection:
    """The Z-side owner accepts a request, choosing its VLAN (or the lowest free one).

    A request a guard held for approval inside the requesting organization (``pending_on`` is
    REQUESTER) is first approved by an admin or owner of that organization, through this same call.
    """
    require_action(membership, Action.FABRIC_MANAGE)
    connection = _locked_connection(connection)
    if connection.state == ConnectionState.PENDING_APPROVAL and connection.pending_on == PendingOn.REQUESTER:
        return _requester_approve(membership, connection)
    _require_z_side(membership, connection)
    _require_state(connection, ConnectionState.APPROVED)
    z_port = _lock_ports([connection.z_port])[connection.z_port_id]
    _approve(
        connection,
        z_port=z_port,
        z_vlan=z_vlan,
        actor=membership.user,
        message=f"Approved by {membership.organization.name}.",
    )
    audit_record(
        org=membership.organization,
        actor=membership.user,
        action="connection.approve",
        target=connection,
        after={"z_vlan": connection.z_vlan},
    )
    return connection


def _requester_approve(membership: Membership, connection: Connection) -> Connection:
    org, user = membership.organization, membership.user
    if connection.organization_id != org.pk:
        if connection.z_port.organization_id == org.pk:
            raise Conflict(
                "This request is waiting for approval inside the requesting organization first.",
                code="invalid_state",
            )
        raise NotFound("No such connection.")
    if membership.role not in (Role.OWNER, Role.ADMIN):
        raise PermissionDenied("Only an admin or owner of your organization can approve this request.")
    message = f"Approved inside {org.name} by {user.email}."
    z_side_agreed = connection.z_port.auto_approve or connection.z_preapproved
    if connection.z_port.organization_id == org.pk or z_side_agreed:
        if connection.z_preapproved and not connection.z_port.auto_approve:
            message = f"{message} Approved in advance by the Z side's owner."
        z_port = _lock_ports([connection.z_port])[connection.z_port_id]
        _approve(connection, z_port=z_port, z_vlan=None, actor=user, message=message)
    else:
        connection.pending_on = PendingOn.PROVIDER
        message = f"{message} Now waiting for {connection.z_port.organization.name}."
        # Same state, now waiting on the provider: one timeline entry, announced to both ends.
        _record_steps(
            connection,
            [_Step(ConnectionState.PENDING_APPROVAL, message, user)],
            from_state=connection.state,
            update_fields=["pending_on"],
            pending_on=PendingOn.PROVIDER,
        )
    audit_record(org=org, actor=user, action="connection.authorize", target=connection, after={"message": message})
    return connection


@transaction.atomic
def connection_reject(*, membership: Membership, connection: Connection, reason: str) -> Connection:
    require_action(membership, Action.FABRIC_MANAGE)
    reason = reason.strip()
    if not reason:
        raise DomainError("Say why the request is rejected; the requester will see it.", field="reason")
    connection = _locked_connection(connection)
    _require_z_side(membership, connection)
    _require_state(connection, ConnectionState.REJECTED)
    connection.status_reason = reason[:500]
    connection.save(update_fields=["status_reason", "updated_at"])
    _transition(connection, ConnectionState.REJECTED, actor=membership.user, message=f"Rejected: {reason}")
    _release(connection)
    audit_record(
        org=membership.organization,
        actor=membership.user,
        action="connection.reject",
        target=connection,
        after={"reason": reason},
    )
    return connection


@transaction.atomic
def connection_cancel(*, membership: Membership, connection: Connection) -> Connection:
    """The requester withdraws a request before provisioning starts."""
    require_action(membership, Action.FABRIC_MANAGE)
    connection = _locked_connection(connection)
    _require_requester(membership, connection)
    _require_state(connection, ConnectionState.CANCELLED)
    _transition(connection, ConnectionState.CANCELLED, actor=membership.user, message="Cancelled by the requester.")
    _release(connection)
    audit_record(org=membership.organization, actor=membership.user, action="connection.cancel", target=connection)
    return connection


def connection_modify_bandwidth(*, membership: Membership, connection: Connection, bandwidth_mbps: int) -> Connection:
    """Change the bandwidth of an active connection through a MODIFYING workflow."""
    try:
        return _connection_modify_bandwidth(membership=membership, connection=connection, bandwidth_mbps=bandwidth_mbps)
    except PolicyViolation as denial:
        _report_denial(denial)
        raise


@transaction.atomic
def _connection_modify_bandwidth(*, membership: Membership, connection: Connection, bandwidth_mbps: int) -> Connection:
    require_action(membership, Action.FABRIC_MANAGE)
    connection = _locked_connection(connection)
    _require_requester(membership, connection)
    _require_state(connection, ConnectionState.MODIFYING)
    if not 1 <= bandwidth_mbps <= pricing.MAX_BANDWIDTH_MBPS:
        raise DomainError(
            f"Bandwidth must be between 1 and {pricing.MAX_BANDWIDTH_MBPS:,} Mbps.", field="bandwidth_mbps"
        )
    if bandwidth_mbps == connection.bandwidth_mbps:
        raise DomainError("That is the current bandwidth.", field="bandwidth_mbps")
    added = bandwidth_mbps - connection.bandwidth_mbps
    if added > 0:
        guard_request = GuardRequest(
            organization=membership.organization,
            actor=membership.user,
            a_port=connection.a_port,
            z_port=connection.z_port,
            bandwidth_mbps=bandwidth_mbps,
            added_mbps=added,
            connection=connection,
        )
        violations = run_guards(guard_request)
        if any(v.severity == Severity.BLOCK for v in violations):
            raise PolicyViolation(violations, request=guard_request)
        _lock_and_reserve(
            {connection.a_port_id: added, connection.z_port_id: added}, requester_org_id=membership.organization_id
        )
    connection.requested_bandwidth_mbps = bandwidth_mbps
    connection.save(update_fields=["requested_bandwidth_mbps", "updated_at"])
    _transition(
        connection,
        ConnectionState.MODIFYING,
        actor=membership.user,
        message=f"Bandwidth change {connection.bandwidth_mbps:,} -> {bandwidth_mbps:,} Mbps requested.",
    )
    audit_record(
        org=membership.organization,
        actor=membership.user,
        action="connection.modify",
        target=connection,
        before={"bandwidth_mbps": connection.bandwidth_mbps},
        after={"bandwidth_mbps": bandwidth_mbps},
    )
    workflow_start(kind=WorkflowKind.CONNECTION_MODIFY, connection=connection)
    return connection


@transaction.atomic
def connection_deprovision(*, membership: Membership, connection: Connection) -> Connection:
    """Take an active (or failed) connection down; VLANs and bandwidth are released at the end."""
    require_action(membership, Action.FABRIC_MANAGE)
    connection = _locked_connection(connection)
    _require_requester(membership, connection)
    if connection.state in (ConnectionState.PENDING_APPROVAL, ConnectionState.APPROVED):
        raise Conflict("This connection is not provisioned yet: cancel the request instead.", code="invalid_state")
    _require_state(connection, ConnectionState.DEPROVISIONING)
    _transition(connection, ConnectionState.DEPROVISIONING, actor=membership.user, message="Deprovisioning requested.")
    audit_record(org=membership.organization, actor=membership.user, action="connection.deprovision", target=connection)
    workflow_start(kind=WorkflowKind.CONNECTION_DEPROVISION, connection=connection)
    return connection


@transaction.atomic
def connection_retry(*, membership: Membership, connection: Connection) -> Connection:
    """Run a FAILED connection's failed workflow again (provisioning or deprovisioning)."""
    require_action(membership, Action.FABRIC_MANAGE)
    connection = _locked_connection(connection)
    _require_requester(membership, connection)
    if connection.state != ConnectionState.FAILED:
        raise Conflict("Only a failed connection can be retried.", code="invalid_state")
    last = connection.workflows.order_by("-created_at", "-id").first()
    deprovisioning = last is not None and last.kind == WorkflowKind.CONNECTION_DEPROVISION
    target = ConnectionState.DEPROVISIONING if deprovisioning else ConnectionState.PROVISIONING
    connection.status_reason = ""
    connection.save(update_fields=["status_reason", "updated_at"])
    _transition(connection, target, actor=membership.user, message="Retry requested.")
    audit_record(org=membership.organization, actor=membership.user, action="connection.retry", target=connection)
    workflow_start(
        kind=WorkflowKind.CONNECTION_DEPROVISION if deprovisioning else WorkflowKind.CONNECTION_PROVISION,
        connection=connection,
    )
    return connection


def _require_state(connection: Connection, target: str) -> None:
    if not can_transition(connection.state, target):
        raise Conflict(
            f"A connection that is {connection.get_state_display().lower()} cannot become {ConnectionState(target).label.lower()}.",
            code="invalid_state",
        )


def _require_requester(membership: Membership, connection: Connection) -> None:
    if connection.organization_id != membership.organization_id:
        if connection.z_port.organization_id == membership.organization_id:
            raise PermissionDenied("Only the requesting organization can do this.")
        raise NotFound("No such connection.")


def _require_z_side(membership: Membership, connection: Connection) -> None:
    if connection.z_port.organization_id != membership.organization_id:
        if connection.organization_id == membership.organization_id:
            raise PermissionDenied("Only the Z-side port's organization can approve or reject this request.")
        raise NotFound("No such connection.")


@dataclass(frozen=True)
class _Step:
    to_state: str
    message: str
    actor: object = None  # the user who made the change; None for the fabric itself


def _transition(connection: Connection, target: str, *, actor, message: str) -> None:
    _record_steps(connection, [_Step(target, message, actor)], from_state=connection.state)


def _record_steps(
    connection: Connection,
    steps: list[_Step],
    *,
    from_state: str,
    update_fields: Sequence[str] = (),
    audit: Sequence[AuditEvent] = (),
    pending_on: str | None = None,
) -> None:
    """Move the (locked) connection through ``steps`` and record each on its timeline.

    One UPDATE (none for a connection just created in its final state, ``from_state=""``), the
    events and the audit entries in one INSERT statement (``insert_together``), one announcement
    per organization.
    Every step goes to webhooks; people are notified only when the last state waits for someone
    or is final, and the fabric's own intermediate steps are audited the same way as before.
    """
    state, events, entries = from_state, [], list(audit)
    for step in steps:
        if state and state != step.to_state and not can_transition(state, step.to_state):
            raise Conflict(f"Cannot go from {state} to {step.to_state}.", code="invalid_state")
        events.append(
            ConnectionEvent(
                connection=connection,
                from_state=state,
                to_state=step.to_state,
                actor=step.actor,
                actor_label=step.actor.email if step.actor else "fabric",
                message=step.message[:500],
            )
        )
        if step.actor is None and state and state != step.to_state:
            entries.append(
                audit_entry(
                    org=connection.organization,
                    actor=None,
                    action=f"connection.{step.to_state.lower()}",
                    target=connection,
                    before={"state": state},
                    after={"state": step.to_state},
                )
            )
        state = step.to_state
    if from_state:
        connection.state, connection.pending_on = state, pending_on or PENDING_ON[state]
        connection.save(update_fields=["state", "pending_on", "updated_at", *update_fields])
    insert_together([events, entries])
    _announce_connection(connection, events)


def _worth_notifying(event: ConnectionEvent, *, last: bool) -> bool:
    """People hear about a state where someone must act or that is final, and about what another
    person did to a live connection (an approval, say); the fabric's own intermediate steps
    (APPROVED and PROVISIONING of an own-port request, ...) go to webhooks and the timeline only."""
    if last and PENDING_ON[event.to_state] != PendingOn.FABRIC:
        return True
    return event.actor_id is not None and bool(event.from_state)


def _announce_connection(connection: Connection, events: list[ConnectionEvent]) -> None:
    """Tell both ends (and their webhooks) about each state the connection went through."""
    link = reverse("fabric:connection-detail", args=[connection.public_id])
    announcements = [
        Event(
            event_type="connection.state_changed",
            payload={
                "connection": str(connection.public_id),
                "name": connection.name,
                "from_state": event.from_state,
                "to_state": event.to_state,
                "pending_on": connection.pending_on if event is events[-1] else PENDING_ON[event.to_state],
                "bandwidth_mbps": connection.bandwidth_mbps,
                "a_port": str(connection.a_port.public_id),
                "z_port": str(connection.z_port.public_id),
                "message": event.message,
            },
            title=f"{connection.name}: {ConnectionState(event.to_state).label.lower()}",
            body=event.message,
            link=link,
            notify=_worth_notifying(event, last=event is events[-1]),
        )
        for event in events
    ]
    orgs = {
        connection.organization_id: connection.organization,
        connection.z_port.organization_id: connection.z_port.organization,
    }
    for org in orgs.values():
        publish_many(org=org, events=announcements)


def _announce_port(port: Port, before: str) -> None:
    publish(
        org=port.organization,
        event_type="port.state_changed",
        payload={
            "port": str(port.public_id),
            "name": port.name,
            "metro": port.metro.code,
            "from_state": before,
            "to_state": port.state,
        },
        title=f"Port {port.name}: {port.get_state_display().lower()}",
        link=reverse("fabric:port-detail", args=[port.public_id]),
    )


def _release(connection: Connection) -> None:
    """Give back the connection's VLANs and bandwidth."""
    VlanAssignment.objects.filter(connection=connection).delete()
    _release_capacity(connection, connection.bandwidth_mbps)


def _connection_snapshot(connection: Connection) -> dict:
    return {
        "name": connection.name,
        "a_port": str(connection.a_port.public_id),
        "a_vlan": connection.a_vlan,
        "z_port": str(connection.z_port.public_id),
        "bandwidth_mbps": connection.bandwidth_mbps,
        "priority": connection.priority,
        "purchase_order": connection.purchase_order,
    }


# --- Workflow outcomes (called by the engine under the workflow's lock) ----------------------
def _locked_port(port_id: int) -> Port:
    return Port.objects.select_for_update().select_related("metro", "organization").get(pk=port_id)


def locked_subject(workflow: Workflow) -> Port | Connection:
    """The workflow's port or connection, locked and loaded as ``workflow_succeeded`` and
    ``workflow_failed`` need it (the engine passes it back to them as ``locked``)."""
    if workflow.port_id:
        return _locked_port(workflow.port_id)
    return _locked_connection(Connection(pk=workflow.connection_id))


def workflow_succeeded(*, workflow: Workflow, locked: Port | Connection | None = None) -> None:
    """``locked``: the workflow's subject from ``locked_subject`` in this transaction, if the caller has it."""
    if workflow.port_id:
        port = locked or _locked_port(workflow.port_id)
        before = port.state
        port.state = PortState.ACTIVE if workflow.kind == WorkflowKind.PORT_PROVISION else PortState.DECOMMISSIONED
        port.save(update_fields=["state", "updated_at"])
        _announce_port(port, before)
        audit_record(org=port.organization, actor=None, action=f"port.{port.state.lower()}", target=port)
        return
    connection = locked or _locked_connection(workflow.connection)
    if workflow.kind == WorkflowKind.CONNECTION_PROVISION:
        _transition(connection, ConnectionState.ACTIVE, actor=None, message="Provisioned and verified.")
    elif workflow.kind == WorkflowKind.CONNECTION_MODIFY:
        old, new = connection.bandwidth_mbps, connection.requested_bandwidth_mbps
        if new < old:
            _release_capacity(connection, old - new)
        connection.bandwidth_mbps, connection.requested_bandwidth_mbps = new, None
        connection.save(update_fields=["bandwidth_mbps", "requested_bandwidth_mbps", "updated_at"])
        _transition(connection, ConnectionState.ACTIVE, actor=None, message=f"Bandwidth now {new:,} Mbps.")
    elif workflow.kind == WorkflowKind.CONNECTION_DEPROVISION:
        _transition(
            connection,
            ConnectionState.DEPROVISIONED,
            actor=None,
            message="Deprovisioned; VLANs and bandwidth released.",
        )
        _release(connection)


def workflow_failed(*, workflow: Workflow, reason: str, locked: Port | Connection | None = None) -> None:
    if workflow.port_id:
        port = locked or _locked_port(workflow.port_id)
        before = port.state
        port.state = PortState.FAILED
        port.save(update_fields=["state", "updated_at"])
        _announce_port(port, before)
        audit_record(org=port.organization, actor=None, action="port.failed", target=port, after={"reason": reason})
        return
    connection = locked or _locked_connection(workflow.connection)
    if workflow.kind == WorkflowKind.CONNECTION_MODIFY:
        # The old bandwidth stays in service: give back what the change had reserved.
        added = (connection.requested_bandwidth_mbps or 0) - connection.bandwidth_mbps
        if added > 0:
            _release_capacity(connection, added)
        connection.requested_bandwidth_mbps = None
        connection.save(update_fields=["requested_bandwidth_mbps", "updated_at"])
        _transition(
            connection,
            ConnectionState.ACTIVE,
            actor=None,
            message=f"Bandwidth change failed, still {connection.bandwidth_mbps:,} Mbps: {reason}",
        )
        return
    connection.status_reason = reason[:500]
    connection.save(update_fields=["status_reason", "updated_at"])
    _transition(connection, ConnectionState.FAILED, actor=None, message=reason)
