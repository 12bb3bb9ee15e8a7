"""``Idempotency-Key`` for create endpoints.

The first request with a key records the key (in its own committed transaction, so a concurrent
request with the same key sees it at once), runs, and stores a successful response. A replay with
the same body gets that response again (with ``Idempotent-Replayed: true``); the same key with a
different body or endpoint is refused with 422; a replay while the first is still running gets 409.
Failed requests (4xx/5xx) store nothing, so the client may fix the body and retry with the key.
Keys are kept for ``IDEMPOTENCY_KEY_TTL`` (24 hours) and purged by a beat task.
"""

import hashlib
import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from hub.choices import IdempotencyState
from hub.errors import Conflict, DomainError
from hub.models import IdempotencyRecord

HEADER = "Idempotency-Key"


class IdempotencyKeyReused(DomainError):
    status_code = 422
    default_code = "idempotency_key_reused"


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, cls=JSONEncoder, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def run_idempotent(request, handler) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    key = key.strip()
    if not key or len(key) > 255 or not key.isprintable():
        raise DomainError(f"{HEADER} must be 1 to 255 printable characters.", code="invalid_idempotency_key")
    org, user = request._request.org, request.user
    fingerprint = _fingerprint(request)
    scope = IdempotencyRecord.objects.filter(organization=org, user=user, key=key)
    existing = scope.first()
    if existing is not None and existing.created_at < timezone.now() - settings.IDEMPOTENCY_KEY_TTL:
        existing.delete()  # an expired key starts afresh
        existing = None
    if existing is not None:
        return _replay(existing, fingerprint)
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                organization=org,
                user=user,
                key=key,
                method=request.method,
                path=request.path[:500],
                fingerprint=fingerprint,
            )
    except IntegrityError:  # a concurrent request with the same key got there first
        existing = scope.first()
        if existing is None:
            return run_idempotent(request, handler)
        return _replay(existing, fingerprint)

    try:
        response = handler()
    except BaseException:
        record.delete()
        raise
    if 200 <= response.status_code < 300:
        record.state = IdempotencyState.COMPLETED
        record.response_status = response.status_code
        record.response_body = json.loads(json.dumps(response.data, cls=JSONEncoder))
        record.save(update_fields=["state", "response_status", "response_body"])
    else:
        record.delete()
    return response


def _replay(existing: IdempotencyRecord, fingerprint: str) -> Response:
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"This {HEADER} was already used with a different request body or endpoint. Use a new key."
        )
    if existing.state == IdempotencyState.IN_PROGRESS:
        raise Conflict(
            f"A request with this {HEADER} is still being processed. Retry shortly.", code="idempotency_in_progress"
        )
    response = Response(existing.response_body, status=existing.response_status)
    response["Idempotent-Replayed"] = "true"
    return response
