"""Every write of the hub app. Keyword-only, atomic, audited; follow-up work enqueued on commit."""

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.contrib.auth import password_validation
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, FilteredRelation, Model, Q
from django.utils import timezone
from django.utils.text import slugify

from hub import context, events, webhooks
from hub.choices import DeliveryStatus, OrganizationKind, Role, TokenScope
from hub.errors import Conflict, DomainError, NotFound, PermissionDenied
from hub.models import (
    APIToken,
    AuditEvent,
    Invitation,
    Membership,
    Notification,
    Organization,
    User,
    Webhook,
    WebhookDelivery,
)
from hub.roles import Action, role_allows

TOKEN_PREFIX = "ihub"  # noqa: S105 - a public marker, not a secret


# --- Audit -----------------------------------------------------------------------------------
def audit_record(
    *,
    org: Organization | None,
    actor: User | None,
    action: str,
    target: Model | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one audit event; request id, client address and API token come from the request."""
    event = audit_entry(org=org, actor=actor, action=action, target=target, before=before, after=after)
    event.save()
    return event


def audit_changes(
    *, org: Organization | None, actor: User | None, action: str, target: Model, before: dict, after: dict
) -> AuditEvent:
    """Audit an update with only the fields that changed, each with its old and new value."""
    changed = [key for key in after if after[key] != before.get(key)]
    return audit_record(
        org=org,
        actor=actor,
        action=action,
        target=target,
        before={key: before.get(key) for key in changed},
        after={key: after[key] for key in changed},
    )


def audit_entry(
    *,
    org: Organization | None,
    actor: User | None,
    action: str,
    target: Model | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """An unsaved audit event, for services that append several at once with ``bulk_create``."""
    ctx = context.current()
    return AuditEvent(
        organization=org,
        actor=actor if actor is not None and actor.pk else None,
        actor_email=actor.email if actor is not None else "",
        token_id=ctx.token_id,
        action=action,
        object_type=target._meta.label if target is not None else "",
        object_id=str(getattr(target, "public_id", None) or getattr(target, "pk", "") or "") if target else "",
        object_repr=str(target)[:200] if target is not None else "",
        before=before,
        after=after,
        request_id=ctx.request_id,
        ip_address=ctx.ip_address,
    )


def require_action(membership: Membership | None, action: Action) -> None:
    """Raise PermissionDenied unless the member's role allows ``action``."""
    if membership is None or not role_allows(membership.role, action):
        raise PermissionDenied("Your role in this organization does not allow this.")


# --- Sign-up and organizations ---------------------------------------------------------------
def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    slug, n = base, 2
    while Organization.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def _validate_password(password: str, user: User) -> None:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise DomainError(" ".join(exc.messages), code="weak_password", field="password") from exc


@transaction.atomic
def user_signup(*, email: str, password: str, full_name: str, org_name: str) -> tuple[User, Organization]:
    """Create a user and an enterprise organization they own. Nothing is written if any check fails."""
    email = User.objects.normalize_email(email).strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict("An account with this e-mail address already exists. Log in instead.", field="email")
    user = User(email=email, full_name=full_name.strip())
    _validate_password(password, user)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # a concurrent sign-up with the same address won the race
        raise Conflict("An account with this e-mail address already exists.", field="email") from exc
    org = organization_create(actor=user, name=org_name, kind=OrganizationKind.ENTERPRISE)
    audit_record(org=org, actor=user, action="user.signup", target=user)
    return user, org


@transaction.atomic
def organization_create(*, actor: User, name: str, kind: str = OrganizationKind.ENTERPRISE) -> Organization:
    """Create an organization with ``actor`` as its first OWNER."""
    name = name.strip()
    if not name:
        raise DomainError("Give the organization a name.", field="name")
    org = Organization.objects.create(name=name, slug=_unique_slug(name), kind=kind)
    Membership.objects.create(user=actor, organization=org, role=Role.OWNER)
    audit_record(org=org, actor=actor, action="organization.create", target=org, after={"name": name, "kind": kind})
    return org


# --- Members ---------------------------------------------------------------------------------
def _lock_owners(org: Organization) -> list[Membership]:
    return list(Membership.objects.for_org(org).select_for_update().filter(role=Role.OWNER))


@transaction.atomic
def membership_change_role(*, membership: Membership, actor_membership: Membership, role: str) -> Membership:
    """Change a member's role. Only owners grant or take away OWNER; the last owner stays owner."""
    if role not in Role.values:
        raise DomainError("Unknown role.", field="role")
    require_action(actor_membership, Action.MEMBERS_MANAGE)
    involves_owner = Role.OWNER in (role, membership.role)
    if involves_owner:
        require_action(actor_membership, Action.OWNERS_MANAGE)
    owners = _lock_owners(membership.organization)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Role.OWNER and role != Role.OWNER and len(owners) <= 1:
        raise Conflict("The last owner cannot be demoted. Make another member an owner first.", code="last_owner")
    before = {"role": membership.role}
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    audit_record(
        org=membership.organization,
        actor=actor_membership.user,
        action="membership.role_change",
        target=membership.user,
        before=before,
        after={"role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor_membership: Membership) -> None:
    """Remove a member (members may also leave). The last owner cannot be removed."""
    leaving_self = membership.user_id == actor_membership.user_id
    if not leaving_self:
        require_action(actor_membership, Action.MEMBERS_MANAGE)
        if membership.role == Role.OWNER:
            require_action(actor_membership, Action.OWNERS_MANAGE)
    owners = _lock_owners(membership.organization)
    if membership.role == Role.OWNER and len(owners) <= 1:
        raise Conflict("The last owner cannot be removed. Make another member an owner first.", code="last_owner")
    org, user = membership.organization, membership.user
    membership.delete()
    APIToken.objects.for_org(org).filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    audit_record(
        org=org, actor=actor_membership.user, action="membership.remove", target=user, before={"role": membership.role}
    )


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


INVITATION_SALT = "hub.invitation"


def invitation_token(invitation: Invitation) -> str:
    """The signed token in an invitation's accept link (nothing secret is stored or queued)."""
    return signing.dumps(str(invitation.public_id), salt=INVITATION_SALT)


@transaction.atomic
def invitation_create(*, actor_membership: Membership, email: str, role: str) -> Invitation:
    """Invite ``email`` with ``role``; a worker e-mails the accept link after commit."""
    from hub.tasks import send_invitation_email

    org = actor_membership.organization
    require_action(actor_membership, Action.MEMBERS_MANAGE)
    if role not in Role.values:
        raise DomainError("Unknown role.", field="role")
    if role == Role.OWNER:
        require_action(actor_membership, Action.OWNERS_MANAGE)
    email = User.objects.normalize_email(email).strip().lower()
    if Membership.objects.for_org(org).filter(user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member of {org}.", field="email")
    # An unanswered invitation to the same address is replaced, so "send again" just works.
    Invitation.objects.for_org(org).filter(email=email, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    invitation = Invitation.objects.create(
        organization=org,
        email=email,
        role=role,
        invited_by=actor_membership.user,
        expires_at=timezone.now() + settings.INVITATION_TTL,
    )
    audit_record(
        org=org,
        actor=actor_membership.user,
        action="invitation.create",
        target=invitation,
        after={"email": email, "role": role},
    )
    # Robust: a broker outage leaves the invitation "sending"; the beat task send_unsent_invitations retries.
    transaction.on_commit(lambda: send_invitation_email.delay(invitation.pk), robust=True)
    return invitation


def invitation_lookup(*, raw_token: str) -> Invitation:
    """The invitation a link points at, or a clear error saying why it cannot be used."""
    try:
        public_id = signing.loads(raw_token, salt=INVITATION_SALT)
    except signing.BadSignature:
        public_id = None
    invitation = (
        Invitation.objects.select_related("organization").filter(public_id=public_id).first() if public_id else None
    )
    if invitation is None:
        raise NotFound("This invitation link is not valid. Ask for a new invitation.", code="invitation_invalid")
    if invitation.accepted_at is not None:
        raise Conflict("This invitation has already been used.", code="invitation_used")
    if invitation.revoked_at is not None:
        raise Conflict("This invitation was withdrawn or replaced by a newer one.", code="invitation_revoked")
    if invitation.expires_at <= timezone.now():
        raise Conflict("This invitation has expired. Ask for a new invitation.", code="invitation_expired")
    return invitation


@transaction.atomic
def invitation_accept(*, raw_token: str, user: User) -> Membership:
    """Join the invitation's organization. The link works once, before it expires."""
    invitation = invitation_lookup(raw_token=raw_token)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:
        raise Conflict("This invitation has already been used.", code="invitation_used")
    if invitation.email.lower() != user.email.lower():
        raise PermissionDenied(
            f"This invitation was sent to {invitation.email}; you are logged in as {user.email}.",
            code="invitation_other_user",
        )
    membership, _ = Membership.objects.get_or_create(
        user=user, organization=invitation.organization, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    audit_record(
        org=invitation.organization,
        actor=user,
        action="invitation.accept",
        target=invitation,
        after={"role": membership.role},
    )
    return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor_membership: Membership) -> None:
    require_action(actor_membership, Action.MEMBERS_MANAGE)
    if invitation.accepted_at is not None:
        raise Conflict("This invitation has already been accepted.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at", "updated_at"])
    audit_record(
        org=invitation.organization, actor=actor_membership.user, action="invitation.revoke", target=invitation
    )


# --- API tokens ------------------------------------------------------------------------------
def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned = sorted({s.strip() for s in scopes if s and s.strip()})
    unknown = [s for s in cleaned if s not in TokenScope.values]
    if unknown:
        raise DomainError(
            f"Unknown scope(s): {', '.join(unknown)}. Use {', '.join(TokenScope.values)}.", field="scopes"
        )
    if not cleaned:
        raise DomainError("Choose at least one scope.", field="scopes")
    return cleaned


@transaction.atomic
def api_token_create(
    *, membership: Membership, name: str, scopes: Iterable[str], expires_at: datetime | None = None
) -> tuple[APIToken, str]:
    """Create a token for the member in their organization. Returns the token and its secret,
    which is never stored and cannot be shown again."""
    require_action(membership, Action.TOKENS_USE)
    name = name.strip()
    if not name:
        raise DomainError("Give the token a name.", field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise DomainError("The expiry must be in the future.", field="expires_at")
    scopes = _clean_scopes(scopes)
    prefix = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = APIToken.objects.create(
        organization=membership.organization,
        user=membership.user,
        name=name,
        prefix=prefix,
        digest=_hash_secret(secret),
        scopes=scopes,
        expires_at=expires_at,
    )
    audit_record(
        org=membership.organization,
        actor=membership.user,
        action="token.create",
        target=token,
        after={"name": name, "scopes": scopes, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return token, secret


@transaction.atomic
def api_token_revoke(*, token: APIToken, actor_membership: Membership) -> APIToken:
    """Revoke a token: its owner may, and so may an org admin. Revoking twice is harmless."""
    if token.user_id != actor_membership.user_id:
        require_action(actor_membership, Action.TOKENS_MANAGE)
    token = APIToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
        audit_record(org=token.organization, actor=actor_membership.user, action="token.revoke", target=token)
    return token


def api_token_authenticate(secret: str) -> tuple[APIToken | None, str]:
    """Find the active token for a presented secret. Returns (token, "") or (None, reason);
    the token comes with ``token.membership``, the user's membership in the token's org."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None, "The token is malformed."
    # One statement: the token, its user and organization, and the user's membership in that org.
    token = (
        APIToken.objects.annotate(
            membership_row=FilteredRelation(
                "user__memberships", condition=Q(user__memberships__organization=F("organization"))
            )
        )
        .select_related("user", "organization", "membership_row")
        .filter(prefix=parts[1])
        .first()
    )
    if token is None or not secrets.compare_digest(token.digest, _hash_secret(secret)):
        return None, "The token is not valid."
    if token.revoked_at is not None:
        _record_misuse(token, "token.revoked_use")
        return None, "The token has been revoked."
    if token.is_expired:
        return None, "The token has expired."
    if not token.user.is_active:
        return None, "The token's user is deactivated."
    token.membership = getattr(token, "membership_row", None)  # not set when the join found no row
    if token.membership is None:
        return None, "The token's user is no longer a member of its organization."
    token.membership.user, token.membership.organization = token.user, token.organization
    now = timezone.now()
    # Write last-used at most once a minute per token to keep authentication cheap.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        APIToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token, ""


def _record_misuse(token: APIToken, action: str) -> None:
    audit_record(org=token.organization, actor=token.user, action=action, target=token)


# --- Webhooks --------------------------------------------------------------------------------
WEBHOOK_SECRET_PREFIX = "whsec"  # noqa: S105 - a public marker, not a secret
MAX_WEBHOOKS_PER_ORG = 20


def _new_webhook_secret() -> str:
    return f"{WEBHOOK_SECRET_PREFIX}_{secrets.token_urlsafe(32)}"


def _clean_webhook_url(url: str) -> str:
    url = (url or "").strip()
    problem = webhooks.url_problem(url)
    if problem:
        raise DomainError(problem, field="url")
    return url


def _clean_event_types(event_types: Iterable[str]) -> list[str]:
    cleaned = sorted({name.strip() for name in event_types if name and name.strip()})
    allowed = events.subscribable_event_types()
    unknown = [name for name in cleaned if name not in allowed]
    if unknown:
        raise DomainError(
            f"Unknown event type(s): {', '.join(unknown)}. Choose from {', '.join(allowed)}.", field="event_types"
        )
    if not cleaned:
        raise DomainError("Choose at least one event type.", field="event_types")
    return cleaned


def _clean_description(description: str) -> str:
    description = (description or "").strip()
    if len(description) > 200:
        raise DomainError("Keep the description under 200 characters.", field="description")
    return description


def _webhook_snapshot(webhook: Webhook) -> dict:
    return {
        "url": webhook.url,
        "description": webhook.description,
        "event_types": list(webhook.event_types),
        "is_active": webhook.is_active,
    }


@transaction.atomic
def webhook_create(
    *, membership: Membership, url: str, event_types: Iterable[str], description: str = "", is_active: bool = True
) -> tuple[Webhook, str]:
    """Register an endpoint for the organization. Returns the webhook and its signing secret,
    which the caller shows once: it is never returned again (rotate it if it is lost)."""
    require_action(membership, Action.WEBHOOKS_MANAGE)
    org = membership.organization
    webhook = Webhook(
        organization=org,
        url=_clean_webhook_url(url),
        description=_clean_description(description),
        event_types=_clean_event_types(event_types),
        is_active=is_active,
        secret=_new_webhook_secret(),
        created_by=membership.user,
    )
    # Lock the organization row so concurrent creates cannot pass the limit together.
    Organization.objects.select_for_update().filter(pk=org.pk).first()
    if Webhook.objects.for_org(org).count() >= MAX_WEBHOOKS_PER_ORG:
        raise Conflict(f"An organization can have at most {MAX_WEBHOOKS_PER_ORG} webhooks.", code="webhook_limit")
    webhook.save()
    audit_record(
        org=org, actor=membership.user, action="webhook.create", target=webhook, after=_webhook_snapshot(webhook)
    )
    return webhook, webhook.secret


@transaction.atomic
def webhook_update(
    *,
    membership: Membership,
    webhook: Webhook,
    url: str | None = None,
    description: str | None = None,
    event_types: Iterable[str] | None = None,
    is_active: bool | None = None,
) -> Webhook:
    """Change what is given (None leaves a field as it is); the secret stays."""
    require_action(membership, Action.WEBHOOKS_MANAGE)
    webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
    before = _webhook_snapshot(webhook)
    if url is not None:
        webhook.url = _clean_webhook_url(url)
    if description is not None:
        webhook.description = _clean_description(description)
    if event_types is not None:
        webhook.event_types = _clean_event_types(event_types)
    if is_active is not None:
        webhook.is_active = is_active
    after = _webhook_snapshot(webhook)
    if after != before:
        webhook.save()
        audit_changes(
            org=webhook.organization,
            actor=membership.user,
            action="webhook.update",
            target=webhook,
            before=before,
            after=after,
        )
    return webhook


@transaction.atomic
def webhook_delete(*, membership: Membership, webhook: Webhook) -> None:
    """Delete the webhook and its delivery log; deliveries still queued are dropped."""
    require_action(membership, Action.WEBHOOKS_MANAGE)
    audit_record(
        org=webhook.organization,
        actor=membership.user,
        action="webhook.delete",
        target=webhook,
        before=_webhook_snapshot(webhook),
    )
    webhook.delete()


@transaction.atomic
def webhook_rotate_secret(*, membership: Membership, webhook: Webhook) -> tuple[Webhook, str]:
    """Replace the signing secret at once; every later attempt (retries too) is signed with the new one."""
    require_action(membership, Action.WEBHOOKS_MANAGE)
    webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
    webhook.secret = _new_webhook_secret()
    webhook.save(update_fields=["secret", "updated_at"])
    audit_record(org=webhook.organization, actor=membership.user, action="webhook.rotate_secret", target=webhook)
    return webhook, webhook.secret


@transaction.atomic
def webhook_send_test(*, membership: Membership, webhook: Webhook) -> WebhookDelivery:
    """Send a ``webhook.test`` event to this webhook only (no notification, no other webhook)."""
    require_action(membership, Action.WEBHOOKS_MANAGE)
    if not webhook.is_active:
        raise Conflict("The webhook is disabled. Enable it to send a test event.", code="webhook_disabled")
    envelope = events.build_envelope(
        org=webhook.organization,
        event_type=events.TEST_EVENT,
        payload={
            "message": "A test event from Interconnect Hub. Your endpoint received and verified it.",
            "webhook": str(webhook.public_id),
            "sent_by": membership.user.email,
        },
    )
    [delivery] = events.queue_deliveries(webhooks=[webhook], envelope=envelope)
    audit_record(
        org=webhook.organization,
        actor=membership.user,
        action="webhook.test",
        target=webhook,
        after={"delivery": str(delivery.public_id)},
    )
    return delivery


@transaction.atomic
def webhook_redeliver(*, membership: Membership, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a failed delivery again, with the same event id and payload and a fresh set of attempts."""
    from hub.tasks import webhook_deliver

    require_action(membership, Action.WEBHOOKS_MANAGE)
    delivery = WebhookDelivery.objects.select_for_update(of=("self",)).select_related("webhook").get(pk=delivery.pk)
    if delivery.status != DeliveryStatus.FAILED:
        raise Conflict("Only failed deliveries can be redelivered.", code="delivery_not_failed")
    if not delivery.webhook.is_active:
        raise Conflict("The webhook is disabled. Enable it to redeliver.", code="webhook_disabled")
    before = {"status": delivery.status, "attempts": delivery.attempts, "last_error": delivery.last_error}
    delivery.status, delivery.attempts, delivery.next_attempt_at = DeliveryStatus.PENDING, 0, timezone.now()
    delivery.last_status_code, delivery.last_error, delivery.response_excerpt = None, "", ""
    delivery.save(
        update_fields=[
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "response_excerpt",
            "updated_at",
        ]
    )
    audit_record(
        org=delivery.organization,
        actor=membership.user,
        action="webhook.redeliver",
        target=delivery,
        before=before,
        after={"status": delivery.status, "event_id": str(delivery.event_id)},
    )
    transaction.on_commit(lambda: webhook_deliver.delay(delivery.pk), robust=True)
    return delivery


# --- Notifications ---------------------------------------------------------------------------
# Read markers are a member's own view state, not a change to the organization: not audited.
def notification_mark_read(*, membership: Membership, notification: Notification) -> Notification:
    """Mark one of the member's own notifications read (again is harmless)."""
    if notification.user_id != membership.user_id or notification.organization_id != membership.organization_id:
        raise NotFound("No such notification.")
    if notification.read_at is None:
        notification.read_at = timezone.now()
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=notification.read_at)
    return notification


def notification_mark_all_read(*, membership: Membership) -> int:
    """Mark all of the member's unread notifications in the organization read; returns how many."""
    return (
        Notification.objects.for_org(membership.organization)
        .filter(user=membership.user, read_at__isnull=True)
        .update(read_at=timezone.now())
    )
