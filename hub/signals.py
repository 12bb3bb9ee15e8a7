"""Account security events recorded in the audit log."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from hub.models import Membership, User
from hub.services import audit_record


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
