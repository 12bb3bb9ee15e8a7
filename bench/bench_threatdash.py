"""Threat dashboard benchmark: the dashboard page of an organization with 1,000,000 scans and
1,000,000 alerts over the last 30 days.

The page is requested in-process through Django's test client as a logged-in security analyst
(server time: middleware, session, the dashboard's queries, template rendering; no network).

- ``steady_<window>``: the page as it is served all day long. The window's summary is dropped
  from the cache before each request, so every figure is recomputed: the finished hours (days for
  30d) come from their cache, the current hour and the window's partial first hour from the
  database, the open alerts from their index.
- ``first_view_<window>``: the median of three requests after the whole cache was flushed (every
  finished hour recomputed from the 1,000,000 rows; the price paid once after a restart).
- ``cached``: within ``SECURITY_DASHBOARD_CACHE_SECONDS`` of another view of the same window.
- ``live``: the live table the page refreshes every few seconds (never cached).

Data: one organization (plus a second one with 100,000 of each, which must not slow the first)
with 50 connections in 10 metros; scans from 8 apps and 12 agents, 8 % blocked, 15 % with
findings; alerts in 11 categories, most resolved, 40 % on a connection. Rows are written with
PostgreSQL's COPY (bulk_create on SQLite), then ANALYZEd, as a long-running database would be.
"""

from __future__ import annotations

import functools
import json
import random
import uuid
from datetime import timedelta

from django.core.cache import cache
from django.db import connection as db
from django.test import Client
from django.utils import timezone

from bench import data
from bench.runner import Figure, benchmark, count_queries, latency_figures, measure
from fabric.choices import ConnectionState, PortState
from fabric.models import Connection, Metro, Port
from fabric.services import metros_load
from hub.choices import Role
from security.choices import AlertCategory, AlertSource, AlertStatus, Severity
from security.models import Alert, Scan

ROWS = 1_000_000
OTHER_ORG_ROWS = 100_000
DAYS = 30
CONNECTIONS = 50
METROS = ["FR", "AM", "LD", "PA", "DC", "NY", "SV", "SG", "TY", "SY"]
APPS = ["support-bot", "code-assistant", "sales-copilot", "hr-helpdesk", "search", "analytics", "mail", "ops"]
AGENTS = [f"agent-{n}" for n in range(12)]
DETECTORS = ["prompt_injection", "sensitive_data", "secrets", "urls", "unsafe_code"]
CATEGORIES = [c.value for c in AlertCategory]
SEVERITIES = [Severity.LOW, Severity.MEDIUM, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]
COPY_BATCH = 50_000

SCAN_COLUMNS = [
    "created_at",
    "updated_at",
    "public_id",
    "organization_id",
    "profile_name",
    "verdict",
    "action",
    "max_severity",
    "categories",
    "detectors_hit",
    "findings",
    "finding_count",
    "contents",
    "total_bytes",
    "app",
    "agent",
    "model_name",
    "connection_id",
    "duration_ms",
]
ALERT_COLUMNS = [
    "created_at",
    "updated_at",
    "public_id",
    "organization_id",
    "category",
    "severity",
    "status",
    "source",
    "title",
    "dedup_key",
    "count",
    "first_seen",
    "last_seen",
    "evidence",
    "connection_id",
]


def _write(model, columns: list[str], rows) -> None:
    """COPY on PostgreSQL, bulk_create elsewhere; ``rows`` are tuples in ``columns`` order."""
    if db.vendor == "postgresql":
        table = model._meta.db_table
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) == COPY_BATCH:
                _copy(table, columns, batch)
                batch = []
        if batch:
            _copy(table, columns, batch)
        return
    fields = {f.column: f.attname for f in model._meta.concrete_fields}
    objects = (model(**{fields[c]: v for c, v in zip(columns, row, strict=True)}) for row in rows)
    for batch in data._batched(objects):
        model.objects.bulk_create(batch)


def _copy(table: str, columns: list[str], rows: list[tuple]) -> None:
    with db.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _json(value) -> str:
    return json.dumps(value) if db.vendor == "postgresql" else value


def _connections(org) -> list[Connection]:
    metros = {m.code: m for m in Metro.objects.filter(code__in=METROS)}
    ports = Port.objects.bulk_create(
        Port(
            organization=org,
            metro=metros[code],
            name=f"bench-{code}-{side}",
            speed_mbps=100_000,
            capacity_mbps=100_000,
            state=PortState.ACTIVE,
        )
        for code in METROS
        for side in ("a", "z")
    )
    return Connection.objects.bulk_create(
        Connection(
            organization=org,
            name=f"bench-link-{n}",
            a_port=ports[(2 * n) % len(ports)],
            a_vlan=100 + n,
            z_port=ports[(2 * n + 3) % len(ports)],
            z_vlan=100 + n,
            bandwidth_mbps=1000,
            state=ConnectionState.ACTIVE,
        )
        for n in range(CONNECTIONS)
    )


def _scan_rows(org, connections, n: int, rng: random.Random):
    now = timezone.now()
    span = DAYS * 86400
    for i in range(n):
        created = now - timedelta(seconds=span * i / n + rng.random())
        flagged = rng.random() < 0.15
        blocked = flagged and rng.random() < 0.55
        hit = sorted(set(rng.sample(DETECTORS, rng.choice((1, 1, 2))))) if flagged else []
        severity = rng.choice(("MEDIUM", "HIGH", "CRITICAL")) if flagged else ""
        yield (
            created,
            created,
            uuid.uuid4(),
            org.pk,
            "default",
            "block" if blocked else "allow",
            "block" if blocked else ("alert" if flagged else "allow"),
            severity,
            _json(hit),
            _json(hit),
            _json([{"detector": d, "severity": severity, "start": 0, "end": 10, "excerpt": "****"} for d in hit]),
            len(hit),
            _json([{"kind": "prompt", "tool_name": "", "bytes": 900}]),
            900,
            rng.choice(APPS),
            rng.choice(AGENTS),
            "gpt-4.1-mini",
            rng.choice(connections).pk if rng.random() < 0.3 else None,
            0.8,
        )


def _alert_rows(org, connections, n: int, rng: random.Random):
    now = timezone.now()
    span = DAYS * 86400
    for i in range(n):
        created = now - timedelta(seconds=span * i / n + rng.random())
        roll = rng.random()
        status = AlertStatus.OPEN if roll < 0.02 else AlertStatus.ACKNOWLEDGED if roll < 0.05 else AlertStatus.RESOLVED
        category = rng.choice(CATEGORIES)
        yield (
            created,
            created,
            uuid.uuid4(),
            org.pk,
            category,
            rng.choice(SEVERITIES),
            status,
            AlertSource.NETWORK if category in ("exfiltration", "sovereignty") else AlertSource.SCAN,
            f"{category} #{i}",
            f"bench:{i}",
            1 + i % 7,
            created,
            created,
            _json({"baseline": 1.0, "observed": 7.5, "n": i}),
            rng.choice(connections).pk if rng.random() < 0.4 else None,
        )


@functools.cache
def world() -> Client:
    """The organizations, their rows, and a logged-in security analyst's client."""
    metros_load()
    rng = random.Random(6)
    own, other = data.create_tenants(2, members=2, role=Role.SECURITY_ANALYST, tokens_per_member=0)
    for tenant, rows in ((own, ROWS), (other, OTHER_ORG_ROWS)):
        connections = _connections(tenant.org)
        _write(Scan, SCAN_COLUMNS, _scan_rows(tenant.org, connections, rows, rng))
        _write(Alert, ALERT_COLUMNS, _alert_rows(tenant.org, connections, rows, rng))
    data.analyze()
    client = Client()
    client.force_login(own.users[1], backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session["active_org_id"] = own.org.pk
    session.save()
    client.org_pk = own.org.pk
    return client


def _page(client: Client, window: str, *, forget: str):
    """A request of the page; ``forget`` says what is dropped from the cache first: "all" (the
    first view after a cache flush), "summary" (the steady state: finished hours are cached, the
    current hour is read) or "nothing" (within the summary's few seconds of cache)."""

    def call(i):
        if forget == "all":
            cache.clear()
        elif forget == "summary":
            cache.delete(f"security:dashboard:{client.org_pk}:{window}")
        return client.get(f"/security/?window={window}")

    return call


@benchmark(
    "threat_dashboard.1m",
    target=["steady_24h.p50 <= 200 ms", "steady_7d.p50 <= 200 ms", "steady_30d.p50 <= 200 ms", "cached.p50 <= 50 ms"],
)
def dashboard_one_million():
    """Threat dashboard page with 1,000,000 scans and 1,000,000 alerts."""
    client = world()
    figures = []
    for window in ("24h", "7d", "30d"):
        samples = measure(_page(client, window, forget="all"), n=3, warmup=0)
        figures.append(Figure(f"first_view_{window}", round(sorted(samples)[1], 3), "ms"))
        figures += latency_figures(measure(_page(client, window, forget="summary"), n=20, warmup=2), f"steady_{window}")
    figures += latency_figures(measure(_page(client, "24h", forget="nothing"), n=50, warmup=2), "cached")
    figures.append(Figure("queries_steady", count_queries(_page(client, "30d", forget="summary")), "queries"))
    figures += latency_figures(measure(lambda i: client.get("/security/live/"), n=50, warmup=2), "live")
    return figures
