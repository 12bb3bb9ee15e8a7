from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from hub.choices import Role
from hub.models import APIToken, AuditEvent, Membership, Notification, Organization, User, Webhook, WebhookDelivery


def membership_for(user: User, org_id: int | None) -> Membership | None:
    """The user's membership in ``org_id``, or their first one when that is not theirs."""
    memberships = Membership.objects.select_related("organization").filter(user=user)
    if org_id is not None:
        chosen = memberships.filter(organization_id=org_id).first()
        if chosen is not None:
            return chosen
    return memberships.order_by("organization__name").first()


def user_memberships(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.select_related("organization").filter(user=user).order_by("organization__name")


def organization_members(*, org: Organization) -> QuerySet[Membership]:
    return Membership.objects.for_org(org).select_related("user").order_by("user__email")


def owner_count(*, org: Organization) -> int:
    return Membership.objects.for_org(org).filter(role=Role.OWNER).count()


def token_list(*, org: Organization, user: User, see_all: bool) -> QuerySet[APIToken]:
    tokens = APIToken.objects.for_org(org).select_related("user")
    return tokens if see_all else tokens.filter(user=user)


def audit_events(*, org: Organization) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.for_org(org).select_related("actor", "token")


def organization_overview(*, org: Organization) -> dict:
    members = Membership.objects.for_org(org).values("role").annotate(n=Count("id"))
    return {
        "members": sum(row["n"] for row in members),
        "members_by_role": {row["role"]: row["n"] for row in members},
        "active_tokens": APIToken.objects.for_org(org)
        .filter(revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .count(),
        "recent_events": list(audit_events(org=org)[:8]),
    }


def webhook_list(*, org: Organization) -> QuerySet[Webhook]:
    return Webhook.objects.for_org(org).select_related("created_by")


def webhook_deliveries(*, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    """The delivery log of one webhook, newest first."""
    return WebhookDelivery.objects.for_org(webhook.organization).filter(webhook=webhook).order_by("-created_at", "-id")


def notification_list(*, org: Organization, user: User) -> QuerySet[Notification]:
    """The member's own notifications in ``org``, newest first."""
    return Notification.objects.for_org(org).filter(user=user).order_by("-created_at", "-id")


def notification_unread_count(*, org: Organization, user: User) -> int:
    return notification_list(org=org, user=user).filter(read_at__isnull=True).count()
