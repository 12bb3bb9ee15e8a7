from django.utils.functional import SimpleLazyObject

from hub.roles import Action, role_allows
from hub.selectors import notification_unread_count, user_memberships


def organization(request):
    """The active organization, the user's other memberships (for the switcher), nav rights and
    the unread-notification count (one count query, run only when a template shows it)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    role = membership.role if membership else None
    org = getattr(request, "org", None)
    return {
        "active_org": org,
        "active_membership": membership,
        "org_memberships": user_memberships(user=request.user),
        "nav": {
            "audit": role_allows(role, Action.AUDIT_VIEW),
            "webhooks": role_allows(role, Action.WEBHOOKS_MANAGE),
            "provider_console": bool(membership and membership.organization.is_provider),
        },
        "unread_notifications": SimpleLazyObject(
            lambda: notification_unread_count(org=org, user=request.user) if org is not None else 0
        ),
    }
