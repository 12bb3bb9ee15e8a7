"""Receivers that turn what happens elsewhere into security work: new telemetry starts a network
analysis; account lockouts and uses of a revoked or expired API token become control-plane alerts.
(Policy denials are raised by the policy guard itself, ``services.policy_denial_record``.)"""

from axes.signals import user_locked_out
from django.conf import settings
from django.dispatch import receiver

from fabric.telemetry import samples_ingested
from hub.models import Membership, User
from hub.signals import api_token_misused
from security.choices import AlertCategory, AlertSource, Severity
from security.services import alert_raise
from security.tasks import network_analyse_batch


@receiver(samples_ingested, dispatch_uid="security.network_analyse")
def analyse_new_telemetry(sender, connection_ids=(), **kwargs):
    """Sent after the samples' transaction committed: one analysis task per ingest call."""
    if connection_ids:
        network_analyse_batch.delay(sorted(connection_ids))


@receiver(user_locked_out, dispatch_uid="security.lockout_alert")
def alert_on_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    """An account locked after repeated failed logins: an alert in each of the user's organizations
    (an unknown e-mail belongs to no organization and is only in the server log)."""
    user = User.objects.filter(email__iexact=username or "").first()
    if user is None:
        return
    for membership in Membership.objects.select_related("organization").filter(user=user):
        alert_raise(
            org=membership.organization,
            category=AlertCategory.LOGIN_LOCKOUT,
            severity=Severity.MEDIUM,
            source=AlertSource.CONTROL_PLANE,
            dedup_key=f"lockout:{user.public_id}",
            title=f"Account {user.email} locked after {settings.AXES_FAILURE_LIMIT} failed logins",
            evidence={
                "user": user.email,
                "ip_address": ip_address or "",
                "failures": settings.AXES_FAILURE_LIMIT,
                "cool_off_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
                "user_agent": (request.headers.get("User-Agent", "") if request is not None else "")[:200],
            },
        )


@receiver(api_token_misused, dispatch_uid="security.token_misuse_alert")
def alert_on_token_misuse(sender, token, reason, request=None, **kwargs):
    """Someone presented the real secret of a revoked (high) or expired (medium) token."""
    ip = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    alert_raise(
        org=token.organization,
        category=AlertCategory.TOKEN_MISUSE,
        severity=Severity.HIGH if reason == "revoked" else Severity.MEDIUM,
        source=AlertSource.CONTROL_PLANE,
        dedup_key=f"token_misuse:{token.public_id}",
        title=f"Use of the {reason} API token {token.name} ({token.prefix})",
        evidence={
            "token": token.name,
            "prefix": token.prefix,
            "reason": reason,
            "owner": token.user.email,
            "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            "ip_address": ip,
            "method": request.method if request is not None else "",
            "path": request.path[:200] if request is not None else "",
        },
    )
