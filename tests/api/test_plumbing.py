import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from hub.choices import IdempotencyState, Role
from hub.models import APIToken, IdempotencyRecord
from hub.services import api_token_create
from hub.tasks import purge_expired_idempotency_keys

pytestmark = pytest.mark.django_db

TOKEN_BODY = {"name": "deploy", "scopes": ["read"]}


def _error(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["status"] == status
    assert error["message"]
    assert error["request_id"] == response["X-Request-ID"]
    return error


def test_validation_errors_name_the_fields(owner, token_client):
    error = _error(token_client(owner).post("/api/v1/tokens/", {"scopes": "read"}, format="json"), 400)
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"name", "scopes"}


def test_malformed_json_is_a_400_not_a_500(owner, token_client):
    client = token_client(owner)
    response = client.generic("POST", "/api/v1/tokens/", "{not json", content_type="application/json")
    assert _error(response, 400)["code"] == "parse_error"


def test_unsupported_media_type_and_method(owner, token_client):
    client = token_client(owner)
    response = client.generic("POST", "/api/v1/tokens/", "name=x", content_type="application/x-www-form-urlencoded")
    assert _error(response, 415)["code"] == "unsupported_media_type"
    assert _error(client.put("/api/v1/tokens/", {}, format="json"), 405)["code"] == "method_not_allowed"


def test_unknown_endpoint_answers_in_the_envelope_and_hints_the_slash(owner, token_client):
    client = token_client(owner)
    assert _error(client.get("/api/v1/nope/"), 404)["code"] == "not_found"
    assert "trailing slash" in _error(client.get("/api/v1/me"), 404)["message"]


def test_server_errors_use_the_envelope_and_leak_nothing():
    client = APIClient(raise_request_exception=False)
    with mock.patch("hub.api.views.MeView.get", side_effect=RuntimeError("db password is hunter2")):
        from tests.factories import MembershipFactory

        membership = MembershipFactory()
        client.force_authenticate(membership.user)
        response = client.get("/api/v1/me/")
    error = _error(response, 500)
    assert error["code"] == "server_error"
    assert "hunter2" not in response.content.decode()


def test_request_id_is_kept_when_sane(owner, token_client):
    client = token_client(owner)
    assert client.get("/api/v1/me/", HTTP_X_REQUEST_ID="trace-42")["X-Request-ID"] == "trace-42"
    assert client.get("/api/v1/me/", HTTP_X_REQUEST_ID="bad id<script>")["X-Request-ID"] != "bad id<script>"


def test_throttling_per_token_answers_429_with_retry_after(owner, token_client, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "principal": "3/min"}
    with mock.patch("hub.api.throttling.PrincipalRateThrottle.THROTTLE_RATES", rates):
        first, second = token_client(owner), token_client(owner)
        for _ in range(3):
            assert first.get("/api/v1/me/").status_code == 200
        error = _error(first.get("/api/v1/me/"), 429)
        assert error["code"] == "throttled"
        assert int(first.get("/api/v1/me/")["Retry-After"]) > 0
        # Another token has a budget of its own.
        assert second.get("/api/v1/me/").status_code == 200


def test_the_budget_slides_across_windows(owner, token_client, settings):
    """3 a minute: a burst at the end of one minute still counts at the start of the next, and the
    budget comes back as the last minute slides out of view."""
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "principal": "3/min"}
    clock = [600.0 * 60 + 50]  # 50 s into a minute
    with (
        mock.patch("hub.api.throttling.PrincipalRateThrottle.THROTTLE_RATES", rates),
        mock.patch("hub.api.throttling.PrincipalRateThrottle.timer", side_effect=lambda: clock[0]),
    ):
        client = token_client(owner)
        for _ in range(3):
            assert client.get("/api/v1/me/").status_code == 200
        clock[0] += 15  # 5 s into the next minute: the three are still within the last 60 s
        refused = client.get("/api/v1/me/")
        assert refused.status_code == 429
        assert 5 <= int(refused["Retry-After"]) <= 46  # two of the three must slide out first
        clock[0] += 20  # 25 s in: ~58 % of the last minute still overlaps, so 2 of its 3 count
        assert client.get("/api/v1/me/").status_code == 200
        assert client.get("/api/v1/me/").status_code == 429
        clock[0] += 120  # after quiet minutes the whole budget is back
        for _ in range(3):
            assert client.get("/api/v1/me/").status_code == 200


def test_the_counters_are_kept_in_the_cache_under_its_own_keys(owner, token_client):
    """On Redis a script counts (one round trip); the counters are the cache's own values either way."""
    client = token_client(owner)
    token = APIToken.objects.get(prefix=client.secret.split("_")[1])
    for _ in range(2):
        assert client.get("/api/v1/me/").status_code == 200
    window = int(time.time() // 60)
    keys = [f"throttle_principal_token:{token.pk}:{w}" for w in (window - 1, window)]
    assert sum(cache.get_many(keys).values()) == 2  # the two requests, in one window or across two


def test_session_users_use_the_api_with_csrf(owner, client):
    client.force_login(owner.user, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/api/v1/me/").json()["organization"]["slug"] == owner.organization.slug
    csrf_client = APIClient(enforce_csrf_checks=True)
    csrf_client.force_login(owner.user)
    response = csrf_client.post("/api/v1/tokens/", TOKEN_BODY, format="json")
    assert _error(response, 403)["code"] == "permission_denied"
    assert "CSRF" in response.json()["error"]["message"]


def test_me_for_a_user_without_an_organization(client):
    from tests.factories import UserFactory

    user = UserFactory()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    body = client.get("/api/v1/me/").json()
    assert body["organization"] is None
    assert body["memberships"] == []
    assert _error(client.get("/api/v1/tokens/"), 403)["message"] == "You are not a member of any organization."


# --- Idempotency ---------------------------------------------------------------------------
def test_replay_returns_the_first_response_and_creates_nothing_more(owner, token_client):
    client = token_client(owner)
    first = client.post("/api/v1/tokens/", TOKEN_BODY, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    again = client.post("/api/v1/tokens/", TOKEN_BODY, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert APIToken.objects.filter(name="deploy").count() == 1


def test_same_key_with_another_body_is_422(owner, token_client):
    client = token_client(owner)
    client.post("/api/v1/tokens/", TOKEN_BODY, format="json", HTTP_IDEMPOTENCY_KEY="key-2")
    response = client.post(
        "/api/v1/tokens/", {**TOKEN_BODY, "name": "other"}, format="json", HTTP_IDEMPOTENCY_KEY="key-2"
    )
    assert _error(response, 422)["code"] == "idempotency_key_reused"
    assert not APIToken.objects.filter(name="other").exists()


def test_a_failed_request_does_not_burn_the_key(owner, token_client):
    client = token_client(owner)
    bad = client.post("/api/v1/tokens/", {"name": "deploy"}, format="json", HTTP_IDEMPOTENCY_KEY="key-3")
    assert bad.status_code == 400
    good = client.post("/api/v1/tokens/", TOKEN_BODY, format="json", HTTP_IDEMPOTENCY_KEY="key-3")
    assert good.status_code == 201


def test_keys_are_per_principal_and_expire_after_24_hours(owner, member_factory, token_client):
    client = token_client(owner)
    client.post("/api/v1/tokens/", TOKEN_BODY, format="json", HTTP_IDEMPOTENCY_KEY="key-4")
    other = token_client(member_factory(Role.ADMIN))
    assert other.post("/api/v1/tokens/", TOKEN_BODY, format="json", HTTP_IDEMPOTENCY_KEY="key-4").status_code == 201
    assert "Idempotent-Replayed" not in other.post(
        "/api/v1/tokens/", {**TOKEN_BODY, "name": "n2"}, format="json", HTTP_IDEMPOTENCY_KEY="key-5"
    )
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    fresh = client.post("/api/v1/tokens/", TOKEN_BODY, format="json", HTTP_IDEMPOTENCY_KEY="key-4")
    assert fresh.status_code == 201
    assert "Idempotent-Replayed" not in fresh
    assert APIToken.objects.filter(name="deploy").count() == 3
    assert purge_expired_idempotency_keys() == 2  # the other member's two; the owner's key-4 was renewed


def test_a_replay_while_the_first_is_running_is_409(owner, token_client):
    client = token_client(owner)
    IdempotencyRecord.objects.create(
        organization=owner.organization,
        user=owner.user,
        key="key-6",
        method="POST",
        path="/api/v1/tokens/",
        fingerprint=_fingerprint_of(TOKEN_BODY),
        state=IdempotencyState.IN_PROGRESS,
    )
    response = client.post("/api/v1/tokens/", TOKEN_BODY, format="json", HTTP_IDEMPOTENCY_KEY="key-6")
    assert _error(response, 409)["code"] == "idempotency_in_progress"


def test_an_oversized_key_is_refused(owner, token_client):
    response = token_client(owner).post("/api/v1/tokens/", TOKEN_BODY, format="json", HTTP_IDEMPOTENCY_KEY="k" * 300)
    assert _error(response, 400)["code"] == "invalid_idempotency_key"


def _fingerprint_of(body):
    import hashlib
    import json

    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"POST /api/v1/tokens/\n{canonical}".encode()).hexdigest()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_one_object(owner):
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is tested on PostgreSQL (CI sets DATABASE_URL)")
    _, secret = api_token_create(membership=owner, name="c", scopes=["read", "write"])
    statuses, barrier = [], threading.Barrier(8)

    def fire():
        from django.db import connections

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        barrier.wait()
        statuses.append(
            client.post("/api/v1/tokens/", TOKEN_BODY, format="json", HTTP_IDEMPOTENCY_KEY="race").status_code
        )
        connections.close_all()

    threads = [threading.Thread(target=fire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert APIToken.objects.filter(name="deploy").count() == 1
    assert set(statuses) <= {201, 409}
    assert 201 in statuses


def test_nul_characters_in_a_body_are_a_400_not_a_500(owner, token_client):
    client = token_client(owner)
    response = client.post(
        "/api/v1/quotes/", {"a_metro": "F\x00R", "z_metro": "AM", "bandwidth_mbps": 100}, format="json"
    )
    assert _error(response, 400)["code"] == "parse_error"
    assert "NUL" in response.json()["error"]["message"]
    assert _error(client.post("/api/v1/tokens/", {"name": "x", "scopes": ["read"], "k\x00": 1}, format="json"), 400)


@pytest.mark.parametrize("url", ["/api/v1/metros/F%00R/", "/api/v1/providers/a%00b/", "/fabric/metros/F%00R/"])
def test_nul_characters_in_a_path_are_a_400_not_a_500(owner, token_client, url):
    response = token_client(owner).get(url)
    assert response.status_code == 400
    if url.startswith("/api/"):
        assert _error(response, 400)["code"] == "invalid_path"


@pytest.mark.parametrize("url", ["/api/v1/tokens/", "/api/v1/webhooks/", "/api/v1/ports/", "/api/v1/connections/"])
def test_a_huge_offset_is_an_empty_page_not_a_500(owner, token_client, url):
    response = token_client(owner).get(url, {"offset": "9" * 30, "limit": 10})
    assert response.status_code == 200, response.content[:300]
    assert response.json()["results"] == []
