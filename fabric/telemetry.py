"""Connection telemetry: the reads other code builds on, ingest, rollups and retention.

The public interface (used by topology, the dashboard and security) is ``utilisation_by_connection``,
``series``, ``countries_seen`` and the ``samples_ingested`` signal; everything reads the rollups
where it can, so it stays fast however many raw samples there are.

Raw samples are deltas for ``interval_seconds`` ending at ``time``. A sample counts in the bucket its
``time`` falls in. Rates are bits per second: ``bytes * 8 / seconds``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

import django.dispatch
from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Case, Count, DateTimeField, F, FloatField, Func, Max, Q, Sum, When
from django.db.models.functions import Cast
from django.utils import timezone

from fabric.models import Connection, TelemetryDirtyBucket, TelemetryRollup, TelemetrySample
from hub.errors import DomainError, PermissionDenied
from hub.models import Membership
from hub.roles import Action
from hub.services import require_action

FIVE_MINUTES = 300
HOUR = 3600

#: Sent after the transaction that stored samples commits. Arguments: ``connection_ids``
#: (frozenset of Connection primary keys), ``organization_id``, ``time_from`` and ``time_to`` (the
#: earliest and latest sample time stored). Receivers must be quick: enqueue a task for real work.
samples_ingested = django.dispatch.Signal()


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
    connection_ids: Iterable[int], *, since: datetime, until: datetime | None = None
) -> dict[int, Utilisation]:
    """Average utilisation of each connection over ``[since, until)`` (until defaults to now).

    Read from the 5-minute rollups, or the hourly ones for windows over six hours (the window then
    starts at the top of its first hour), so the newest minute or so, not yet rolled up, is not
    counted. Two queries whatever the number of connections; connections without data in the
    window are absent.
    """
    ids = list(connection_ids)
    if not ids:
        return {}
    until = until or timezone.now()
    resolution = HOUR if until - since > timedelta(hours=6) else FIVE_MINUTES
    start = floor_time(since, resolution)
    seconds = (until - start).total_seconds()
    if seconds <= 0:
        return {}
    totals = (
        TelemetryRollup.objects.filter(
            connection_id__in=ids, resolution_seconds=resolution, bucket__gte=start, bucket__lt=until
        )
        .values("connection_id")
        .annotate(bytes_in=Sum("bytes_in"), bytes_out=Sum("bytes_out"))
    )
    bandwidth = {}
    result = {}
    rows = list(totals)
    if rows:
        bandwidth = dict(
            Connection.objects.filter(pk__in=[row["connection_id"] for row in rows]).values_list("pk", "bandwidth_mbps")
        )
    for row in rows:
        bps_in = row["bytes_in"] * 8 / seconds
        bps_out = row["bytes_out"] * 8 / seconds
        mbps = bandwidth.get(row["connection_id"])
        percent = max(bps_in, bps_out) / (mbps * 1_000_000) * 100 if mbps else None
        result[row["connection_id"]] = Utilisation(bps_in=bps_in, bps_out=bps_out, percent=percent)
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


# --- Rollups and retention --------------------------------------------------------------------------
def _rollup_rows(rows, *, time_field: str, resolution: int, from_raw: bool):
    """Aggregate ``rows`` (raw samples or finer rollups) per connection and bucket of ``resolution``."""
    if from_raw:
        rate_in = Max(Cast(F("bytes_in"), FloatField()) * 8 / F("interval_seconds"))
        rate_out = Max(Cast(F("bytes_out"), FloatField()) * 8 / F("interval_seconds"))
        count = Count("id")
    else:
        rate_in, rate_out, count = Max("max_bps_in"), Max("max_bps_out"), Sum("samples")
    return (
        rows.annotate(slot=BucketStart(F(time_field), resolution))
        .values("connection_id", "slot")
        .annotate(
            sum_bytes_in=Sum("bytes_in"),
            sum_bytes_out=Sum("bytes_out"),
            sum_packets_in=Sum("packets_in"),
            sum_packets_out=Sum("packets_out"),
            sum_drops=Sum("drops"),
            top_in=rate_in,
            top_out=rate_out,
            count=count,
        )
    )


def _upsert_rollups(aggregates, resolution: int) -> int:
    objects = [
        TelemetryRollup(
            connection_id=row["connection_id"],
            resolution_seconds=resolution,
            bucket=row["slot"],
            bytes_in=row["sum_bytes_in"],
            bytes_out=row["sum_bytes_out"],
            packets_in=row["sum_packets_in"],
            packets_out=row["sum_packets_out"],
            drops=row["sum_drops"],
            max_bps_in=row["top_in"] or 0.0,
            max_bps_out=row["top_out"] or 0.0,
            samples=row["count"],
        )
        for row in aggregates
    ]
    TelemetryRollup.objects.bulk_create(
        objects,
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["connection", "resolution_seconds", "bucket"],
        update_fields=[
            "bytes_in",
            "bytes_out",
            "packets_in",
            "packets_out",
            "drops",
            "max_bps_in",
            "max_bps_out",
            "samples",
        ],
    )
    return len(objects)


def _buckets_filter(pairs: Iterable[tuple[int, datetime]], *, field: str, seconds: int) -> Q:
    """Rows of the given (connection, bucket start) pairs, each bucket ``seconds`` long."""
    by_connection: dict[int, list[datetime]] = {}
    for connection_id, start in pairs:
        by_connection.setdefault(connection_id, []).append(start)
    condition = Q(pk__in=[])
    for connection_id, starts in by_connection.items():
        # Adjacent buckets merge into one range, so a busy connection costs one condition, not hundreds.
        starts.sort()
        ranges: list[list[datetime]] = []
        for start in starts:
            end = start + timedelta(seconds=seconds)
            if ranges and start <= ranges[-1][1]:
                ranges[-1][1] = max(ranges[-1][1], end)
            else:
                ranges.append([start, end])
        for low, high in ranges:
            condition |= Q(connection_id=connection_id, **{f"{field}__gte": low, f"{field}__lt": high})
    return condition


def rollup_pending(*, batch: int = 500) -> int:
    """Recompute the 5-minute and hourly rollups of buckets that received samples since their last
    rollup (the dirty markers), up to ``batch`` markers per transaction (each becomes at most one
    condition of the query; SQLite allows 1,000). Returns the markers done.

    Incremental and safe to run twice or concurrently: markers are taken with SKIP LOCKED where the
    database has it, a bucket is recomputed wholly from its raw samples (so a late sample is simply
    added), and a marker re-marked by an ingest while we worked stays for the next run.
    """
    done = 0
    while True:
        with transaction.atomic():
            markers = TelemetryDirtyBucket.objects.order_by("bucket")
            if db_connection.features.has_select_for_update_skip_locked:
                markers = markers.select_for_update(skip_locked=True)
            taken = list(markers.values_list("pk", "connection_id", "bucket", "marked_at")[:batch])
            if not taken:
                return done
            five = {(connection_id, bucket) for _, connection_id, bucket, _ in taken}
            raw = TelemetrySample.objects.filter(_buckets_filter(five, field="time", seconds=FIVE_MINUTES))
            _upsert_rollups(_rollup_rows(raw, time_field="time", resolution=FIVE_MINUTES, from_raw=True), FIVE_MINUTES)
            hours = {(connection_id, floor_time(bucket, HOUR)) for connection_id, bucket in five}
            fine = TelemetryRollup.objects.filter(
                _buckets_filter(hours, field="bucket", seconds=HOUR), resolution_seconds=FIVE_MINUTES
            )
            _upsert_rollups(_rollup_rows(fine, time_field="bucket", resolution=HOUR, from_raw=False), HOUR)
            # Markers of one ingest share their ``marked_at``: one delete per ingest, not per marker.
            by_mark: dict[datetime, list[int]] = {}
            for pk, _, _, marked_at in taken:
                by_mark.setdefault(marked_at, []).append(pk)
            for marked_at, pks in by_mark.items():
                TelemetryDirtyBucket.objects.filter(pk__in=pks, marked_at=marked_at).delete()
            done += len(taken)
        if len(taken) < batch:
            return done


def retention_cutoffs(now: datetime | None = None) -> dict[str, datetime]:
    now = now or timezone.now()
    return {
        "raw": now - timedelta(days=settings.FABRIC_TELEMETRY_RETENTION_DAYS),
        "five_minutes": now - timedelta(days=settings.FABRIC_TELEMETRY_ROLLUP_5M_RETENTION_DAYS),
        "hourly": now - timedelta(days=settings.FABRIC_TELEMETRY_ROLLUP_1H_RETENTION_DAYS),
    }


def retention_enforce(*, now: datetime | None = None, batch: int = 50_000) -> dict[str, int]:
    """Delete raw samples and rollups older than their retention settings, in batches so one run
    never holds a long lock. Returns how many rows of each kind went."""
    cutoffs = retention_cutoffs(now)
    targets = {
        "raw": (TelemetrySample.objects.filter(time__lt=cutoffs["raw"])),
        "five_minutes": TelemetryRollup.objects.filter(
            resolution_seconds=FIVE_MINUTES, bucket__lt=cutoffs["five_minutes"]
        ),
        "hourly": TelemetryRollup.objects.filter(resolution_seconds=HOUR, bucket__lt=cutoffs["hourly"]),
    }
    deleted = {}
    for name, queryset in targets.items():
        total = 0
        while True:
            ids = list(queryset.values_list("pk", flat=True)[:batch])
            if not ids:
                break
            total += queryset.model.objects.filter(pk__in=ids).delete()[0]
        deleted[name] = total
    return deleted


# --- Ingest -----------------------------------------------------------------------------------------
# ISO 3166-1 alpha-2, the officially assigned codes.
COUNTRY_CODES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
    BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES
    ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE
    IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU
    NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM
    SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE
    VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - a table is easier to check against the standard than 249 literals
)
COUNTERS = ("bytes_in", "bytes_out", "packets_in", "packets_out")
SAMPLE_FIELDS = frozenset({"time", "interval_seconds", *COUNTERS, "drops", "country"})
MAX_COUNTER = 2**63 - 1  # PostgreSQL bigint
MAX_INTERVAL_SECONDS = 86_400
DEFAULT_INTERVAL_SECONDS = 60
COPY_TYPES = ("int8", "timestamptz", "int4", "int8", "int8", "int8", "int8", "int8", "varchar")
COPY_COLUMNS = (
    "connection_id",
    "time",
    "interval_seconds",
    "bytes_in",
    "bytes_out",
    "packets_in",
    "packets_out",
    "drops",
    "country",
)


@dataclass
class IngestResult:
    """What an ingest stored: ``accepted`` samples, and per rejected sample its index and field errors."""

    accepted: int
    errors: list[dict]

    @property
    def rejected(self) -> int:
        return len(self.errors)


def _parse_time(value, *, oldest: datetime, newest: datetime) -> tuple[datetime | None, str | None]:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None, "Not an ISO 8601 date-time."
        if parsed.tzinfo is None:
            return None, "Give a time zone (for example 2026-01-31T12:00:00Z)."
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            parsed = datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None, "Not a valid Unix time."
    elif value is None:
        return None, "This field is required."
    else:
        return None, "Give an ISO 8601 date-time or Unix seconds."
    if parsed > newest:
        return None, "This time is in the future."
    if parsed < oldest:
        days = settings.FABRIC_TELEMETRY_RETENTION_DAYS
        return None, f"This time is older than the {days}-day retention of raw samples."
    return parsed, None


def _parse_count(value, *, required: bool, low: int = 0, high: int = MAX_COUNTER) -> tuple[int | None, str | None]:
    if value is None:
        return (None, "This field is required.") if required else (None, None)
    if type(value) is not int:
        return None, "Must be a whole number."
    if value < low:
        return None, "Must not be negative." if low == 0 else f"Must be at least {low}."
    if value > high:
        return None, f"Must be at most {high}."
    return value, None


def validate_samples(items: list, *, connection_for) -> tuple[list[tuple], list[dict]]:
    """Check each sample; returns the rows to store (in ``COPY_COLUMNS`` order) and the errors
    (``{"index": i, "fields": {name: [message]}}``) of the others.

    ``connection_for(item)`` answers ``(connection_id, error)`` for a sample. This is a plain loop
    rather than a DRF serializer on purpose: it runs for up to 10,000 samples per request and the
    ingest target is 50,000 samples a second. A well-formed sample takes the fast path (type and
    range checks only, times parsed once per distinct string); anything else gets the detailed
    check that names every problem.
    """
    now = timezone.now()
    oldest = now - timedelta(days=settings.FABRIC_TELEMETRY_RETENTION_DAYS)
    newest = now + timedelta(seconds=settings.FABRIC_TELEMETRY_FUTURE_TOLERANCE_SECONDS)
    allowed = SAMPLE_FIELDS | {"connection"}
    times: dict[str, datetime] = {}
    rows: list[tuple] = []
    errors: list[dict] = []
    for index, item in enumerate(items):
        if type(item) is dict and item.keys() <= allowed:
            connection_id, problem = connection_for(item)
            raw_time = item.get("time")
            time = times.get(raw_time) if type(raw_time) is str else None
            if time is None and type(raw_time) is str:
                time, time_problem = _parse_time(raw_time, oldest=oldest, newest=newest)
                if time_problem is None:
                    times[raw_time] = time
            bytes_in, bytes_out = item.get("bytes_in"), item.get("bytes_out")
            packets_in, packets_out = item.get("packets_in"), item.get("packets_out")
            drops, interval = item.get("drops", 0), item.get("interval_seconds", DEFAULT_INTERVAL_SECONDS)
            country = item.get("country", "")
            if (
                problem is None
                and time is not None
                and type(bytes_in) is int
                and type(bytes_out) is int
                and type(packets_in) is int
                and type(packets_out) is int
                and type(drops) is int
                and type(interval) is int
                and 0 <= bytes_in <= MAX_COUNTER
                and 0 <= bytes_out <= MAX_COUNTER
                and 0 <= packets_in <= MAX_COUNTER
                and 0 <= packets_out <= MAX_COUNTER
                and 0 <= drops <= MAX_COUNTER
                and 1 <= interval <= MAX_INTERVAL_SECONDS
                and type(country) is str
                and (not country or country.upper() in COUNTRY_CODES)
            ):
                rows.append(
                    (
                        connection_id,
                        time,
                        interval,
                        bytes_in,
                        bytes_out,
                        packets_in,
                        packets_out,
                        drops,
                        country.upper(),
                    )
                )
                continue
        row, fields = _check_sample(item, connection_for=connection_for, oldest=oldest, newest=newest)
        if fields:
            errors.append({"index": index, "fields": fields})
        else:
            rows.append(row)
    return rows, errors


def _check_sample(item, *, connection_for, oldest: datetime, newest: datetime) -> tuple[tuple | None, dict]:
    """The detailed check of one sample: its row, or the messages of every field that is wrong."""
    if type(item) is not dict:
        return None, {"non_field_errors": ["A sample must be a JSON object."]}
    fields: dict[str, list[str]] = {}
    connection_id, problem = connection_for(item)
    if problem:
        fields["connection"] = [problem]
    for name in sorted(item.keys() - SAMPLE_FIELDS - {"connection"}):
        fields[name] = ["Unknown field."]
    time, problem = _parse_time(item.get("time"), oldest=oldest, newest=newest)
    if problem:
        fields["time"] = [problem]
    values = []
    for name in COUNTERS:
        value, problem = _parse_count(item.get(name), required=True)
        if problem:
            fields[name] = [problem]
        values.append(value)
    drops, problem = _parse_count(item.get("drops"), required=False)
    if problem:
        fields["drops"] = [problem]
    interval, problem = _parse_count(item.get("interval_seconds"), required=False, low=1, high=MAX_INTERVAL_SECONDS)
    if problem:
        fields["interval_seconds"] = [problem]
    country = item.get("country") or ""
    if country:
        if not isinstance(country, str) or country.upper() not in COUNTRY_CODES:
            fields["country"] = ["Not an ISO 3166-1 alpha-2 country code."]
        else:
            country = country.upper()
    if fields:
        return None, fields
    return (connection_id, time, interval or DEFAULT_INTERVAL_SECONDS, *values, drops or 0, country), {}


def _store_rows(rows: list[tuple]) -> None:
    if db_connection.vendor == "postgresql":
        columns = ", ".join(COPY_COLUMNS)
        table = TelemetrySample._meta.db_table
        sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"
        with db_connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            copy.set_types(COPY_TYPES)
            for row in rows:
                copy.write_row(row)
    else:
        TelemetrySample.objects.bulk_create(
            [TelemetrySample(**dict(zip(COPY_COLUMNS, row, strict=True))) for row in rows], batch_size=2000
        )


def _mark_dirty(rows: list[tuple]) -> None:
    marked_at = timezone.now()
    buckets = sorted({(row[0], _epoch(row[1]) // FIVE_MINUTES * FIVE_MINUTES) for row in rows})
    # Sorted, so concurrent ingests lock the markers in the same order and never deadlock.
    TelemetryDirtyBucket.objects.bulk_create(
        [
            TelemetryDirtyBucket(connection_id=connection_id, bucket=_from_epoch(epoch), marked_at=marked_at)
            for connection_id, epoch in buckets
        ],
        batch_size=1000,
        update_conflicts=True,
        unique_fields=["connection", "bucket"],
        update_fields=["marked_at"],
    )


def store_samples(rows: list[tuple], *, organization_id: int | None) -> None:
    """Store validated rows and mark their buckets for the rollup, atomically; announce them on commit."""
    if not rows:
        return
    with transaction.atomic():
        _store_rows(rows)
        _mark_dirty(rows)
        connection_ids = frozenset(row[0] for row in rows)
        times = [row[1] for row in rows]
        time_from, time_to = min(times), max(times)
        transaction.on_commit(
            lambda: samples_ingested.send(
                sender=TelemetrySample,
                connection_ids=connection_ids,
                organization_id=organization_id,
                time_from=time_from,
                time_to=time_to,
            )
        )


def _check_batch(samples) -> None:
    if not isinstance(samples, list):
        raise DomainError("Send the samples as a JSON list under 'samples'.", field="samples")
    if not samples:
        raise DomainError("Send at least one sample.", field="samples")
    limit = settings.FABRIC_TELEMETRY_MAX_SAMPLES
    if len(samples) > limit:
        raise DomainError(
            f"At most {limit:,} samples per call; this one has {len(samples):,}. Split it.",
            code="too_many_samples",
            field="samples",
        )


def telemetry_ingest(*, membership: Membership, connection: Connection, samples) -> IngestResult:
    """Store the valid samples of one connection of the member's organization; report the others.

    Telemetry is reported by the organization that ordered the connection (the A side).
    """
    require_action(membership, Action.FABRIC_MANAGE)
    if connection.organization_id != membership.organization_id:
        raise PermissionDenied("Only the organization that ordered a connection reports its telemetry.")
    _check_batch(samples)

    def connection_for(item):
        if "connection" in item and str(item["connection"]) != str(connection.public_id):
            return None, "Does not match the connection in the URL."
        return connection.pk, None

    rows, errors = validate_samples(samples, connection_for=connection_for)
    store_samples(rows, organization_id=membership.organization_id)
    return IngestResult(accepted=len(rows), errors=errors)


def telemetry_ingest_bulk(*, membership: Membership, samples) -> IngestResult:
    """Store the valid samples of many connections at once; each sample names its ``connection``
    (public id). Samples naming a connection the organization did not order are rejected."""
    require_action(membership, Action.FABRIC_MANAGE)
    _check_batch(samples)
    references = {
        reference for item in samples if type(item) is dict and type(reference := item.get("connection")) is str
    }
    wanted = set()
    for reference in references:
        try:
            wanted.add(uuid.UUID(reference))
        except ValueError:
            continue
    known = {
        str(public_id): pk
        for public_id, pk in Connection.objects.filter(
            organization_id=membership.organization_id, public_id__in=wanted
        ).values_list("public_id", "pk")
    }

    answers: dict[str, tuple[int | None, str | None]] = {}

    def resolve(reference) -> tuple[int | None, str | None]:
        if reference is None:
            return None, "This field is required."
        if not isinstance(reference, str):
            return None, "Give the connection's id (a UUID)."
        try:
            pk = known.get(str(uuid.UUID(reference)))
        except ValueError:
            return None, "Not a valid UUID."
        if pk is None:
            return None, "No connection of your organization has this id."
        return pk, None

    def connection_for(item):
        reference = item.get("connection")
        if type(reference) is not str:
            return resolve(reference)
        answer = answers.get(reference)
        if answer is None:
            answer = answers[reference] = resolve(reference)
        return answer

    rows, errors = validate_samples(samples, connection_for=connection_for)
    store_samples(rows, organization_id=membership.organization_id)
    return IngestResult(accepted=len(rows), errors=errors)


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
