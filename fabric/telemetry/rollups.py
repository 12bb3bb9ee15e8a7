"""Rollups (5-minute and hourly sums of the raw samples) and retention of telemetry."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count, F, FloatField, Max, Q, Sum
from django.db.models.functions import Cast
from django.utils import timezone

from fabric.models import TelemetryDirtyBucket, TelemetryRollup, TelemetrySample
from fabric.telemetry.reads import FIVE_MINUTES, HOUR, BucketStart, floor_time


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
