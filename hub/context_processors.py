from hub.roles import Action, role_allows
from hub.selectors import user_memberships


def organization(request):
    """The active organization, the user's other memberships (for the switcher) and nav rights."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    role = membership.role if membership else None
    return {
        "active_org": getattr(request, "org", None),
        "active_membership": membership,
        "org_memberships": user_memberships(user=request.user),
        "nav": {
            "audit": role_allows(role, Action.AUDIT_VIEW),
            "provider_console": bool(membership and membership.organization.is_provider),
        },
    }
