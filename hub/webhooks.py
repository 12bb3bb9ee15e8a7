"""Outbound webhooks: which URLs may receive them, how deliveries are signed, and delivery attempts.

Signing: each attempt sends ``X-Hub-Timestamp`` (Unix seconds) and
``X-Hub-Signature: sha256=<hex>``, the HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with the
webhook's secret, over the exact body bytes. Receivers recompute it, compare in constant time and
reject old timestamps (replays).

Attempts follow the fabric workflow rules: ``delivery_attempt`` (the task's body) locks the row,
skips deliveries already finished or leased to another worker, claims the attempt, posts outside
any transaction and records the outcome. A non-2xx answer or a network error is retried with
exponential backoff until ``WEBHOOK_MAX_ATTEMPTS``; a refused destination fails at once. The
sweeper re-enqueues pending deliveries whose message was lost.

SSRF guard: outside production any http(s) URL is accepted (local receivers for development and
tests). In production only https URLs are accepted, IP literals and host names that are private,
loopback or link-local are refused at registration, and every connection is checked again against
the address it actually reached (so a public name resolving to an internal address is refused too).
Redirects are never followed and proxy settings from the environment are ignored.
"""

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hub.choices import DeliveryStatus
from hub.models import Webhook, WebhookDelivery

USER_AGENT = "InterconnectHub-Webhooks/1.0"
EXCERPT_CHARS = 1000
# A claimed attempt holds the delivery this long past the HTTP timeout before others may take it.
LEASE_MARGIN_SECONDS = 60
# Workers' clocks differ a little; a retry arriving this early still runs.
CLOCK_SLACK = timedelta(seconds=2)


class DestinationRefused(OSError):
    """The endpoint resolved to an address webhooks may not reach (production SSRF guard)."""


# --- Which URLs may receive webhooks -----------------------------------------------------------
def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_public(address: str) -> bool:
    ip = _ip_literal(address.split("%", 1)[0])
    return ip is not None and ip.is_global and not ip.is_multicast


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot receive webhooks, or None when it can."""
    if not url:
        return "Enter the URL of your endpoint."
    if len(url) > 500:
        return "The URL is too long (at most 500 characters)."
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "The URL may not contain spaces or control characters."
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "Use an https:// URL." if settings.PRODUCTION else "Use an http:// or https:// URL."
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        return "The URL's port is not valid."
    if not host:
        return "The URL needs a host name."
    if settings.PRODUCTION:
        if parts.scheme != "https":
            return "Use an https:// URL: webhooks carry your organization's data."
        if host == "localhost" or host.endswith((".localhost", ".localdomain")):
            return "Local host names cannot receive webhooks."
        ip = _ip_literal(host)
        if ip is not None and not _is_public(str(ip)):
            return "Private, loopback and link-local addresses cannot receive webhooks."
    return None


# --- Signing -----------------------------------------------------------------------------------
def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of ``"{timestamp}.{body}"``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def encode_body(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# --- Sending -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    status_code: int | None = None
    error: str = ""
    excerpt: str = ""
    permanent: bool = False


def _connect_public_only(address, *args, **kwargs) -> socket.socket:
    sock = socket.create_connection(address, *args, **kwargs)
    peer = sock.getpeername()[0]
    if not _is_public(peer):
        sock.close()
        raise DestinationRefused(f"{address[0]} resolves to {peer}, a private or local address; not delivered.")
    return sock


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_public_only


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_public_only


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_GuardedHTTPConnection, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_GuardedHTTPSConnection, req, context=self._context)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a 3xx then surfaces as an HTTPError: recorded, retried, never followed


def _opener() -> urllib.request.OpenerDirector:
    handlers = [urllib.request.ProxyHandler({}), _NoRedirects()]
    if settings.PRODUCTION:
        handlers += [_GuardedHTTPHandler(), _GuardedHTTPSHandler()]
    return urllib.request.build_opener(*handlers)


def _excerpt(response) -> str:
    try:
        return response.read(EXCERPT_CHARS).decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    except (OSError, http.client.HTTPException):
        return ""


def post_event(*, url: str, secret: str, event_type: str, delivery_id: str, payload: dict) -> Outcome:
    """POST one signed event. Any 2xx answer is a success; nothing here raises."""
    body = encode_body(payload)
    timestamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310 - the scheme was checked by url_problem()
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Hub-Event": event_type,
            "X-Hub-Delivery": delivery_id,
            "X-Hub-Timestamp": str(timestamp),
            "X-Hub-Signature": signature(secret, timestamp, body),
        },
    )
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    try:
        with _opener().open(request, timeout=timeout) as response:
            return Outcome(True, response.status, "", _excerpt(response))
    except urllib.error.HTTPError as exc:
        with exc:
            excerpt = _excerpt(exc)
        if 300 <= exc.code < 400:
            error = f"The endpoint answered HTTP {exc.code} (a redirect); redirects are not followed."
        else:
            error = f"The endpoint answered HTTP {exc.code}."
        return Outcome(False, exc.code, error, excerpt)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, DestinationRefused):
            return Outcome(False, error=str(exc.reason), permanent=True)
        if isinstance(exc.reason, TimeoutError):
            return Outcome(False, error=f"No answer within {timeout:g} s.")
        return Outcome(False, error=f"Could not connect: {exc.reason}.")
    except TimeoutError:
        return Outcome(False, error=f"No answer within {timeout:g} s.")
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(False, error=f"The connection failed ({exc.__class__.__name__}: {exc}).")


# --- Attempts ----------------------------------------------------------------------------------
def backoff_seconds(attempts: int) -> float:
    """Wait before the attempt after ``attempts`` failed ones: 10 s, 20 s, 40 s ... (capped)."""
    delay = settings.WEBHOOK_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return min(delay, settings.WEBHOOK_BACKOFF_MAX_SECONDS)


def _lock(delivery_id: int) -> WebhookDelivery | None:
    return (
        WebhookDelivery.objects.select_for_update(of=("self",)).select_related("webhook").filter(pk=delivery_id).first()
    )


def _refusal(webhook: Webhook) -> str | None:
    if not webhook.is_active:
        return "Not delivered: the webhook is disabled."
    problem = url_problem(webhook.url)
    return f"Not delivered: {problem}" if problem else None


def _fail(delivery: WebhookDelivery, error: str) -> None:
    delivery.status, delivery.next_attempt_at, delivery.last_error = DeliveryStatus.FAILED, None, error[:500]
    delivery.save(update_fields=["status", "next_attempt_at", "last_error", "updated_at"])


@dataclass(frozen=True)
class Retry:
    after_attempt: int
    countdown: float


def delivery_attempt(delivery_id: int, *, after_attempt: int | None = None) -> Retry | None:
    """Make the next attempt of a pending delivery. Returns when to retry if this attempt failed
    and another is due, else None.

    Safe to run twice. A delivery that is finished, or whose next attempt is not yet due (a retry
    is scheduled, or another worker holds the attempt), is left alone; only the scheduled retry
    itself (``after_attempt`` equal to the attempts made) may run early.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = _lock(delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return None
        scheduled = after_attempt is not None and delivery.attempts == after_attempt
        if not scheduled and delivery.next_attempt_at and delivery.next_attempt_at > now + CLOCK_SLACK:
            return None
        refusal = _refusal(delivery.webhook)
        if refusal is None and delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            refusal = f"Gave up after {delivery.attempts} attempts. {delivery.last_error}".strip()
        if refusal is not None:
            _fail(delivery, refusal)
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS)
        delivery.save(update_fields=["attempts", "next_attempt_at", "updated_at"])
        attempt, webhook = delivery.attempts, delivery.webhook

    outcome = post_event(
        url=webhook.url,
        secret=webhook.secret,
        event_type=delivery.event_type,
        delivery_id=str(delivery.public_id),
        payload=delivery.payload,
    )

    with transaction.atomic():
        delivery = _lock(delivery_id)
        if delivery is None or delivery.status != DeliveryStatus.PENDING or delivery.attempts != attempt:
            return None  # deleted or taken over meanwhile; that run records its own outcome
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error[:500]
        delivery.response_excerpt = outcome.excerpt
        retry = None
        if outcome.succeeded:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
                DeliveryStatus.SUCCEEDED,
                timezone.now(),
                None,
            )
        elif outcome.permanent or attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            if not outcome.permanent:
                delivery.last_error = f"Gave up after {attempt} attempts. {outcome.error}"[:500]
        else:
            retry = Retry(after_attempt=attempt, countdown=backoff_seconds(attempt))
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=retry.countdown)
        delivery.save(
            update_fields=[
                "status",
                "next_attempt_at",
                "delivered_at",
                "last_status_code",
                "last_error",
                "response_excerpt",
                "updated_at",
            ]
        )
        return retry


def stalled_delivery_ids(limit: int = 500) -> list[int]:
    """Pending deliveries whose next attempt was due ``WEBHOOK_STALL_SECONDS`` ago and never ran."""
    cutoff = timezone.now() - timedelta(seconds=settings.WEBHOOK_STALL_SECONDS)
    return list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)
        .filter(Q(next_attempt_at__lt=cutoff) | Q(next_attempt_at__isnull=True, created_at__lt=cutoff))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
