"""The organization's security policy as a fabric connection guard (``FABRIC_CONNECTION_GUARDS``).

Fabric asks ``policy`` before a connection is created or its bandwidth raised. A connection to a
metro outside the allowed sovereignty zones, to a blocked provider or to a port that serves an
offering of a blocked category is refused with a reason the user can read. Above the policy's
approval bandwidth, a new connection waits until an admin or owner of the requesting
organization approves it (an admin's own request passes, noted as such). When fabric refuses a
request, ``policy.on_denied`` records the denial (audit event and a policy alert) after the
refused request's transaction has rolled back, so the record stays.
"""

import logging

from django.db import transaction

from fabric.guards import GuardRequest, Severity, Violation
from hub.choices import Role
from hub.models import Membership
from marketplace.models import AccessPoint, ProviderProfile
from security.models import Policy

logger = logging.getLogger(__name__)

GUARD = "security_policy"
ADMIN_ROLES = frozenset({Role.OWNER, Role.ADMIN})


def policy(request: GuardRequest) -> list[Violation]:
    org_policy = Policy.objects.filter(organization=request.organization).first()
    if org_policy is None:
        return []
    violations = _zone_violations(org_policy, request) + _provider_violations(org_policy, request)
    violations += _approval_violations(org_policy, request)
    return violations


def _block(message: str) -> Violation:
    return Violation(guard=GUARD, severity=Severity.BLOCK, message=message)


def _zone_violations(org_policy: Policy, request: GuardRequest) -> list[Violation]:
    allowed = org_policy.allowed_zones
    if not allowed:
        return []
    zones = ", ".join(allowed)
    violations = []
    for side, metro in (("A", request.a_port.metro), ("Z", request.z_port.metro)):
        if metro.sovereignty_zone not in allowed:
            violations.append(
                _block(
                    f"Your organization's policy allows connections only in the sovereignty zone(s) {zones}; "
                    f"the {side} side is in {metro.name} ({metro.code}), zone {metro.sovereignty_zone}."
                )
            )
    return violations


def _provider_violations(org_policy: Policy, request: GuardRequest) -> list[Violation]:
    z_org_id = request.z_port.organization_id
    if z_org_id == request.organization.pk:
        return []
    violations = []
    profile = ProviderProfile.objects.filter(organization_id=z_org_id).first()
    if profile is not None and org_policy.blocked_providers.filter(pk=profile.pk).exists():
        violations.append(_block(f"Your organization's policy blocks connections to the provider {profile.name}."))
    if org_policy.blocked_categories:
        from marketplace.choices import Category

        hit = sorted(
            set(
                AccessPoint.objects.filter(
                    port=request.z_port, offering__category__in=org_policy.blocked_categories
                ).values_list("offering__category", flat=True)
            )
        )
        if hit:
            labels = ", ".join(Category(category).label for category in hit)
            violations.append(
                _block(
                    f"Your organization's policy blocks the category {labels}, which the port "
                    f"{request.z_port.name} serves."
                )
            )
    return violations


def _approval_violations(org_policy: Policy, request: GuardRequest) -> list[Violation]:
    limit = org_policy.approval_bandwidth_mbps
    if limit is None or request.bandwidth_mbps <= limit:
        return []
    role = (
        Membership.objects.filter(organization=request.organization, user=request.actor)
        .values_list("role", flat=True)
        .first()
    )
    if role in ADMIN_ROLES:
        return [
            Violation(
                guard=GUARD,
                severity=Severity.WARN,
                message=f"Above {limit:,} Mbps: approved by {request.actor.email} as an admin of the organization.",
            )
        ]
    if request.connection is not None:
        # A running connection has no waiting state for its bandwidth change: an admin makes it.
        return [
            _block(
                f"Your organization's policy needs an admin's approval above {limit:,} Mbps: "
                "ask an admin or owner to make this change."
            )
        ]
    return [
        Violation(
            guard=GUARD,
            severity=Severity.APPROVAL,
            message=f"Above {limit:,} Mbps, an admin or owner of {request.organization.name} must approve this connection.",
        )
    ]


def _policy_denied(request: GuardRequest, violations: list[Violation]) -> None:
    """Record a refusal the policy caused (fabric calls this after rolling the request back)."""
    reasons = [v.message for v in violations if v.guard == GUARD and v.severity == Severity.BLOCK]
    if not reasons:
        return
    arguments = {
        "org_id": request.organization.pk,
        "actor_id": getattr(request.actor, "pk", None),
        "a_port_id": request.a_port.pk,
        "z_port_id": request.z_port.pk,
        "bandwidth_mbps": request.bandwidth_mbps,
        "connection_id": getattr(request.connection, "pk", None),
        "reasons": reasons,
    }
    if transaction.get_connection().in_atomic_block:
        # A caller's transaction (e.g. a marketplace order) is still open and will roll back:
        # record the denial from the worker instead.
        from security.tasks import record_policy_denial

        try:
            record_policy_denial.delay(**arguments)
        except Exception:  # a broker outage must not turn a clear 403 into a 500
            logger.exception("Could not enqueue the policy denial record")
        return
    from security.services import policy_denial_record

    policy_denial_record(**arguments)


policy.on_denied = _policy_denied
