"""Foundation benchmarks of the hub API: who-am-I, the audit log, idempotent creates.

Measured in-process with DRF's test client: server time (middleware, authentication, throttle
cache round trips, SQL, serialization) plus the test client's own small overhead; no network,
no WSGI server, no connection set-up.
"""

from __future__ import annotations

import base64
import functools
from datetime import timedelta
from urllib.parse import urlencode

from bench import data
from bench.runner import BenchmarkError, Figure, api_client, benchmark, count_queries, latency_figures, measure
from hub.choices import Role, TokenScope
from hub.models import AuditEvent, Membership
from hub.services import api_token_create

AUDIT_EVENTS_OWN = 100_000
AUDIT_EVENTS_OTHER_ORGS = 4
AUDIT_EVENTS_PER_OTHER_ORG = 25_000
PAGE = 50


# --- Data (built once per run; the runner starts from an empty database) ----------------------
@functools.cache
def me_world() -> str:
    """A member of three organizations with a read token in the first; returns the token secret."""
    tenants = data.create_tenants(3, members=2, tokens_per_member=0)
    user = tenants[0].users[1]
    data.create_memberships([user], [t.org for t in tenants[1:]], role=Role.VIEWER)
    _, secret = api_token_create(membership=tenants[0].memberships[1], name="bench me", scopes=[TokenScope.READ])
    return secret


@functools.cache
def audit_world() -> tuple[str, int]:
    """An org with 100,000 audit events among 4 others with 25,000 each.

    Returns a security analyst's read token and the org's event count.
    """
    tenants = data.create_tenants(1 + AUDIT_EVENTS_OTHER_ORGS, members=3, role=Role.SECURITY_ANALYST)
    own, others = tenants[0], tenants[1:]
    data.create_audit_events(own.org, AUDIT_EVENTS_OWN, actors=own.users, tokens=[t for t, _ in own.tokens])
    for n, other in enumerate(others, 1):
        data.create_audit_events(
            other.org,
            AUDIT_EVENTS_PER_OTHER_ORG,
            actors=other.users,
            tokens=[t for t, _ in other.tokens],
            spacing=timedelta(seconds=60 + n),
        )
    data.analyze()
    _, secret = api_token_create(membership=own.memberships[1], name="bench audit", scopes=[TokenScope.READ])
    return secret, AuditEvent.objects.for_org(own.org).count()  # the token's own creation is audited too


# --- Benchmarks ------------------------------------------------------------------------------
@benchmark("api.me.bearer", target=["p95 <= 20 ms", "queries <= 5"])
def me_bearer():
    """GET /api/v1/me/ with a bearer token (user in 3 orgs): latency over 500 requests, SQL per request."""
    client = api_client(me_world())
    samples = measure(lambda i: client.get("/api/v1/me/"), n=500, warmup=50)
    queries = count_queries(lambda i: client.get("/api/v1/me/"))
    return [*latency_figures(samples), Figure("queries", queries, "queries")]


def _audit_page(*, deep: bool = False):
    """A client and the URL of the newest page, or (deep) of the page 99,950 events back."""
    secret, count = audit_world()
    client = api_client(secret)
    url = f"/api/v1/audit-events/?limit={PAGE}"
    if deep:
        # The cursor a client reaches by following `next` all the way down, built directly.
        position = (
            AuditEvent.objects.for_org(
                Membership.objects.get(user__api_tokens__prefix=secret.split("_")[1]).organization
            )
            .order_by("-created_at", "-id")
            .values_list("created_at", flat=True)[count - PAGE - 1]
        )
        cursor = base64.b64encode(urlencode({"p": str(position)}).encode("ascii")).decode("ascii")
        url += "&" + urlencode({"cursor": cursor})
    body = client.get(url).json()
    if len(body.get("results", [])) != PAGE:
        raise BenchmarkError(f"Unexpected page: {len(body.get('results', []))} results")
    return client, url


@benchmark("api.audit_events.list", target=["p95 <= 50 ms", "queries <= 5"])
def audit_events_list():
    """GET /api/v1/audit-events/?limit=50, newest page of an org with 100,000 events (200,000 in the table)."""
    client, url = _audit_page()
    samples = measure(lambda i: client.get(url), n=300, warmup=30)
    queries = count_queries(lambda i: client.get(url))
    return [*latency_figures(samples), Figure("queries", queries, "queries")]


@benchmark("api.audit_events.last_page", target=["p95 <= 50 ms"])
def audit_events_last_page():
    """The oldest page of the same log, reached by cursor (the API paginates the log by cursor)."""
    client, url = _audit_page(deep=True)
    samples = measure(lambda i: client.get(url), n=100, warmup=10)
    queries = count_queries(lambda i: client.get(url))
    return [*latency_figures(samples), Figure("queries", queries, "queries")]


@benchmark("api.tokens.create.idempotent", target=["first.p95 <= 50 ms", "replay.p95 <= 20 ms"])
def tokens_create_idempotent():
    """POST /api/v1/tokens/ with an Idempotency-Key: first request (creates) and replay (stored response)."""
    tenant = data.create_tenants(1, members=1, tokens_per_member=0)[0]
    _, secret = api_token_create(
        membership=tenant.memberships[0], name="bench creator", scopes=[TokenScope.READ, TokenScope.WRITE]
    )
    client = api_client(secret)
    body = {"name": "bench created", "scopes": [TokenScope.READ]}

    def post(key: str):
        return client.post("/api/v1/tokens/", body, format="json", headers={"Idempotency-Key": key})

    first = measure(lambda i: post(f"first-{i}"), n=200, warmup=20, expect=201)
    first_queries = count_queries(lambda i: post(f"count-{i}"), expect=201)

    if post("replay").status_code != 201:
        raise BenchmarkError("The first request with the replay key failed.")

    def replay(i: int):
        response = post("replay")
        if response.headers.get("Idempotent-Replayed") != "true":
            raise BenchmarkError(f"Not a replay: HTTP {response.status_code} {response.content[:200]!r}")
        return response

    replays = measure(replay, n=300, warmup=30, expect=201)
    replay_queries = count_queries(replay, expect=201)
    return [
        *latency_figures(first, prefix="first"),
        Figure("first.queries", first_queries, "queries"),
        *latency_figures(replays, prefix="replay"),
        Figure("replay.queries", replay_queries, "queries"),
    ]
