"""Fabric vocabularies and the one published connection state machine."""

from django.db import models


class Region(models.TextChoices):
    AMER = "AMER", "Americas"
    EMEA = "EMEA", "Europe, Middle East and Africa"
    APAC = "APAC", "Asia-Pacific"


class PortSpeed(models.IntegerChoices):
    G1 = 1_000, "1 Gbps"
    G10 = 10_000, "10 Gbps"
    G100 = 100_000, "100 Gbps"
    G400 = 400_000, "400 Gbps"


class PortState(models.TextChoices):
    PROVISIONING = "PROVISIONING", "Provisioning"
    ACTIVE = "ACTIVE", "Active"
    DECOMMISSIONING = "DECOMMISSIONING", "Decommissioning"
    DECOMMISSIONED = "DECOMMISSIONED", "Decommissioned"
    FAILED = "FAILED", "Failed"


class ConnectionState(models.TextChoices):
    PENDING_APPROVAL = "PENDING_APPROVAL", "Pending approval"
    APPROVED = "APPROVED", "Approved"
    PROVISIONING = "PROVISIONING", "Provisioning"
    ACTIVE = "ACTIVE", "Active"
    MODIFYING = "MODIFYING", "Modifying"
    DEPROVISIONING = "DEPROVISIONING", "Deprovisioning"
    DEPROVISIONED = "DEPROVISIONED", "Deprovisioned"
    REJECTED = "REJECTED", "Rejected"
    CANCELLED = "CANCELLED", "Cancelled"
    FAILED = "FAILED", "Failed"


class PendingOn(models.TextChoices):
    REQUESTER = "REQUESTER", "Requester"
    PROVIDER = "PROVIDER", "Provider (Z side)"
    FABRIC = "FABRIC", "Fabric"
    NONE = "NONE", "Nobody"


class Priority(models.TextChoices):
    PRIMARY = "PRIMARY", "Primary"
    SECONDARY = "SECONDARY", "Secondary"


class WorkflowKind(models.TextChoices):
    PORT_PROVISION = "PORT_PROVISION", "Port provisioning"
    PORT_DECOMMISSION = "PORT_DECOMMISSION", "Port decommissioning"
    CONNECTION_PROVISION = "CONNECTION_PROVISION", "Connection provisioning"
    CONNECTION_MODIFY = "CONNECTION_MODIFY", "Bandwidth change"
    CONNECTION_DEPROVISION = "CONNECTION_DEPROVISION", "Connection deprovisioning"


class WorkflowStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    RUNNING = "RUNNING", "Running"
    SUCCEEDED = "SUCCEEDED", "Succeeded"
    FAILED = "FAILED", "Failed"


class StepStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    RUNNING = "RUNNING", "Running"
    SUCCEEDED = "SUCCEEDED", "Succeeded"
    FAILED = "FAILED", "Failed"


S = ConnectionState

# Every allowed connection transition, written once: services enforce it, templates use it to
# choose buttons, the API schema and the README publish it.
CONNECTION_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED}),
    S.APPROVED: frozenset({S.PROVISIONING, S.CANCELLED}),
    S.PROVISIONING: frozenset({S.ACTIVE, S.FAILED}),
    S.ACTIVE: frozenset({S.MODIFYING, S.DEPROVISIONING}),
    S.MODIFYING: frozenset({S.ACTIVE}),  # a failed change leaves the old bandwidth in service
    S.DEPROVISIONING: frozenset({S.DEPROVISIONED, S.FAILED}),
    S.FAILED: frozenset({S.PROVISIONING, S.DEPROVISIONING}),
    S.DEPROVISIONED: frozenset(),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Who the connection is waiting on in each state (DESIGN §4): waiting for the other party's
# approval must never look like a failure.
PENDING_ON: dict[str, str] = {
    S.PENDING_APPROVAL: PendingOn.PROVIDER,
    S.APPROVED: PendingOn.FABRIC,
    S.PROVISIONING: PendingOn.FABRIC,
    S.ACTIVE: PendingOn.NONE,
    S.MODIFYING: PendingOn.FABRIC,
    S.DEPROVISIONING: PendingOn.FABRIC,
    S.DEPROVISIONED: PendingOn.NONE,
    S.REJECTED: PendingOn.NONE,
    S.CANCELLED: PendingOn.NONE,
    S.FAILED: PendingOn.REQUESTER,
}

# States whose connection holds VLANs and bandwidth on its ports.
LIVE_CONNECTION_STATES = frozenset(
    {S.PENDING_APPROVAL, S.APPROVED, S.PROVISIONING, S.ACTIVE, S.MODIFYING, S.DEPROVISIONING, S.FAILED}
)
TERMINAL_CONNECTION_STATES = frozenset({S.DEPROVISIONED, S.REJECTED, S.CANCELLED})


def can_transition(current: str, target: str) -> bool:
    return target in CONNECTION_TRANSITIONS.get(current, frozenset())


def state_machine_markdown() -> str:
    """The state machine as a Markdown table, for the API schema description."""
    lines = ["| state | waiting on | may become |", "|---|---|---|"]
    for state in ConnectionState:
        targets = ", ".join(sorted(CONNECTION_TRANSITIONS[state])) or "(final)"
        lines.append(f"| `{state}` | {PENDING_ON[state]} | {targets} |")
    return "\n".join(lines)
