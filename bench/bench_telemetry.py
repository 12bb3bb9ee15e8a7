"""Telemetry benchmarks: bulk ingest through the API and the stats of a month of 10-second samples.

``telemetry.ingest.bulk_api`` POSTs pre-encoded bodies of 10,000 samples (spread over 100
connections of one organization) to ``/api/v1/telemetry/`` with a bearer token, in process (server
time: parsing, validation, COPY on PostgreSQL, the rollup markers, commit), and reports samples
stored per second over all calls. Every sample must be accepted and stored.

``telemetry.stats.30d`` loads 30 days of one connection sampled every 10 s (259,200 samples), rolls
them up as the beat task would (timed too), and times ``GET /api/v1/connections/{id}/stats/`` for
the last 30 days with the default step (hourly rollups, 720 points; the target) and, for
information, with 5-minute steps (8,640 points, 1.8 MB of JSON); both must answer with the whole
month's bytes.

``telemetry.utilisation.1000`` times ``fabric.telemetry.utilisation_by_connection`` for 1,000
connections over the last 24 hours of 5-minute rollups (288,000 rows), what the topology reads.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, timedelta

from django.utils import timezone

from bench import data
from bench.runner import BenchmarkError, Figure, api_client, benchmark, check_status, latency_figures, measure
from fabric import telemetry
from fabric.choices import ConnectionState, PortSpeed, PortState
from fabric.models import Connection, Metro, Port, TelemetryRollup, TelemetrySample
from fabric.services import metros_load

INGEST_CONNECTIONS = 100
INGEST_BATCH = 10_000
INGEST_CALLS = 20
STATS_DAYS = 30
STATS_INTERVAL = 10
UTILISATION_CONNECTIONS = 1_000


def _world(connections: int, *, tokens: bool = True):
    """One organization (owner with a read+write token), two 400G ports and ``connections`` ACTIVE
    connections between them, written straight to the tables."""
    if not Metro.objects.exists():
        metros_load()
    metros = list(Metro.objects.order_by("code")[:2])
    tenant = data.create_tenants(1, members=1, tokens_per_member=1 if tokens else 0)[0]
    tag = data.new_tag()
    a, z = Port.objects.bulk_create(
        Port(
            organization=tenant.org,
            metro=metro,
            name=f"bench-{tag}-{i}",
            speed_mbps=PortSpeed.G400,
            capacity_mbps=PortSpeed.G400,
            state=PortState.ACTIVE,
        )
        for i, metro in enumerate(metros)
    )
    created = Connection.objects.bulk_create(
        Connection(
            organization=tenant.org,
            name=f"bench-{tag}-{i}",
            a_port=a,
            a_vlan=2 + i % 4000,
            z_port=z,
            z_vlan=2 + i % 4000,
            bandwidth_mbps=10_000,
            state=ConnectionState.ACTIVE,
        )
        for i in range(connections)
    )
    return tenant, list(Connection.objects.filter(pk__in=[c.pk for c in created]).order_by("pk"))


def _iso(moment) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@benchmark("telemetry.ingest.bulk_api", target="samples_per_s >= 50000")
def ingest_bulk_api():
    """POST /api/v1/telemetry/ with 10,000 samples per call over 100 connections."""
    tenant, connections = _world(INGEST_CONNECTIONS)
    client = api_client(tenant.secret())
    ids = [str(c.public_id) for c in connections]
    start = timezone.now() - timedelta(hours=12)

    def body(call: int) -> bytes:
        samples = []
        for i in range(INGEST_BATCH):
            n = call * INGEST_BATCH + i
            samples.append(
                {
                    "connection": ids[n % len(ids)],
                    "time": _iso(start + timedelta(seconds=10 * (n // len(ids)))),
                    "interval_seconds": 10,
                    "bytes_in": 1_000_000 + n % 977,
                    "bytes_out": 250_000 + n % 613,
                    "packets_in": 900 + n % 7,
                    "packets_out": 300 + n % 5,
                    "drops": n % 3,
                    "country": "DE" if n % 2 else "US",
                }
            )
        return json.dumps({"samples": samples}).encode()

    warmup = 2
    bodies = [body(call) for call in range(warmup + INGEST_CALLS)]

    def post(i: int):
        response = client.post("/api/v1/telemetry/", bodies[i], content_type="application/json")
        if response.status_code != 201 or response.json()["accepted"] != INGEST_BATCH:
            raise BenchmarkError(f"ingest refused samples: {response.status_code} {response.content[:300]!r}")
        return response

    samples = measure(post, n=INGEST_CALLS, warmup=warmup, expect=201)
    stored = TelemetrySample.objects.filter(connection__organization=tenant.org).count()
    if stored != (warmup + INGEST_CALLS) * INGEST_BATCH:
        raise BenchmarkError(f"{stored} samples stored, expected {(warmup + INGEST_CALLS) * INGEST_BATCH}")
    rate = INGEST_BATCH * len(samples) / (sum(samples) / 1000)
    return [Figure("samples_per_s", round(rate), "samples/s"), *latency_figures(samples, prefix="call")]


@benchmark(
    "telemetry.stats.30d",
    target=["hourly.p95 <= 100 ms"],
)
def stats_30_days():
    """GET /stats/ for 30 days of one connection sampled every 10 s (259,200 samples, rolled up)."""
    tenant, (link,) = _world(1)
    now = timezone.now().replace(microsecond=0)
    first = now - timedelta(days=STATS_DAYS)
    total = STATS_DAYS * 86_400 // STATS_INTERVAL
    chunk = 10_000
    for offset in range(0, total, chunk):
        telemetry.store_samples(
            [
                (
                    link.pk,
                    first + timedelta(seconds=STATS_INTERVAL * (n + 1)),
                    STATS_INTERVAL,
                    1_000_000,
                    200_000,
                    800,
                    200,
                    0,
                    "",
                )
                for n in range(offset, min(offset + chunk, total))
            ],
            organization_id=tenant.org.pk,
        )
    began = time.perf_counter()
    telemetry.rollup_pending()
    rollup_seconds = time.perf_counter() - began
    data.analyze()
    if TelemetryRollup.objects.filter(connection=link, resolution_seconds=300).count() < STATS_DAYS * 288:
        raise BenchmarkError("the rollup did not cover the month")

    client = api_client(tenant.secret())
    url = f"/api/v1/connections/{link.public_id}/stats/"
    params = {"from": _iso(now - timedelta(days=STATS_DAYS)), "to": _iso(now + timedelta(seconds=1))}

    def check(response, step: int):
        body = check_status(response).json()
        if body["step"] != step or sum(p["bytes_in"] for p in body["points"]) != total * 1_000_000:
            raise BenchmarkError(
                f"stats with step {step} did not cover the month: {body['step']}, {len(body['points'])}"
            )
        return response

    hourly = measure(lambda i: check(client.get(url, params), 3600), n=50, warmup=5)
    five = measure(lambda i: check(client.get(url, {**params, "step": 300}), 300), n=30, warmup=3)
    return [
        *latency_figures(hourly, prefix="hourly"),
        *latency_figures(five, prefix="five_minutes"),
        Figure("rollup_of_month", round(rollup_seconds, 2), "s"),
    ]


@benchmark("telemetry.utilisation.1000", target=["hour.p95 <= 100 ms", "day.p95 <= 100 ms"])
def utilisation_1000():
    """utilisation_by_connection for 1,000 connections over the last hour and the last 24 hours."""
    _, connections = _world(UTILISATION_CONNECTIONS, tokens=False)
    now = timezone.now()
    common = {"packets_in": 1, "packets_out": 1, "drops": 0, "max_bps_in": 1e8, "max_bps_out": 2e7}
    for resolution, count in ((300, 288), (3600, 24)):
        start = telemetry.floor_time(now - timedelta(hours=24), resolution)
        TelemetryRollup.objects.bulk_create(
            (
                TelemetryRollup(
                    connection_id=c.pk,
                    resolution_seconds=resolution,
                    bucket=start + timedelta(seconds=resolution * b),
                    bytes_in=10_000_000 * resolution,
                    bytes_out=2_000_000 * resolution,
                    samples=resolution // 10,
                    **common,
                )
                for c in connections
                for b in range(count + 1)
            ),
            batch_size=10_000,
        )
    data.analyze()
    ids = [c.pk for c in connections]

    def call(window):
        def run(i):
            result = telemetry.utilisation_by_connection(ids, since=now - window, until=now)
            if len(result) != UTILISATION_CONNECTIONS:
                raise BenchmarkError(f"{len(result)} connections with utilisation, expected {len(ids)}")

        return run

    hour = measure(call(timedelta(hours=1)), n=30, warmup=3, expect=None)
    day = measure(call(timedelta(hours=24)), n=30, warmup=3, expect=None)
    return [*latency_figures(hour, prefix="hour"), *latency_figures(day, prefix="day")]
