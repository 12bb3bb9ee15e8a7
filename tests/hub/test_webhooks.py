"""Webhooks: registration rules, signed delivery to a real local HTTP server, retries, redelivery,
the test event, the SSRF guard, the portal pages and the API."""

import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from hub import events
from hub.choices import DeliveryStatus, Role
from hub.errors import Conflict, DomainError, PermissionDenied
from hub.events import publish, register_event_type
from hub.models import AuditEvent, Notification, Webhook, WebhookDelivery
from hub.services import (
    webhook_create,
    webhook_delete,
    webhook_redeliver,
    webhook_rotate_secret,
    webhook_send_test,
    webhook_update,
)
from hub.tasks import webhook_deliver, webhook_purge_deliveries, webhook_sweep
from tests.api import test_isolation as isolation
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db


# --- A real HTTP receiver ----------------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then `default_status`
    default_status: int = 200
    delay: float = 0.0
    location: str = ""


@pytest.fixture
def receiver():
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if rec.delay:
                time.sleep(rec.delay)
            status = rec.statuses.pop(0) if rec.statuses else rec.default_status
            answer = f"answered {status}".encode()
            self.send_response(status)
            if rec.location:
                self.send_header("Location", rec.location)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield rec
    server.shutdown()
    server.server_close()


def _verify(secret: str, received: Received) -> bool:
    """What a receiver does: recompute the HMAC over "{timestamp}.{raw body}" and compare."""
    timestamp = received.headers["x-hub-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", received.headers["x-hub-signature"])


def _hook(membership, url, event_types=("port.state_changed",), **kwargs):
    return webhook_create(membership=membership, url=url, event_types=list(event_types), **kwargs)


def _publish(org, event_type="port.state_changed", **payload):
    publish(org=org, event_type=event_type, payload=payload or {"state": "ACTIVE"}, title="Port is active")


# --- Delivery ----------------------------------------------------------------------------------
def test_delivery_reaches_a_real_server_signed_so_the_receiver_can_verify_it(
    owner, receiver, django_capture_on_commit_callbacks
):
    webhook, secret = _hook(owner, receiver.url)
    assert secret.startswith("whsec_")
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization, port="p-1", state="ACTIVE", at=timezone.now())

    [got] = receiver.requests
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    assert got.path == "/hook"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-hub-event"] == "port.state_changed"
    assert got.headers["x-hub-delivery"] == str(delivery.public_id)
    assert abs(int(got.headers["x-hub-timestamp"]) - time.time()) < 30
    assert _verify(secret, got)
    assert not _verify("whsec_wrong", got)
    tampered = Received(got.path, got.headers, got.body.replace(b"ACTIVE", b"FAILED"))
    assert not _verify(secret, tampered)

    body = got.json()
    assert set(body) == {"id", "type", "created_at", "organization", "data"}
    assert body["type"] == "port.state_changed"
    assert body["organization"] == owner.organization.slug
    assert body["id"] == str(delivery.event_id)
    assert body["data"]["port"] == "p-1"
    assert body["data"]["state"] == "ACTIVE"
    assert isinstance(body["data"]["at"], str)  # datetimes arrive as ISO strings

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 200, "")
    assert delivery.response_excerpt == "answered 200"
    assert delivery.delivered_at is not None


def test_nothing_is_sent_before_commit_or_after_a_rollback(owner, receiver, django_capture_on_commit_callbacks):
    _hook(owner, receiver.url)
    with django_capture_on_commit_callbacks() as callbacks:
        _publish(owner.organization)
        assert receiver.requests == []  # publish does no network I/O inline
    assert len(callbacks) == 1

    def failing_service():
        with transaction.atomic():
            _publish(owner.organization)
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        failing_service()
    assert WebhookDelivery.objects.count() == 1  # only the first, never enqueued
    assert receiver.requests == []


def test_only_the_orgs_active_subscribed_webhooks_get_an_event(
    owner, member_factory, other_org, receiver, django_capture_on_commit_callbacks
):
    subscribed, _ = _hook(owner, receiver.url + "/subscribed")
    _hook(owner, receiver.url + "/other-type", event_types=["connection.state_changed"])
    _hook(owner, receiver.url + "/disabled", is_active=False)
    other_owner = member_factory(Role.OWNER, organization=other_org)
    _hook(other_owner, receiver.url + "/other-org")

    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)

    assert [r.path for r in receiver.requests] == ["/hook/subscribed"]
    assert list(WebhookDelivery.objects.values_list("webhook", flat=True)) == [subscribed.pk]


def test_a_failing_endpoint_is_retried_until_it_answers(owner, receiver, django_capture_on_commit_callbacks):
    webhook, secret = _hook(owner, receiver.url)
    receiver.statuses = [500, 503]
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)

    delivery = WebhookDelivery.objects.get(webhook=webhook)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 3
    assert len(receiver.requests) == 3
    # Every attempt is the same event and delivery, freshly signed.
    assert {r.headers["x-hub-delivery"] for r in receiver.requests} == {str(delivery.public_id)}
    assert {r.json()["id"] for r in receiver.requests} == {str(delivery.event_id)}
    assert all(_verify(secret, r) for r in receiver.requests)


def test_retries_back_off_exponentially_and_duplicates_send_nothing(
    owner, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_BACKOFF_BASE_SECONDS = 10
    webhook, _ = _hook(owner, receiver.url)
    receiver.default_status = 500
    with django_capture_on_commit_callbacks(execute=False):
        _publish(owner.organization)
    delivery = WebhookDelivery.objects.get(webhook=webhook)

    countdowns = []
    with mock.patch.object(webhook_deliver, "apply_async") as scheduled:
        for attempt in range(1, 4):
            webhook_deliver(delivery.pk, after_attempt=attempt - 1 if attempt > 1 else None)
            args, kwargs = scheduled.call_args
            assert args[1] == {"after_attempt": attempt}
            countdowns.append(kwargs["countdown"])
            # A duplicate message (a sweeper's, a redelivered one) finds the retry scheduled and sends nothing.
            webhook_deliver(delivery.pk)
            assert len(receiver.requests) == attempt

    assert countdowns == [10, 20, 40]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 3
    assert timezone.now() + timedelta(seconds=30) < delivery.next_attempt_at < timezone.now() + timedelta(seconds=41)
    assert delivery.last_status_code == 500
    assert delivery.last_error == "The endpoint answered HTTP 500."


def test_after_the_last_attempt_the_delivery_fails_with_a_reason(
    owner, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    webhook, _ = _hook(owner, receiver.url)
    receiver.default_status = 500
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)

    delivery = WebhookDelivery.objects.get(webhook=webhook)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == 3
    assert delivery.last_status_code == 500
    assert delivery.last_error == "Gave up after 3 attempts. The endpoint answered HTTP 500."
    assert delivery.next_attempt_at is None
    assert len(receiver.requests) == 3
    webhook_deliver(delivery.pk)  # a late duplicate changes nothing
    assert len(receiver.requests) == 3


def test_unreachable_slow_and_redirecting_endpoints_are_recorded(
    owner, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    closed, _ = _hook(owner, f"http://127.0.0.1:{closed_port}/nobody-listens")
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    failed = WebhookDelivery.objects.get(webhook=closed)
    assert failed.status == DeliveryStatus.FAILED
    assert "Could not connect" in failed.last_error
    assert failed.last_status_code is None
    webhook_delete(membership=owner, webhook=closed)

    slow, _ = _hook(owner, receiver.url)
    receiver.delay = 1.0
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    assert "No answer within 0.3 s." in WebhookDelivery.objects.get(webhook=slow).last_error
    webhook_delete(membership=owner, webhook=slow)

    receiver.delay, receiver.default_status, receiver.location = 0, 302, "http://127.0.0.1:1/elsewhere"
    redirecting, _ = _hook(owner, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    delivery = WebhookDelivery.objects.get(webhook=redirecting)
    assert delivery.last_status_code == 302
    assert "redirects are not followed" in delivery.last_error


def test_a_failed_delivery_can_be_redelivered(owner, receiver, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    webhook, secret = _hook(owner, receiver.url)
    receiver.default_status = 500
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    assert delivery.status == DeliveryStatus.FAILED

    receiver.default_status = 204
    with django_capture_on_commit_callbacks(execute=True):
        webhook_redeliver(membership=owner, delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 204, "")
    last = receiver.requests[-1]
    assert last.json()["id"] == str(delivery.event_id)
    assert last.headers["x-hub-delivery"] == str(delivery.public_id)
    assert _verify(secret, last)
    assert AuditEvent.objects.filter(action="webhook.redeliver", object_id=str(delivery.public_id)).exists()

    with pytest.raises(Conflict, match="Only failed deliveries"):
        webhook_redeliver(membership=owner, delivery=delivery)


def test_redeliver_button_in_the_delivery_log(owner, receiver, settings, logged_in, django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    webhook, _ = _hook(owner, receiver.url, description="Ops receiver")
    receiver.default_status = 500
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    client = logged_in(owner)

    page = client.get(reverse("webhooks:detail", args=[webhook.public_id])).content.decode()
    redeliver_url = reverse("webhooks:redeliver", args=[webhook.public_id, delivery.public_id])
    assert redeliver_url in page
    assert "The endpoint answered HTTP 500." in page
    assert "answered 500" in page  # the response excerpt

    receiver.default_status = 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(redeliver_url)
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    page = client.get(reverse("webhooks:detail", args=[webhook.public_id])).content.decode()
    assert redeliver_url not in page
    assert "succeeded" in page


def test_the_sweeper_resends_deliveries_whose_message_was_lost(
    owner, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_STALL_SECONDS = 300
    webhook, _ = _hook(owner, receiver.url)
    with django_capture_on_commit_callbacks(execute=False):  # the broker lost the message
        _publish(owner.organization)
        _publish(owner.organization)
    lost, recent = WebhookDelivery.objects.filter(webhook=webhook).order_by("pk")
    WebhookDelivery.objects.filter(pk=lost.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=10))

    assert webhook_sweep() == 1
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.status == DeliveryStatus.SUCCEEDED
    assert recent.status == DeliveryStatus.PENDING  # not stalled yet: its message may still arrive
    assert len(receiver.requests) == 1
    assert webhook_sweep() == 0  # safe to run twice


def test_a_disabled_webhook_gets_no_new_events_and_queued_ones_stop(
    owner, receiver, django_capture_on_commit_callbacks
):
    webhook, _ = _hook(owner, receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        _publish(owner.organization)
    webhook_update(membership=owner, webhook=webhook, is_active=False)
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    webhook_deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == "Not delivered: the webhook is disabled."
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    assert WebhookDelivery.objects.filter(webhook=webhook).count() == 1
    assert receiver.requests == []
    with pytest.raises(Conflict, match="disabled"):
        webhook_redeliver(membership=owner, delivery=delivery)


def test_old_finished_deliveries_are_purged(owner, receiver, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    _hook(owner, receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    with django_capture_on_commit_callbacks(execute=False):
        _publish(owner.organization)
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(days=31))
    assert webhook_purge_deliveries() == 1
    assert list(WebhookDelivery.objects.values_list("status", flat=True)) == [DeliveryStatus.PENDING]


# --- Registration rules ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the URL"),
        ("ftp://example.com/hook", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://", "needs a host"),
        ("http://example.com:99999/", "port is not valid"),
        ("http://exa mple.com/", "spaces"),
        ("https://example.com/" + "a" * 500, "too long"),
    ],
)
def test_bad_urls_are_refused(owner, url, message):
    with pytest.raises(DomainError, match=message) as refused:
        _hook(owner, url)
    assert refused.value.field == "url"
    assert not Webhook.objects.exists()


def test_development_accepts_local_http_receivers(owner, settings):
    settings.PRODUCTION = False
    webhook, _ = _hook(owner, "http://127.0.0.1:8001/hook")
    assert webhook.url == "http://127.0.0.1:8001/hook"


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/plain-http",
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://172.16.5.4/hook",
        "https://100.64.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
    ],
)
def test_production_requires_https_and_refuses_private_and_local_addresses(owner, settings, url):
    settings.PRODUCTION = True
    with pytest.raises(DomainError) as refused:
        _hook(owner, url)
    assert refused.value.field == "url"


def test_production_accepts_public_https_endpoints(owner, settings):
    settings.PRODUCTION = True
    webhook, _ = _hook(owner, "https://hooks.example.com/interconnect")
    assert webhook.is_active


@pytest.fixture
def resolve_to_loopback(monkeypatch):
    """DNS for ``hooks.rebind.test`` answers 127.0.0.1, like a public name pointing inside."""
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        return real("127.0.0.1" if host == "hooks.rebind.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_production_never_connects_to_a_name_that_resolves_inside(
    owner, receiver, settings, resolve_to_loopback, django_capture_on_commit_callbacks
):
    port = receiver.url.split(":")[2].split("/")[0]
    # Outside production the name reaches the local receiver: the resolver stub works.
    dev_hook, _ = _hook(owner, f"http://hooks.rebind.test:{port}/dev")
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    assert [r.path for r in receiver.requests] == ["/dev"]
    webhook_delete(membership=owner, webhook=dev_hook)

    settings.PRODUCTION = True
    prod_hook, _ = _hook(owner, f"https://hooks.rebind.test:{port}/prod")  # a name passes registration
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    delivery = WebhookDelivery.objects.get(webhook=prod_hook)
    assert delivery.status == DeliveryStatus.FAILED  # refused at once, not retried
    assert delivery.attempts == 1
    assert "resolves to 127.0.0.1, a private or local address" in delivery.last_error
    assert [r.path for r in receiver.requests] == ["/dev"]


def test_production_refuses_to_deliver_to_a_url_that_became_invalid(
    owner, receiver, settings, django_capture_on_commit_callbacks
):
    webhook, _ = _hook(owner, receiver.url)  # registered in development mode
    settings.PRODUCTION = True
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == 0
    assert delivery.last_error.startswith("Not delivered: Use an https:// URL")
    assert receiver.requests == []


def test_event_types_must_be_registered_and_subscribable(owner):
    for event_types, message in [
        (["connection.state_changed", "nope.never"], "Unknown event type"),
        (["webhook.test"], "Unknown event type"),
        ([], "at least one"),
    ]:
        with pytest.raises(DomainError, match=message) as refused:
            _hook(owner, "http://127.0.0.1:9/x", event_types=event_types)
        assert refused.value.field == "event_types"


def test_higher_apps_register_event_types(owner, monkeypatch, receiver, django_capture_on_commit_callbacks):
    monkeypatch.setattr(events, "EVENT_TYPES", dict(events.EVENT_TYPES))
    with pytest.raises(ValueError, match="Event type names"):
        register_event_type("Alert Opened", "bad name")
    with pytest.raises(ValueError, match="Unknown event type"):
        _publish(owner.organization, event_type="alert.opened")

    register_event_type("alert.opened", "A security alert was opened.")
    _hook(owner, receiver.url, event_types=["alert.opened"])
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization, event_type="alert.opened", severity="HIGH")
    assert receiver.requests[0].headers["x-hub-event"] == "alert.opened"
    assert receiver.requests[0].json()["data"] == {"severity": "HIGH"}


def test_only_owners_and_admins_manage_webhooks(owner, member_factory):
    webhook, _ = _hook(owner, "http://127.0.0.1:9/x")
    admin = member_factory(Role.ADMIN)
    webhook_update(membership=admin, webhook=webhook, description="by the admin")
    for role in (Role.NETWORK_ENGINEER, Role.SECURITY_ANALYST, Role.VIEWER):
        member = member_factory(role)
        with pytest.raises(PermissionDenied):
            _hook(member, "http://127.0.0.1:9/y")
        with pytest.raises(PermissionDenied):
            webhook_rotate_secret(membership=member, webhook=webhook)
        with pytest.raises(PermissionDenied):
            webhook_send_test(membership=member, webhook=webhook)


def test_every_change_is_audited_without_the_secret(owner, django_capture_on_commit_callbacks):
    webhook, secret = _hook(owner, "http://127.0.0.1:9/x", description="CI")
    webhook_update(membership=owner, webhook=webhook, event_types=["connection.state_changed"], description="CI")
    _, new_secret = webhook_rotate_secret(membership=owner, webhook=webhook)
    with django_capture_on_commit_callbacks(execute=False):
        webhook_send_test(membership=owner, webhook=webhook)
    webhook_delete(membership=owner, webhook=webhook)

    audit = AuditEvent.objects.filter(object_id=str(webhook.public_id)).order_by("created_at", "id")
    assert [e.action for e in audit] == [
        "webhook.create",
        "webhook.update",
        "webhook.rotate_secret",
        "webhook.test",
        "webhook.delete",
    ]
    update = audit[1]
    assert update.before == {"event_types": ["port.state_changed"]}
    assert update.after == {"event_types": ["connection.state_changed"]}
    dumped = json.dumps([[e.before, e.after, e.object_repr] for e in AuditEvent.objects.all()])
    assert secret not in dumped
    assert new_secret not in dumped
    assert not Webhook.objects.exists()
    assert not WebhookDelivery.objects.exists()


# --- The test event ----------------------------------------------------------------------------
def test_send_test_event_button_reaches_that_webhook_only(
    owner, receiver, logged_in, django_capture_on_commit_callbacks
):
    webhook, secret = _hook(owner, receiver.url + "/tested")
    _hook(owner, receiver.url + "/bystander")
    client = logged_in(owner)
    page = client.get(reverse("webhooks:detail", args=[webhook.public_id])).content.decode()
    assert "Send test event" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("webhooks:test", args=[webhook.public_id]))
    assert response.status_code == 302
    [got] = receiver.requests
    assert got.path == "/hook/tested"
    assert got.headers["x-hub-event"] == "webhook.test"
    assert got.json()["data"]["webhook"] == str(webhook.public_id)
    assert _verify(secret, got)
    assert not Notification.objects.exists()  # a test pings the endpoint, not the members
    page = client.get(reverse("webhooks:detail", args=[webhook.public_id])).content.decode()
    assert "webhook.test" in page

    webhook_update(membership=owner, webhook=webhook, is_active=False)
    response = client.post(reverse("webhooks:test", args=[webhook.public_id]), follow=True)
    assert "Enable it to send a test event" in response.content.decode()
    assert WebhookDelivery.objects.filter(webhook=webhook).count() == 1


# --- Portal ------------------------------------------------------------------------------------
def test_portal_create_shows_the_secret_once_then_never(owner, logged_in):
    client = logged_in(owner)
    assert "Webhooks" in client.get(reverse("settings")).content.decode()
    response = client.post(
        reverse("webhooks:list"),
        {
            "url": "http://127.0.0.1:9/portal",
            "description": "Portal hook",
            "event_types": ["connection.state_changed", "port.state_changed"],
            "is_active": "on",
        },
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    webhook = Webhook.objects.get()
    assert webhook.secret in response.content.decode()
    assert webhook.event_types == ["connection.state_changed", "port.state_changed"]
    assert webhook.created_by == owner.user

    for url in (reverse("webhooks:list"), reverse("webhooks:detail", args=[webhook.public_id])):
        page = client.get(url).content.decode()
        assert "Portal hook" in page
        assert webhook.secret not in page

    response = client.post(reverse("webhooks:rotate-secret", args=[webhook.public_id]))
    old = webhook.secret
    webhook.refresh_from_db()
    assert webhook.secret != old
    assert webhook.secret in response.content.decode()
    assert response["Cache-Control"] == "no-store"


def test_portal_form_errors_and_edit_and_delete(owner, logged_in):
    client = logged_in(owner)
    response = client.post(reverse("webhooks:list"), {"url": "ftp://x", "event_types": ["port.state_changed"]})
    assert response.status_code == 400
    assert "Use an http:// or https:// URL." in response.content.decode()
    assert not Webhook.objects.exists()

    webhook, secret = _hook(owner, "http://127.0.0.1:9/x")
    detail = reverse("webhooks:detail", args=[webhook.public_id])
    response = client.post(
        detail, {"url": "http://127.0.0.1:9/y", "event_types": ["connection.state_changed"], "description": "Edited"}
    )
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert (webhook.url, webhook.event_types, webhook.is_active) == (
        "http://127.0.0.1:9/y",
        ["connection.state_changed"],
        False,  # the unchecked box
    )
    assert webhook.secret == secret
    page = client.get(detail).content.decode()
    assert "connection.state_changed" in page
    assert "A connection moved to another state" in page  # the subscribed event's description

    response = client.post(detail, {"url": "http://127.0.0.1:9/y", "event_types": ["nope.never"]})
    assert response.status_code == 400

    assert client.post(reverse("webhooks:delete", args=[webhook.public_id])).status_code == 302
    assert not Webhook.objects.exists()


def test_webhook_pages_are_for_owners_and_admins(owner, member_factory, logged_in):
    engineer = member_factory(Role.NETWORK_ENGINEER)
    client = logged_in(engineer)
    assert client.get(reverse("webhooks:list")).status_code == 403
    assert "Webhooks" not in client.get(reverse("settings")).content.decode()


def test_delivery_log_polls_while_deliveries_are_pending(owner, logged_in, django_capture_on_commit_callbacks):
    webhook, _ = _hook(owner, "http://127.0.0.1:9/x")
    client = logged_in(owner)
    detail = reverse("webhooks:detail", args=[webhook.public_id])
    assert "hx-trigger" not in client.get(detail, headers={"HX-Request": "true"}).content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        _publish(owner.organization)
    fragment = client.get(detail, headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<section id="delivery-log"')
    assert 'hx-trigger="every 3s"' in fragment
    assert "pending" in fragment


# --- API ---------------------------------------------------------------------------------------
def test_api_create_returns_the_secret_once(owner, token_client):
    api = token_client(owner)
    body = {"url": "http://127.0.0.1:9/api", "event_types": ["port.state_changed"], "description": "API hook"}
    response = api.post("/api/v1/webhooks/", body, format="json", headers={"Idempotency-Key": "hook-1"})
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert created["is_active"] is True
    assert created["created_by"] == owner.user.email
    replay = api.post("/api/v1/webhooks/", body, format="json", headers={"Idempotency-Key": "hook-1"})
    assert replay.json()["id"] == created["id"]
    assert Webhook.objects.count() == 1

    detail = api.get(f"/api/v1/webhooks/{created['id']}/")
    assert detail.status_code == 200
    assert "secret" not in detail.json()
    assert created["secret"] not in api.get("/api/v1/webhooks/").content.decode()

    rotated = api.post(f"/api/v1/webhooks/{created['id']}/rotate-secret/")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] not in (created["secret"], "")
    assert Webhook.objects.get().secret == rotated.json()["secret"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"url": "ftp://x", "event_types": ["port.state_changed"]}, "url", "http://"),
        ({"url": "http://127.0.0.1:9/x", "event_types": ["nope.never"]}, "event_types", "Unknown event type"),
        ({"url": "http://127.0.0.1:9/x", "event_types": []}, "event_types", "at least one"),
        ({"url": "http://127.0.0.1:9/x"}, "event_types", "required"),
        ({"event_types": ["port.state_changed"]}, "url", "required"),
        ({"url": "http://127.0.0.1:9/x", "event_types": "port.state_changed"}, "event_types", "list"),
    ],
)
def test_api_bad_input_names_the_field(owner, token_client, body, field, message):
    response = token_client(owner).post("/api/v1/webhooks/", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in " ".join(error["fields"][field])
    assert not Webhook.objects.exists()


def test_api_update_test_deliveries_and_delete(owner, token_client, receiver, django_capture_on_commit_callbacks):
    api = token_client(owner)
    webhook, _ = _hook(owner, receiver.url)
    url = f"/api/v1/webhooks/{webhook.public_id}/"

    response = api.patch(url, {"event_types": ["connection.state_changed"], "description": "Ops"}, format="json")
    assert response.status_code == 200
    assert response.json()["event_types"] == ["connection.state_changed"]
    bad = api.patch(url, {"url": "gopher://x"}, format="json")
    assert bad.status_code == 400
    assert "url" in bad.json()["error"]["fields"]

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url + "test/")
    assert response.status_code == 202
    assert response.json()["event_type"] == "webhook.test"
    assert len(receiver.requests) == 1

    log = api.get(url + "deliveries/").json()
    assert log["count"] == 1
    [entry] = log["results"]
    assert entry["status"] == "SUCCEEDED"
    assert entry["last_status_code"] == 200
    assert entry["payload"]["type"] == "webhook.test"
    assert api.get(url + "deliveries/?status=FAILED").json()["count"] == 0
    bad = api.get(url + "deliveries/?status=LOST")
    assert bad.status_code == 400
    assert "status" in bad.json()["error"]["fields"]

    conflict = api.post(url + f"deliveries/{entry['id']}/redeliver/")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "delivery_not_failed"

    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_api_redeliver(owner, token_client, receiver, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    webhook, _ = _hook(owner, receiver.url)
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        _publish(owner.organization)
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(owner).post(
            f"/api/v1/webhooks/{webhook.public_id}/deliveries/{delivery.public_id}/redeliver/"
        )
    assert response.status_code == 202
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED


def test_api_lists_event_types(owner, token_client):
    names = [row["name"] for row in token_client(owner).get("/api/v1/webhooks/event-types/").json()]
    assert {"connection.state_changed", "port.state_changed"} <= set(names)
    assert "webhook.test" not in names


def test_read_only_tokens_cannot_change_webhooks(owner, token_client):
    webhook, _ = _hook(owner, "http://127.0.0.1:9/x")
    api = token_client(owner, scopes=("read",))
    assert api.get("/api/v1/webhooks/").status_code == 200
    assert api.post(f"/api/v1/webhooks/{webhook.public_id}/rotate-secret/").status_code == 403


# --- Tenancy -----------------------------------------------------------------------------------
world = isolation.world  # the isolation matrix's two organizations, reused here
WEBHOOK_CASES = sorted(name for name in isolation.MATRIX if "webhook" in name or "notification" in name)


@pytest.mark.parametrize("name", WEBHOOK_CASES)
def test_another_organization_never_sees_or_touches_webhooks_deliveries_notifications(name, world, client):
    case = isolation.MATRIX[name]
    secret = world.webhook_a.secret
    if case.kind == isolation.API:
        api_or_portal = isolation._api_client(world.owner_b)
    else:
        api_or_portal = isolation._portal_client(client, world.owner_b)
    response = isolation._request(api_or_portal, case, world)
    body = response.content.decode(errors="replace")
    for leaked in (
        "alpha-secret-webhook",
        "127.0.0.1:9/alpha",
        "alpha-secret-notification",
        secret,
        str(world.delivery_a.event_id),
    ):
        assert leaked not in body
    world.webhook_a.refresh_from_db()
    world.delivery_a.refresh_from_db()
    world.notification_a.refresh_from_db()
    assert (world.webhook_a.secret, world.webhook_a.is_active) == (secret, True)
    assert world.webhook_a.url == "http://127.0.0.1:9/alpha"
    assert (world.delivery_a.status, world.delivery_a.attempts) == (DeliveryStatus.FAILED, 6)
    assert WebhookDelivery.objects.filter(webhook=world.webhook_a).count() == 1
    assert world.notification_a.read_at is None


# --- A real worker -----------------------------------------------------------------------------
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_after_commit(celery_worker, owner, receiver):
    webhook, secret = _hook(owner, receiver.url)
    with transaction.atomic():
        _publish(owner.organization)
        assert receiver.requests == []

    delivered = wait_for(
        lambda: WebhookDelivery.objects.filter(webhook=webhook, status=DeliveryStatus.SUCCEEDED).first()
    )
    assert delivered.attempts == 1
    assert _verify(secret, receiver.requests[0])
