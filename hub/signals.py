"""Account security events recorded in the audit log."""

import secrets

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in
from django.dispatch import Signal, receiver

from hub.models import APIToken, Membership, User
from hub.services import TOKEN_PREFIX, _hash_secret, audit_record

# Sent when a request presents the real secret of a revoked or expired API token (someone still
# holds it). Keyword arguments: ``token`` (the APIToken), ``reason`` ("revoked" or "expired") and
# ``request``. Higher apps (security) turn it into alerts; hub itself only sends it.
api_token_misused = Signal()


def announce_token_misuse(secret: str, request) -> None:
    """After a bearer token was refused: send ``api_token_misused`` if ``secret`` is a genuine
    token that was revoked or has expired (a wrong or malformed secret is no one's token)."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return
    token = APIToken.objects.select_related("user", "organization").filter(prefix=parts[1]).first()
    if token is None or not secrets.compare_digest(token.digest, _hash_secret(secret)):
        return
    reason = "revoked" if token.revoked_at is not None else "expired" if token.is_expired else None
    if reason:
        api_token_misused.send(sender=APIToken, token=token, reason=reason, request=request)


@receiver(user_locked_out)
def record_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    user = User.objects.filter(email__iexact=username or "").first()
    orgs = [m.organization for m in Membership.objects.select_related("organization").filter(user=user)] if user else []
    for org in orgs or [None]:
        audit_record(org=org, actor=user, action="auth.lockout", after={"username": username, "ip_address": ip_address})


@receiver(user_logged_in)
def record_login(sender, request=None, user=None, **kwargs):
    for membership in Membership.objects.select_related("organization").filter(user=user):
        audit_record(org=membership.organization, actor=user, action="auth.login")
