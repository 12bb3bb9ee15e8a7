"""Threat dashboard benchmark: the dashboard page of an organization with 1,000,000 scans and
1,000,000 alerts over the last 30 days.

The page is requested in-process through Django's test client as a logged-in security analyst
(server time: middleware, session, the dashboard's queries, template rendering; no network).

- ``rollup_build``: the rollup task's first run over all the rows (as after the migration).
- ``steady_<window>``: the page as it is served all day long: the sums of the window's rolled-up
  hours are in the cache (their key changes when the rollups do, at least hourly); the rest of the
  window (its partial first hour, the current hour), the open alerts, the open alerts of the top
  connections and the live table are read from the database.
- ``cold_<window>``: the same after the whole cache was flushed before each request: the sums of
  the rolled-up hours come from the rollup table (the first view of each hour).
- ``live``: the live table the page refreshes every few seconds (never cached).
- ``rollup_hour``: the rollup task's work each hour (one more hour of both organizations).

Data: one organization (plus a second one with 100,000 of each, which must not slow the first)
with 50 connections in 10 metros; scans from 8 apps and 12 agents, 8 % blocked, 15 % with
findings; alerts in 11 categories, most resolved, 40 % on a connection. Rows are written with
PostgreSQL's COPY (bulk_create on SQLite), then VACUUM ANALYZEd, as a long-running database would be.

Iterating: ``python -m bench.runner --keep-data threat_dashboard.1m`` reuses the rows of an earlier
run in the same database (topped up with the scans and alerts of the time since), so only the
first run pays the generation.
"""

from __future__ import annotations

import functools
import json
import random
import time
import uuid
from datetime import timedelta

from django.core.cache import cache
from django.db import connection as db
from django.db.models import Count, F
from django.test import Client
from django.utils import timezone

from bench import data
from bench.runner import Figure, benchmark, count_queries, latency_figures, measure
from fabric.choices import ConnectionState, PortState
from fabric.models import Connection, Metro, Port
from fabric.services import metros_load
from hub.choices import Role
from hub.models import Membership, Organization
from security.choices import AlertCategory, AlertSource, AlertStatus, Severity
from security.models import Alert, DashboardRollup, DashboardRollupState, Scan
from security.rollups import rollup_advance

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


def _scan_rows(org, connections, n: int, rng: random.Random, *, span: float = DAYS * 86400):
    """``n`` scans spread evenly over the ``span`` seconds before now."""
    now = timezone.now()
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


def _alert_rows(org, connections, n: int, rng: random.Random, *, span: float = DAYS * 86400, first: int = 0):
    """``n`` alerts spread evenly over the ``span`` seconds before now (dedup keys from ``first``)."""
    now = timezone.now()
    for i in range(first, first + n):
        created = now - timedelta(seconds=span * (i - first) / n + rng.random())
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


def _login(membership) -> Client:
    client = Client()
    client.force_login(membership.user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session["active_org_id"] = membership.organization_id
    session.save()
    client.org_pk = membership.organization_id
    return client


def _reuse() -> Client | None:
    """The organization of an earlier run still in the database (``bench.runner --keep-data``),
    topped up with the scans and alerts of the time since (at the same rate), or None."""
    org_id = (
        Scan.objects.values("organization_id")
        .annotate(n=Count("*"))
        .filter(n__gte=ROWS)
        .order_by()
        .values_list("organization_id", flat=True)
        .first()
    )
    if org_id is None:
        return None
    rng = random.Random()
    for org in Organization.objects.filter(
        pk__in=Connection.objects.filter(name="bench-link-0").values("organization")
    ):
        rows = ROWS if org.pk == org_id else OTHER_ORG_ROWS
        gap = (timezone.now() - Scan.objects.filter(organization=org).latest("created_at").created_at).total_seconds()
        n = int(rows * gap / (DAYS * 86400))
        if n:
            connections = list(Connection.objects.filter(organization=org, name__startswith="bench-link-"))
            first = Alert.objects.filter(organization=org).count()
            _write(Scan, SCAN_COLUMNS, _scan_rows(org, connections, n, rng, span=gap))
            _write(Alert, ALERT_COLUMNS, _alert_rows(org, connections, n, rng, span=gap, first=first))
    membership = Membership.objects.filter(organization_id=org_id, role=Role.SECURITY_ANALYST).order_by("pk")[0]
    return _login(membership)


@functools.cache
def world() -> Client:
    """The organizations, their rows and rollups, and a logged-in security analyst's client.

    ``client.rollup_seconds``: the rollup task's first run over all the rows (both organizations)."""
    client = _reuse()
    if client is None:
        metros_load()
        rng = random.Random(6)
        own, other = data.create_tenants(2, members=2, role=Role.SECURITY_ANALYST, tokens_per_member=0)
        for tenant, rows in ((own, ROWS), (other, OTHER_ORG_ROWS)):
            connections = _connections(tenant.org)
            _write(Scan, SCAN_COLUMNS, _scan_rows(tenant.org, connections, rows, rng))
            _write(Alert, ALERT_COLUMNS, _alert_rows(tenant.org, connections, rows, rng))
        client = _login(own.memberships[1])
    data.analyze()
    DashboardRollupState.objects.all().delete()  # as after the migration: nothing rolled up yet
    DashboardRollup.objects.all().delete()
    started = time.perf_counter()
    rollup_advance()
    client.rollup_seconds = time.perf_counter() - started
    data.analyze()
    return client


def _page(client: Client, window: str, *, cold: bool):
    """A request of the page; ``cold`` drops the cache first (so the rollup sums of the window's
    finished hours are read from the rollup table, as on the first view of each hour)."""

    def call(i):
        if cold:
            cache.clear()
        return client.get(f"/security/?window={window}")

    return call


def _one_hour_of_rollups() -> float:
    """Milliseconds of the rollup task's hourly work: every organization's last hour again."""
    DashboardRollupState.objects.update(rolled_until=F("rolled_until") - timedelta(hours=1))
    started = time.perf_counter()
    rollup_advance()
    return (time.perf_counter() - started) * 1000


WINDOWS = ("24h", "7d", "30d")


@benchmark(
    "threat_dashboard.1m",
    target=[
        *(f"steady_{w}.p95 <= 200 ms" for w in WINDOWS),
        *(f"cold_{w}.p95 <= 200 ms" for w in WINDOWS),
        "steady_24h.p50 <= 50 ms",
    ],
)
def dashboard_one_million():
    """Threat dashboard page with 1,000,000 scans and 1,000,000 alerts."""
    client = world()
    return measure_dashboard(client)


def measure_dashboard(client: Client) -> list[Figure]:
    figures = [Figure("rollup_build", round(client.rollup_seconds, 1), "s")]
    for window in WINDOWS:
        figures += latency_figures(measure(_page(client, window, cold=True), n=10, warmup=1), f"cold_{window}")
        figures += latency_figures(measure(_page(client, window, cold=False), n=20, warmup=2), f"steady_{window}")
    figures.append(Figure("queries_steady", count_queries(_page(client, "30d", cold=False)), "queries"))
    figures += latency_figures(measure(lambda i: client.get("/security/live/"), n=50, warmup=2), "live")
    figures.append(Figure("rollup_hour", round(_one_hour_of_rollups(), 1), "ms"))
    return figures
