"""Thin tasks: fetch by id, do the work, safe to run twice (tasks are acked late)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from hub import webhooks
from hub.choices import DeliveryStatus
from hub.models import IdempotencyRecord, Invitation, Notification, WebhookDelivery


@shared_task(autoretry_for=(OSError,), retry_backoff=5, retry_backoff_max=600, max_retries=8)
def send_invitation_email(invitation_id: int) -> bool:
    """E-mail the accept link once; a redelivered task finds ``sent_at`` set and does nothing."""
    from hub.services import invitation_token

    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update(of=("self",))
            .select_related("organization", "invited_by")
            .filter(pk=invitation_id)
            .first()
        )
        if invitation is None or invitation.sent_at is not None or not invitation.is_open:
            return False
        link = settings.SITE_URL.rstrip("/") + reverse("invitation-accept", args=[invitation_token(invitation)])
        context = {"invitation": invitation, "link": link}
        send_mail(
            subject=f"You are invited to {invitation.organization.name} on Interconnect Hub",
            message=render_to_string("hub/email/invitation.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[invitation.email],
        )
        invitation.sent_at = timezone.now()
        invitation.save(update_fields=["sent_at", "updated_at"])
    return True


@shared_task
def send_unsent_invitations() -> int:
    """Enqueue the e-mail of open invitations whose first enqueue was lost (broker outage)."""
    cutoff = timezone.now() - timedelta(minutes=2)
    ids = list(
        Invitation.objects.filter(
            sent_at__isnull=True,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            created_at__lt=cutoff,
            expires_at__gt=timezone.now(),
        ).values_list("pk", flat=True)[:500]
    )
    for invitation_id in ids:
        send_invitation_email.delay(invitation_id)
    return len(ids)


@shared_task
def purge_expired_idempotency_keys() -> int:
    cutoff = timezone.now() - settings.IDEMPOTENCY_KEY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


@shared_task
def purge_expired_invitations() -> int:
    """Unanswered invitations are kept 30 days past expiry for the members page, then dropped."""
    cutoff = timezone.now() - timedelta(days=30)
    deleted, _ = Invitation.objects.filter(accepted_at__isnull=True, expires_at__lt=cutoff).delete()
    return deleted


@shared_task
def purge_old_notifications() -> int:
    """Notifications are kept ``NOTIFICATION_RETENTION_DAYS``, read or not."""
    cutoff = timezone.now() - timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
    deleted, _ = Notification.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# --- Webhooks (routed to the "webhooks" queue by name) ----------------------------------------
@shared_task
def webhook_deliver(delivery_id: int, after_attempt: int | None = None) -> None:
    """Attempt one webhook delivery; a failed attempt schedules the next one after a backoff."""
    retry = webhooks.delivery_attempt(delivery_id, after_attempt=after_attempt)
    if retry is not None:
        webhook_deliver.apply_async((delivery_id,), {"after_attempt": retry.after_attempt}, countdown=retry.countdown)


@shared_task
def webhook_sweep() -> int:
    """Re-enqueue pending deliveries whose message was lost (broker down, worker killed).
    Safe to run twice: an attempt already claimed or scheduled is skipped by the task."""
    ids = webhooks.stalled_delivery_ids()
    for delivery_id in ids:
        webhook_deliver.delay(delivery_id)
    return len(ids)


@shared_task
def webhook_purge_deliveries() -> int:
    """Finished deliveries are kept in the log ``WEBHOOK_DELIVERY_RETENTION_DAYS``."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    deleted, _ = WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(status=DeliveryStatus.PENDING).delete()
    return deleted
