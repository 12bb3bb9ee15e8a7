from rest_framework import permissions

from hub.models import APIToken
from hub.roles import Action, role_allows, scopes_required


class HasOrgAction(permissions.BasePermission):
    """Allows a request when the member's role permits the view's action and, for API tokens,
    the token carries the scopes the action needs.

    Views say what they do with ``required_action`` (one action) or ``action_permissions``
    (a map of viewset action -> Action, falling back to ``required_action``). A view that names
    no action is refused: forgetting to declare one must never open an endpoint.
    """

    message = "Your role in this organization does not allow this."

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        membership = getattr(request._request, "membership", None)
        if membership is None:
            self.message = "You are not a member of any organization."
            return False
        action = required_action(view)
        if action is None:
            return False
        if isinstance(request.auth, APIToken):
            missing = scopes_required(action, safe_method=request.method in permissions.SAFE_METHODS) - set(
                request.auth.scopes
            )
            if missing:
                self.message = f"This token lacks the scope(s): {', '.join(sorted(missing))}."
                return False
        if not role_allows(membership.role, action):
            self.message = "Your role in this organization does not allow this."
            return False
        return True


def required_action(view) -> Action | None:
    mapping = getattr(view, "action_permissions", None) or {}
    action_name = getattr(view, "action", None)
    if action_name in mapping:
        return mapping[action_name]
    return getattr(view, "required_action", None)


class PublicEndpoint(permissions.AllowAny):
    """For the few endpoints that need no organization (schema, health)."""
