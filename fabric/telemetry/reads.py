"""Reads of connection telemetry: utilisation, series, countries and the stats of the API and charts.

Everything reads the rollups where it can, so it stays fast however many raw samples there are.
Raw samples are deltas for ``interval_seconds`` ending at ``time``. A sample counts in the bucket its
``time`` falls in. Rates are bits per second: ``bytes * 8 / seconds``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from django.conf import settings
from django.db.models import Case, DateTimeField, F, Func, Q, QuerySet, Sum, When
from django.utils import timezone

from fabric.models import Connection, TelemetryRollup, TelemetrySample
from hub.errors import DomainError

FIVE_MINUTES = 300
HOUR = 3600


@dataclass(frozen=True)
class Utilisation:
    """Average rates over a window; ``percent`` is max(in, out) over the bandwidth, 0-100 (or more)."""

    bps_in: float
    bps_out: float
    percent: float | None


@dataclass(frozen=True)
class Point:
    """One step of a series: the sums over the bucket starting at ``time`` and their average rates."""

    time: datetime
    bytes_in: int
    bytes_out: int
    packets_in: int
    packets_out: int
    drops: int
    bps_in: float
    bps_out: float


class BucketStart(Func):
    """Start of the ``seconds``-long bucket (aligned to the Unix epoch) that a datetime falls in."""

    output_field = DateTimeField()

    def __init__(self, expression, seconds: int):
        super().__init__(expression)
        self.seconds = int(seconds)

    def as_sql(self, compiler, connection, **extra):  # pragma: no cover - every backend has its own below
        raise NotImplementedError(f"BucketStart is not implemented for {connection.vendor}")

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"date_bin('{self.seconds} seconds'::interval, {sql}, TIMESTAMPTZ '1970-01-01 00:00:00+00')", params

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        epoch = f"((CAST(strftime('%%s', {sql}) AS INTEGER) / {self.seconds}) * {self.seconds})"
        return f"datetime({epoch}, 'unixepoch')", params


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def floor_time(value: datetime, seconds: int) -> datetime:
    return _from_epoch(_epoch(value) // seconds * seconds)


# --- Reads ------------------------------------------------------------------------------------------
def utilisation_by_connection(
    connection_ids: Iterable[int] | QuerySet, *, since: datetime, until: datetime | None = None
) -> dict[int, Utilisation]:
    """Average utilisation of each connection over ``[since, until)`` (until defaults to now).

    Read from the 5-minute rollups, or the hourly ones for windows over six hours (the window then
    starts at the top of its first hour), so the newest minute or so, not yet rolled up, is not
    counted. One query (the bandwidth is joined) whatever the number of connections; connections
    without data in the window are absent. ``connection_ids`` may be a queryset of connection
    primary keys (``.values("pk")``): it becomes a subquery, so thousands of ids need not travel.
    """
    if isinstance(connection_ids, QuerySet):
        ids = connection_ids
    else:
        ids = list(connection_ids)
        if not ids:
            return {}
    until = until or timezone.now()
    resolution = HOUR if until - since > timedelta(hours=6) else FIVE_MINUTES
    start = floor_time(since, resolution)
    seconds = (until - start).total_seconds()
    if seconds <= 0:
        return {}
    rows = (
        TelemetryRollup.objects.filter(
            connection_id__in=ids, resolution_seconds=resolution, bucket__gte=start, bucket__lt=until
        )
        .values_list("connection_id", "connection__bandwidth_mbps")
        .annotate(bytes_in=Sum("bytes_in"), bytes_out=Sum("bytes_out"))
        .order_by()
    )
    result = {}
    for connection_id, mbps, bytes_in, bytes_out in rows:
        bps_in = bytes_in * 8 / seconds
        bps_out = bytes_out * 8 / seconds
        percent = max(bps_in, bps_out) / (mbps * 1_000_000) * 100 if mbps else None
        result[connection_id] = Utilisation(bps_in=bps_in, bps_out=bps_out, percent=percent)
    return result


def series_source(step_seconds: int) -> int | None:
    """Which store answers a series of this step: None for raw samples, else the rollup resolution."""
    if step_seconds % HOUR == 0:
        return HOUR
    if step_seconds % FIVE_MINUTES == 0:
        return FIVE_MINUTES
    return None


def series(connection, *, since: datetime, until: datetime, step_seconds: int) -> list[Point]:
    """The connection's traffic in ``[since, until)`` in buckets of ``step_seconds`` (aligned to the
    Unix epoch), oldest first; buckets without data are left out.

    A step that is a multiple of an hour (or of 5 minutes) reads the hourly (or 5-minute) rollups;
    any other step reads the raw samples, which are kept only for the retention period.
    """
    return _series([getattr(connection, "pk", connection)], since=since, until=until, step_seconds=step_seconds)


def port_series(port, *, since: datetime, until: datetime, step_seconds: int) -> list[Point]:
    """The traffic through a port: the sum of its connections, seen from the port (a connection
    whose Z side is this port counts its outbound traffic as the port's inbound)."""
    on_port = Connection.objects.filter(Q(a_port=port) | Q(z_port=port))
    ids = list(on_port.values_list("pk", flat=True))
    z_side = set(on_port.filter(z_port=port).values_list("pk", flat=True))
    return _series(ids, since=since, until=until, step_seconds=step_seconds, swapped=z_side)


def _directed(field: str, other: str, swapped: set[int]):
    if not swapped:
        return Sum(field)
    return Sum(Case(When(connection_id__in=swapped, then=F(other)), default=F(field)))


def _series(
    connection_ids: list[int], *, since: datetime, until: datetime, step_seconds: int, swapped: set[int] = frozenset()
) -> list[Point]:
    if step_seconds <= 0:
        raise ValueError("step_seconds must be positive")
    if not connection_ids:
        return []
    source = series_source(step_seconds)
    if source is None:
        rows = TelemetrySample.objects.filter(connection_id__in=connection_ids, time__gte=since, time__lt=until)
        time_field = "time"
    else:
        rows = TelemetryRollup.objects.filter(
            connection_id__in=connection_ids,
            resolution_seconds=source,
            bucket__gte=floor_time(since, source),
            bucket__lt=until,
        )
        time_field = "bucket"
    counters = ("bytes_in", "bytes_out", "packets_in", "packets_out", "drops")
    if source == step_seconds and len(connection_ids) == 1:
        # One rollup row per step already: no grouping to do.
        rows = rows.order_by(time_field).values_list(time_field, *counters)
    else:
        rows = (
            rows.annotate(step=BucketStart(F(time_field), step_seconds))
            .values("step")
            .annotate(
                sum_bytes_in=_directed("bytes_in", "bytes_out", swapped),
                sum_bytes_out=_directed("bytes_out", "bytes_in", swapped),
                sum_packets_in=_directed("packets_in", "packets_out", swapped),
                sum_packets_out=_directed("packets_out", "packets_in", swapped),
                sum_drops=Sum("drops"),
            )
            .order_by("step")
            .values_list("step", "sum_bytes_in", "sum_bytes_out", "sum_packets_in", "sum_packets_out", "sum_drops")
        )
    to_bps = 8 / step_seconds
    return [
        Point(time, bytes_in, bytes_out, packets_in, packets_out, drops, bytes_in * to_bps, bytes_out * to_bps)
        for time, bytes_in, bytes_out, packets_in, packets_out, drops in rows
    ]


def countries_seen(connection, *, since: datetime) -> dict[str, int]:
    """Bytes sent to each destination country since ``since``, largest first (raw samples, so at
    most the retention period back; samples without a country are not counted)."""
    connection_id = getattr(connection, "pk", connection)
    rows = (
        TelemetrySample.objects.filter(connection_id=connection_id, time__gte=since)
        .exclude(country="")
        .values("country")
        .annotate(total=Sum("bytes_out"))
        .order_by("-total", "country")
    )
    return {row["country"]: row["total"] for row in rows}


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (the usual "95th percentile" of bandwidth billing)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


# --- Stats (the API's and the charts' utilisation series) ----------------------------------------
STEP_LADDER = (10, 60, 300, 900, 3600, 10_800, 21_600, 86_400)
TARGET_POINTS = 800


@dataclass(frozen=True)
class Stats:
    since: datetime
    until: datetime
    step_seconds: int
    source: str  # "raw", "rollup_5m" or "rollup_1h"
    bandwidth_bps: float | None
    points: list[Point]

    def percent(self, bps: float) -> float | None:
        return bps / self.bandwidth_bps * 100 if self.bandwidth_bps else None

    @cached_property
    def summary(self) -> dict:
        """Averages over the window, peaks and 95th percentiles of the step averages."""
        seconds = (self.until - self.since).total_seconds()
        bytes_in = sum(p.bytes_in for p in self.points)
        bytes_out = sum(p.bytes_out for p in self.points)
        p95_in = percentile([p.bps_in for p in self.points], 0.95)
        p95_out = percentile([p.bps_out for p in self.points], 0.95)
        p95_max = percentile([max(p.bps_in, p.bps_out) for p in self.points], 0.95)
        return {
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "avg_bps_in": bytes_in * 8 / seconds,
            "avg_bps_out": bytes_out * 8 / seconds,
            "peak_bps_in": max((p.bps_in for p in self.points), default=None),
            "peak_bps_out": max((p.bps_out for p in self.points), default=None),
            "p95_bps_in": p95_in,
            "p95_bps_out": p95_out,
            "p95_percent": self.percent(p95_max) if p95_max is not None else None,
        }


def default_step(window: timedelta) -> int:
    """The smallest step of the ladder that keeps the series under ``TARGET_POINTS`` points."""
    seconds = window.total_seconds()
    return next((step for step in STEP_LADDER if seconds / step <= TARGET_POINTS), STEP_LADDER[-1])


def connection_stats(
    connection: Connection, *, since: datetime, until: datetime, step_seconds: int | None = None
) -> Stats:
    """The utilisation series of ``connection`` over ``[since, until)``; refuses windows and steps
    that make no sense or would read too much (``DomainError`` naming the parameter)."""
    step, source = _check_window(since, until, step_seconds)
    return Stats(
        since=since,
        until=until,
        step_seconds=step,
        source=source,
        bandwidth_bps=connection.bandwidth_mbps * 1_000_000 if connection.bandwidth_mbps else None,
        points=series(connection, since=since, until=until, step_seconds=step),
    )


def port_stats(port, *, since: datetime, until: datetime, step_seconds: int | None = None) -> Stats:
    """Like ``connection_stats`` for the traffic through a port, as a share of the port's speed."""
    step, source = _check_window(since, until, step_seconds)
    return Stats(
        since=since,
        until=until,
        step_seconds=step,
        source=source,
        bandwidth_bps=port.speed_mbps * 1_000_000 if port.speed_mbps else None,
        points=port_series(port, since=since, until=until, step_seconds=step),
    )


def _check_window(since: datetime, until: datetime, step_seconds: int | None) -> tuple[int, str]:
    if since >= until:
        raise DomainError("'from' must be before 'to'.", code="invalid_window", field="from")
    window = until - since
    max_days = settings.FABRIC_TELEMETRY_MAX_STATS_DAYS
    if window > timedelta(days=max_days):
        raise DomainError(f"The window may span at most {max_days} days.", code="window_too_long", field="to")
    step = step_seconds or default_step(window)
    if step < 1:
        raise DomainError("'step' must be a positive number of seconds.", code="invalid_step", field="step")
    if step > max_days * 86_400:
        raise DomainError(f"'step' may be at most {max_days} days.", code="invalid_step", field="step")
    max_points = settings.FABRIC_TELEMETRY_MAX_POINTS
    if window.total_seconds() / step > max_points:
        raise DomainError(
            f"That step gives more than {max_points:,} points for this window; choose a larger one.",
            code="invalid_step",
            field="step",
        )
    source = series_source(step)
    if source is None:
        oldest = timezone.now() - timedelta(days=settings.FABRIC_TELEMETRY_RETENTION_DAYS)
        if since < oldest:
            raise DomainError(
                f"Raw samples are kept for {settings.FABRIC_TELEMETRY_RETENTION_DAYS} days; for an older "
                "window choose a step that is a multiple of 300 seconds.",
                code="invalid_step",
                field="step",
            )
    return step, {None: "raw", FIVE_MINUTES: "rollup_5m", HOUR: "rollup_1h"}[source]
