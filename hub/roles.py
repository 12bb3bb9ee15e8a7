"""The one written matrix of role -> allowed actions, used by the portal and the API alike.

A view names the action it performs; ``role_allows`` answers whether a member may do it. API
tokens additionally need the scope an action demands (``ACTION_SCOPE``): a token can never do
more than both its user's role and its scopes allow.
"""

from enum import StrEnum

from hub.choices import Role, TokenScope


class Action(StrEnum):
    ORG_VIEW = "org.view"
    ORG_MANAGE = "org.manage"
    MEMBERS_VIEW = "members.view"
    MEMBERS_MANAGE = "members.manage"
    OWNERS_MANAGE = "owners.manage"
    TOKENS_USE = "tokens.use"
    TOKENS_MANAGE = "tokens.manage"
    AUDIT_VIEW = "audit.view"
    WEBHOOKS_MANAGE = "webhooks.manage"
    FABRIC_VIEW = "fabric.view"
    FABRIC_MANAGE = "fabric.manage"
    MARKETPLACE_VIEW = "marketplace.view"
    MARKETPLACE_ORDER = "marketplace.order"
    PROVIDER_MANAGE = "provider.manage"
    SECURITY_VIEW = "security.view"
    SECURITY_MANAGE = "security.manage"


_EVERY_MEMBER = {
    Action.ORG_VIEW,
    Action.MEMBERS_VIEW,
    Action.TOKENS_USE,
    Action.FABRIC_VIEW,
    Action.MARKETPLACE_VIEW,
    Action.SECURITY_VIEW,
}

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.ADMIN: frozenset(set(Action) - {Action.OWNERS_MANAGE}),
    Role.NETWORK_ENGINEER: frozenset(
        _EVERY_MEMBER | {Action.FABRIC_MANAGE, Action.MARKETPLACE_ORDER, Action.PROVIDER_MANAGE}
    ),
    Role.SECURITY_ANALYST: frozenset(_EVERY_MEMBER | {Action.SECURITY_MANAGE, Action.AUDIT_VIEW}),
    Role.VIEWER: frozenset(_EVERY_MEMBER),
}

# Scope an API token needs for an action, beyond `read` for safe methods and `write` for unsafe.
ACTION_SCOPE: dict[Action, TokenScope] = {
    Action.SECURITY_VIEW: TokenScope.SECURITY,
    Action.SECURITY_MANAGE: TokenScope.SECURITY,
}

# Roles ordered from most to least privileged, for "too small a role" checks and displays.
ROLE_ORDER: tuple[Role, ...] = (
    Role.OWNER,
    Role.ADMIN,
    Role.NETWORK_ENGINEER,
    Role.SECURITY_ANALYST,
    Role.VIEWER,
)


def role_allows(role: str | None, action: Action) -> bool:
    if role is None:
        return False
    return action in ROLE_ACTIONS.get(Role(role), frozenset())


def roles_allowed(action: Action) -> list[Role]:
    return [role for role in ROLE_ORDER if action in ROLE_ACTIONS[role]]


def scopes_required(action: Action, *, safe_method: bool) -> set[str]:
    needed = {TokenScope.READ if safe_method else TokenScope.WRITE}
    if action in ACTION_SCOPE:
        needed.add(ACTION_SCOPE[action])
    return {str(scope) for scope in needed}
