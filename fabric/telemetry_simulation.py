"""Simulated telemetry for the demo and for trying the charts and the anomaly detection.

Each connection gets a steady base load (a seeded fraction of its bandwidth), a daily cycle that
peaks in the afternoon (UTC) and multiplicative noise; inbound carries more than outbound, as for
a site pulling models and data from a GPU cloud. Anomalies are added as extra samples (samples are
additive): a sustained egress spike, or egress to a given destination country.
"""

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max
from django.utils import timezone

from fabric.choices import ConnectionState
from fabric.models import Connection, TelemetrySample
from fabric.telemetry import COUNTRY_CODES, rollup_pending, store_samples

AVERAGE_PACKET_BYTES = 900
DEMO_ORGANIZATIONS = ("acme", "globex")  # the requesters of fabric/demo.py
DEMO_ANOMALIES = {  # connection name -> what happens on it in the last hour or so
    "acme-dc-gpu-inference": {"minutes": 90, "egress_factor": 6.0},
    "acme-ny-dc-backbone": {"minutes": 60, "country": "CN", "country_share": 0.08},
}


@dataclass(frozen=True)
class Anomaly:
    """Extra traffic on one connection during the last ``minutes`` of the simulated window.

    ``egress_factor`` multiplies the normal egress (a spike); ``country`` sends ``country_share`` of
    the bandwidth to that country."""

    connection: Connection
    minutes: int = 60
    egress_factor: float = 1.0
    country: str = ""
    country_share: float = 0.05


def _profile(connection: Connection, seed: int) -> tuple[random.Random, float, float]:
    rng = random.Random(seed * 1_000_003 + connection.pk)  # noqa: S311 - simulation, not secrets
    return rng, rng.uniform(0.12, 0.4), rng.uniform(0.15, 0.45)


def _daily(moment: datetime) -> float:
    """1.0 on average over a day; highest around 15:00 UTC, lowest around 03:00."""
    hours = moment.hour + moment.minute / 60
    return 1 + 0.55 * math.sin((hours - 9) / 24 * 2 * math.pi)


def destination_country(connection: Connection) -> str:
    """The Z side's metro country: where the simulated traffic goes."""
    country = connection.z_port.metro.country.upper()
    return country if country in COUNTRY_CODES else ""


def simulated_rows(
    connection: Connection, *, start: datetime, end: datetime, interval_seconds: int, seed: int = 0
) -> list[tuple]:
    """Rows (in ``fabric.telemetry.COPY_COLUMNS`` order) for samples ending in ``(start, end]``."""
    rng, base, ratio = _profile(connection, seed)
    capacity_bytes = connection.bandwidth_mbps * 1_000_000 / 8 * interval_seconds
    country = destination_country(connection)
    rows = []
    moment = start + timedelta(seconds=interval_seconds)
    while moment <= end:
        load = min(0.98, base * _daily(moment) * rng.lognormvariate(0, 0.12))
        bytes_in = int(capacity_bytes * load)
        bytes_out = int(bytes_in * ratio * rng.lognormvariate(0, 0.1))
        drops = int(bytes_in / AVERAGE_PACKET_BYTES * (load - 0.9) * 0.01) if load > 0.9 else 0
        rows.append(
            (
                connection.pk,
                moment,
                interval_seconds,
                bytes_in,
                bytes_out,
                bytes_in // AVERAGE_PACKET_BYTES,
                bytes_out // AVERAGE_PACKET_BYTES,
                drops,
                country,
            )
        )
        moment += timedelta(seconds=interval_seconds)
    return rows


def anomaly_rows(anomaly: Anomaly, *, end: datetime, interval_seconds: int, seed: int = 0) -> list[tuple]:
    connection = anomaly.connection
    start = end - timedelta(minutes=anomaly.minutes)
    normal = simulated_rows(connection, start=start, end=end, interval_seconds=interval_seconds, seed=seed + 1)
    capacity_bytes = connection.bandwidth_mbps * 1_000_000 / 8 * interval_seconds
    rows = []
    for row in normal:
        moment = row[1]
        if anomaly.egress_factor > 1:
            extra = int(row[4] * (anomaly.egress_factor - 1))
            rows.append(
                (connection.pk, moment, interval_seconds, 0, extra, 0, extra // AVERAGE_PACKET_BYTES, 0, row[8])
            )
        if anomaly.country:
            extra = int(capacity_bytes * anomaly.country_share)
            rows.append(
                (
                    connection.pk,
                    moment,
                    interval_seconds,
                    0,
                    extra,
                    0,
                    extra // AVERAGE_PACKET_BYTES,
                    0,
                    anomaly.country,
                )
            )
    return rows


def simulate(
    connections: list[Connection],
    *,
    days: float,
    interval_seconds: int,
    anomalies: list[Anomaly] = (),
    now: datetime | None = None,
    seed: int = 0,
    rollup: bool = True,
) -> int:
    """Add simulated samples for the last ``days`` up to ``now``, continuing after each connection's
    latest sample (so running it again adds only what is new), plus the anomalies. Returns the
    number of samples stored. Rolls them up at once unless ``rollup`` is false."""
    now = now or timezone.now()
    window_start = now - timedelta(days=days)
    latest = dict(
        TelemetrySample.objects.filter(connection__in=connections)
        .values("connection_id")
        .annotate(last=Max("time"))
        .values_list("connection_id", "last")
    )
    stored = 0
    for connection in connections:
        start = max(window_start, latest.get(connection.pk) or window_start)
        rows = simulated_rows(connection, start=start, end=now, interval_seconds=interval_seconds, seed=seed)
        for chunk in range(0, len(rows), 10_000):
            store_samples(rows[chunk : chunk + 10_000], organization_id=connection.organization_id)
        stored += len(rows)
    for anomaly in anomalies:
        rows = anomaly_rows(anomaly, end=now, interval_seconds=interval_seconds, seed=seed)
        store_samples(rows, organization_id=anomaly.connection.organization_id)
        stored += len(rows)
    if rollup:
        rollup_pending()
    return stored


def active_connections(*, organization_slug: str | None = None):
    connections = Connection.objects.filter(state=ConnectionState.ACTIVE).select_related("z_port__metro")
    if organization_slug:
        connections = connections.filter(organization__slug=organization_slug)
    return connections.order_by("pk")


def seed_demo_telemetry(*, days: float = 3, interval_seconds: int = 60) -> int:
    """A few days of history for the demo's connections that are in service or on their way
    (``seed_demo`` creates them just before the worker provisions them), so the charts, the
    topology's utilisation and the network detection have data from the first page view; with
    two anomalies for the detection to find (``DEMO_ANOMALIES``). Returns the samples added."""
    connections = list(
        Connection.objects.filter(
            organization__slug__in=DEMO_ORGANIZATIONS,
            state__in=[ConnectionState.APPROVED, ConnectionState.PROVISIONING, ConnectionState.ACTIVE],
        )
        .select_related("z_port__metro")
        .order_by("pk")
    )
    if not connections:
        return 0
    by_name = {connection.name: connection for connection in connections}
    fresh = not TelemetrySample.objects.filter(connection__in=connections).exists()
    anomalies = [
        Anomaly(connection=by_name[name], **options)
        for name, options in DEMO_ANOMALIES.items()
        if fresh and name in by_name  # once: a second seed adds only the missing normal traffic
    ]
    return simulate(connections, days=days, interval_seconds=interval_seconds, anomalies=anomalies)
