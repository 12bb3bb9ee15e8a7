"""Events: the registry of event types and ``publish``, the one way to announce that something happened.

A service calls ``publish`` inside its own transaction. It writes an in-app notification for the
organization's members and a pending delivery for each of the organization's active webhooks that
subscribed to the event type; the deliveries are enqueued when the transaction commits, so nothing
leaves the building for a change that was rolled back, and no network I/O happens inline.

Higher apps add their own event types with ``register_event_type`` (from ``AppConfig.ready``).
"""

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Case, IntegerField, Value, When
from django.utils import timezone

from hub.choices import DeliveryStatus
from hub.models import Membership, Notification, Organization, Webhook, WebhookDelivery
from hub.roles import ROLE_ORDER

TEST_EVENT = "webhook.test"

EVENT_TYPES: dict[str, str] = {}

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def register_event_type(name: str, description: str) -> None:
    """Make ``name`` (``noun.verb_phrase``, e.g. ``alert.opened``) publishable and subscribable."""
    if not _NAME.match(name) or len(name) > 64:
        raise ValueError(f"Event type names look like 'connection.state_changed', not {name!r}.")
    EVENT_TYPES[name] = description


register_event_type(
    "connection.state_changed",
    "A connection moved to another state (for example PROVISIONING to ACTIVE, or to FAILED).",
)
register_event_type("port.state_changed", "A port moved to another state (for example PROVISIONING to ACTIVE).")
register_event_type(TEST_EVENT, "Sent by 'Send test event' to one webhook, to check the endpoint.")


def subscribable_event_types() -> dict[str, str]:
    """Event types a webhook may subscribe to (the test event is only ever sent on request)."""
    return {name: text for name, text in sorted(EVENT_TYPES.items()) if name != TEST_EVENT}


def build_envelope(*, org: Organization, event_type: str, payload: dict) -> dict:
    """The JSON every receiver gets: ``{"id", "type", "created_at", "organization", "data"}``."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown event type {event_type!r}; register it with register_event_type().")
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "created_at": timezone.now().isoformat(),
        "organization": org.slug,
        # Normalised once here (UUIDs, datetimes, Decimals become strings) so callers may pass model values.
        "data": json.loads(json.dumps(payload, cls=DjangoJSONEncoder)),
    }


@dataclass(frozen=True)
class Event:
    """One event to publish: its type, payload and what people see in their notification list.

    ``notify=False`` skips the in-app notification (for steps nobody needs to hear about, such as
    a connection passing through APPROVED on its way to provisioning); webhooks still get the event.
    """

    event_type: str
    payload: dict
    title: str
    link: str = ""
    body: str = ""
    notify: bool = True


def publish(*, org: Organization, event_type: str, payload: dict, title: str, link: str = "", body: str = "") -> None:
    """Announce an event of ``org``: notify its members and queue a delivery to each subscribed webhook.

    Call it from a service, inside the service's transaction; deliveries start after commit.
    ``link`` is a path on this site (e.g. a connection's page) shown with the notification.
    """
    publish_many(org=org, events=[Event(event_type, payload, title, link, body)])


def publish_many(*, org: Organization, events: Sequence[Event]) -> None:
    """Announce several events of ``org`` in order, with one look-up of its members and webhooks."""
    envelopes = [build_envelope(org=org, event_type=e.event_type, payload=e.payload) for e in events]
    notified = [(event, envelope) for event, envelope in zip(events, envelopes, strict=True) if event.notify]
    # Part of the caller's transaction (no savepoint of its own): it fails or commits with it.
    with transaction.atomic(savepoint=False):
        if notified:
            _notify_members(org=org, notified=notified)
        webhooks = list(Webhook.objects.for_org(org).filter(is_active=True))
        for envelope in envelopes:
            subscribed = [hook for hook in webhooks if envelope["type"] in hook.event_types]
            queue_deliveries(webhooks=subscribed, envelope=envelope)


def queue_deliveries(*, webhooks: list[Webhook], envelope: dict) -> list[WebhookDelivery]:
    """Record a pending delivery of ``envelope`` to each webhook and enqueue it on commit."""
    from hub.tasks import webhook_deliver

    if not webhooks:
        return []
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            organization_id=hook.organization_id,
            webhook=hook,
            event_id=envelope["id"],
            event_type=envelope["type"],
            payload=envelope,
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
        )
        for hook in webhooks
    )
    for delivery in deliveries:
        # robust: a broker hiccup must not fail the caller's committed request; the sweeper re-sends.
        transaction.on_commit(partial(webhook_deliver.delay, delivery.pk), robust=True)
    return deliveries


def _notify_members(*, org: Organization, notified: list[tuple[Event, dict]]) -> None:
    # One row per member so each has their own read marker. Very large organizations are capped,
    # owners and admins first, so one event never writes an unbounded number of rows.
    by_role = Case(
        *(When(role=role, then=Value(rank)) for rank, role in enumerate(ROLE_ORDER)), output_field=IntegerField()
    )
    user_ids = list(
        Membership.objects.for_org(org)
        .filter(user__is_active=True)
        .annotate(rank=by_role)
        .order_by("rank", "pk")
        .values_list("user_id", flat=True)[: settings.NOTIFICATION_MAX_RECIPIENTS]
    )
    Notification.objects.bulk_create(
        Notification(
            organization=org,
            user_id=user_id,
            event_id=envelope["id"],
            event_type=envelope["type"],
            title=event.title[:200],
            body=event.body,
            link=_safe_link(event.link)[:500],
        )
        for event, envelope in notified
        for user_id in user_ids
    )


def _safe_link(link: str) -> str:
    return link if link.startswith("/") and not link.startswith("//") else ""
