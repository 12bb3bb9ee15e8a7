"""Hourly rollups of scans and alerts for the threat dashboard: the raw counts, and their upkeep.

``raw_slices`` counts raw rows per time bucket (one grouped query per figure). The rollup task
(``rollup_advance``, beat every minute) stores those counts per organization and finished hour in
``DashboardRollup`` once the hour is ``ROLLUP_DELAY`` old, so a window of 30 days reads about
700 hours of small rows instead of millions of scans and alerts. ``DashboardRollupState`` says
which hours are rolled up (``[rolled_from, rolled_until)``); the dashboard reads every other
moment (the current hour, the window's partial first hour) from the raw rows and adds them, so
its figures are always exact and a new scan or alert counts at once.

A rolled-up hour whose raw rows change afterwards (an alert repeat naming a connection, the scan
retention purge, rows written with a time in the past) is marked dirty in the same transaction
(``mark_dirty``); the dashboard reads a dirty hour from the raw rows until the task recomputes it.
Recomputing an hour replaces its rows wholly from the raw rows, so running the task twice, or
concurrently (the organization's state row is locked, SKIP LOCKED), changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import connection as db
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Sum, Value
from django.db.models.functions import Greatest, TruncDay, TruncHour, TruncMinute
from django.utils import timezone

from hub.models import Organization
from security.choices import Verdict
from security.models import Alert, DashboardDirtyHour, DashboardRollup, DashboardRollupState, Scan

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# A finished hour is rolled up this long after its end, so a transaction that started in the hour
# (a batch of scans) has committed; a later commit into a rolled-up hour must mark it dirty.
ROLLUP_DELAY = timedelta(minutes=5)
# Rollups are kept for the longest window (30 days) and its partial first hour, with a margin.
ROLLUP_KEEP = timedelta(days=32)
FLAGGED = Q(verdict=Verdict.BLOCK) | Q(finding_count__gt=0)
TRUNCS = {"minute": TruncMinute, "hour": TruncHour, "day": TruncDay}

Kind = DashboardRollup.Kind
# Slice part -> rollup kind; the parts with [scans, flagged, blocked] are apps and agents.
PARTS = {
    "scans": Kind.VERDICT,
    "alerts": Kind.CATEGORY,
    "connections": Kind.CONNECTION,
    "apps": Kind.APP,
    "agents": Kind.AGENT,
    "detectors": Kind.DETECTOR,
}
SCAN_KINDS = (Kind.VERDICT, Kind.APP, Kind.AGENT, Kind.DETECTOR)


def floor_hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(value: datetime) -> datetime:
    return floor_hour(value).replace(hour=0)


def ceil_hour(value: datetime) -> datetime:
    floor = floor_hour(value)
    return floor if floor == value else floor + HOUR


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def as_utc(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def empty_slice() -> dict:
    return {part: {} for part in PARTS}


# --- Counting raw rows ------------------------------------------------------------------------
def _within(ranges: Iterable[tuple[datetime, datetime]]) -> Q:
    within = Q(pk__in=[])
    for start, end in ranges:
        within |= Q(created_at__gte=start, created_at__lt=end)
    return within


def _detector_rows(org_id: int, ranges: list[tuple[datetime, datetime]], trunc: str) -> list[tuple]:
    """(bucket, detector, scans): the JSON list ``detectors_hit`` unnested in SQL."""
    table = Scan._meta.db_table
    if db.vendor == "postgresql":
        bucket = f"date_trunc('{trunc}', created_at AT TIME ZONE 'UTC')"
        unnest, name = f"jsonb_array_elements_text({table}.detectors_hit) AS d(name)", "d.name"
    else:
        pattern = {"day": "%%Y-%%m-%%d 00:00:00", "hour": "%%Y-%%m-%%d %%H:00:00", "minute": "%%Y-%%m-%%d %%H:%%M:00"}[
            trunc
        ]
        bucket = f"strftime('{pattern}', created_at)"
        unnest, name = f"json_each({table}.detectors_hit) AS d", "d.value"
    sql = (
        f"SELECT {bucket}, {name}, COUNT(*) FROM {table}, {unnest} "  # noqa: S608 - no user input
        "WHERE organization_id = %s AND finding_count > 0 AND ("
        + " OR ".join(["(created_at >= %s AND created_at < %s)"] * len(ranges))
        + ") "
        "GROUP BY 1, 2"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, [org_id, *(bound for pair in ranges for bound in pair)])
        return [(as_utc(value), detector, n) for value, detector, n in cursor.fetchall()]


def raw_slices(org_id: int, ranges: list[tuple[datetime, datetime]], trunc: str = "hour") -> dict[str, dict]:
    """Counts of the raw rows of ``ranges`` (``[start, end)`` each) per ``trunc`` bucket (ISO
    start): scans by verdict, alerts by category and connection, scans by app and agent
    (``[scans, flagged, blocked]``) and by detector. Five grouped queries (scans per app and per
    agent, alerts per category and per connection, the detectors each scan hit), whatever the
    number of ranges; each returns a few rows per bucket."""
    ranges = [(start, end) for start, end in ranges if start < end]
    slices: dict[str, dict] = {}
    if not ranges:
        return slices
    truncate = TRUNCS[trunc]

    keys: dict = {}

    def slot(bucket) -> dict:
        key = keys.get(bucket)
        if key is None:
            key = keys[bucket] = iso(as_utc(bucket))
        return slices.setdefault(key, empty_slice())

    within = _within(ranges)
    bucket = truncate("created_at", tzinfo=UTC)
    scans = Scan.objects.for_org(org_id).filter(within).annotate(b=bucket)
    counted = {
        "n": Count("*"),
        "flagged": Count("id", filter=FLAGGED),
        "blocked": Count("id", filter=Q(verdict=Verdict.BLOCK)),
    }
    # Per app (the unnamed one too): the app figures, and the verdicts (a scan allows or blocks).
    for start, app, n, flagged, blocked in scans.values_list("b", "app").annotate(**counted).order_by():
        counts = slot(start)
        for verdict, m in ((Verdict.ALLOW, n - blocked), (Verdict.BLOCK, blocked)):
            if m:
                counts["scans"][verdict] = counts["scans"].get(verdict, 0) + m
        if app:
            counts["apps"][app] = [n, flagged, blocked]
    for start, agent, n, flagged, blocked in (
        scans.exclude(agent="").values_list("b", "agent").annotate(**counted).order_by()
    ):
        slot(start)["agents"][agent] = [n, flagged, blocked]
    alerts = Alert.objects.for_org(org_id).filter(within).annotate(b=bucket)
    for start, category, n in alerts.values_list("b", "category").annotate(n=Count("*")).order_by():
        slot(start)["alerts"][category] = n
    for start, connection_id, n in (
        alerts.filter(connection__isnull=False).values_list("b", "connection_id").annotate(n=Count("*")).order_by()
    ):
        slot(start)["connections"][str(connection_id)] = n
    for start, detector, n in _detector_rows(org_id, ranges, trunc):
        slot(start)["detectors"][detector] = n
    return slices


# --- Keeping the rollups ------------------------------------------------------------------------
def _hour_ranges(hours: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Adjacent hours merged into ``[start, end)`` ranges, so a long stretch is one condition."""
    ranges: list[list[datetime]] = []
    for hour in sorted(set(hours)):
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour + HOUR
        else:
            ranges.append([hour, hour + HOUR])
    return [(start, end) for start, end in ranges]


def _recompute(org_id: int, ranges: list[tuple[datetime, datetime]]) -> set[datetime]:
    """Replace the hour rows of the hours in ``ranges`` by counts of their raw rows; returns the
    days they touched."""
    if not ranges:
        return set()
    hours = Q(pk__in=[])
    for start, end in ranges:
        hours |= Q(hour__gte=start, hour__lt=end)
    DashboardRollup.objects.for_org(org_id).filter(hours, hours=1).delete()
    rows = []
    for hour_iso, counts in raw_slices(org_id, ranges).items():
        hour = datetime.fromisoformat(hour_iso)
        for part, kind in PARTS.items():
            for key, value in counts[part].items():
                n, flagged, blocked = value if isinstance(value, list) else (value, 0, 0)
                rows.append(
                    DashboardRollup(
                        organization_id=org_id, hour=hour, kind=kind, key=key, n=n, flagged=flagged, blocked=blocked
                    )
                )
    DashboardRollup.objects.bulk_create(rows, batch_size=2000)
    days = set()
    for start, end in ranges:
        day = floor_day(start)
        while day < end:
            days.add(day)
            day += DAY
    return days


def _sum_days(org_id: int, days: set[datetime], *, rolled_from: datetime, rolled_until: datetime) -> None:
    """Replace the day rows of ``days``: the sums of their hour rows for a day wholly rolled up,
    none for a day that is not (the dashboard then reads its hour rows)."""
    if not days:
        return
    DashboardRollup.objects.for_org(org_id).filter(hours=24, hour__in=sorted(days)).delete()
    complete = [day for day in days if rolled_from <= day and day + DAY <= rolled_until]
    if not complete:
        return
    within = Q(pk__in=[])
    for start, end in day_ranges(complete):
        within |= Q(hour__gte=start, hour__lt=end)
    sums = (
        DashboardRollup.objects.for_org(org_id)
        .filter(within, hours=1)
        .annotate(day=TruncDay("hour", tzinfo=UTC))
        .values_list("day", "kind", "key")
        .annotate(total=Sum("n"), all_flagged=Sum("flagged"), all_blocked=Sum("blocked"))
        .order_by()
    )
    DashboardRollup.objects.bulk_create(
        [
            DashboardRollup(
                organization_id=org_id, hours=24, hour=day, kind=kind, key=key, n=n, flagged=flagged, blocked=blocked
            )
            for day, kind, key, n, flagged, blocked in sums
        ],
        batch_size=2000,
    )


def day_ranges(days: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Adjacent days merged into ``[start, end)`` ranges."""
    ranges: list[list[datetime]] = []
    for day in sorted(set(days)):
        if ranges and ranges[-1][1] == day:
            ranges[-1][1] = day + DAY
        else:
            ranges.append([day, day + DAY])
    return [(start, end) for start, end in ranges]


def _roll_org(state: DashboardRollupState, *, until: datetime, keep_from: datetime) -> bool:
    """Bring one organization's rollups up to ``until`` (its state row locked); True if they changed."""
    org_id = state.organization_id
    dirty = list(DashboardDirtyHour.objects.for_org(org_id).values_list("pk", "hour", "marked_at")[:1000])
    todo = [hour for _, hour, _ in dirty if state.rolled_from <= hour < state.rolled_until and hour >= keep_from]
    start = max(state.rolled_until, keep_from)
    ranges = _hour_ranges(todo)
    if start < until:
        ranges.append((start, until))
    days = _recompute(org_id, ranges)
    changed = bool(ranges)
    for pk, _, marked_at in dirty:  # a marker re-marked while we worked stays for the next run
        DashboardDirtyHour.objects.filter(pk=pk, marked_at=marked_at).delete()
    if state.rolled_from < keep_from:
        DashboardRollup.objects.for_org(org_id).filter(hour__lt=keep_from).delete()
        changed = True
    new_from = max(state.rolled_from, keep_from) if state.rolled_until > keep_from else keep_from
    new_until = max(state.rolled_until, until)
    _sum_days(org_id, days, rolled_from=new_from, rolled_until=new_until)
    if changed or (new_from, new_until) != (state.rolled_from, state.rolled_until):
        state.rolled_from, state.rolled_until = new_from, new_until
        state.version += 1
        state.save(update_fields=["rolled_from", "rolled_until", "version"])
    return changed


def rollup_advance(*, now: datetime | None = None, organization_id: int | None = None) -> int:
    """Roll up every organization's finished hours (those ``ROLLUP_DELAY`` past their end),
    recompute its dirty hours and drop rollups older than ``ROLLUP_KEEP``. The organizations that
    had no traffic in the hours to roll move together (``_advance_quiet``); each other one in its
    own transaction. Returns how many organizations' rollups changed."""
    now = now or timezone.now()
    until = floor_hour(now - ROLLUP_DELAY)
    keep_from = floor_hour(now - ROLLUP_KEEP)
    orgs = Organization.objects.all() if organization_id is None else Organization.objects.filter(pk=organization_id)
    missing = orgs.filter(~Exists(DashboardRollupState.objects.filter(organization_id=OuterRef("pk"))))
    DashboardRollupState.objects.bulk_create(
        [
            DashboardRollupState(organization_id=pk, rolled_from=keep_from, rolled_until=keep_from)
            for pk in missing.values_list("pk", flat=True)
        ],
        ignore_conflicts=True,
    )
    dirty = Exists(DashboardDirtyHour.objects.filter(organization_id=OuterRef("organization_id")))
    states = DashboardRollupState.objects.filter(organization__in=orgs).filter(
        Q(rolled_until__lt=until) | Q(rolled_from__lt=keep_from) | dirty
    )
    changed = _advance_quiet(states.exclude(dirty), until=until, keep_from=keep_from)
    for pk in states.values_list("pk", flat=True):
        with transaction.atomic():
            locked = DashboardRollupState.objects.filter(pk=pk)
            if db.features.has_select_for_update_skip_locked:
                locked = locked.select_for_update(skip_locked=True)
            state = locked.first()
            if state is not None and _roll_org(state, until=until, keep_from=keep_from):
                changed += 1
    return changed


def _advance_quiet(states, *, until: datetime, keep_from: datetime) -> int:
    """Bring the organizations that had no scan or alert in the hours to roll (and no dirty hour,
    and no day completing) up to ``until`` in three statements for all of them, since an hour
    without rows has no rollup rows: what ``_roll_org`` does for each, trimming what is older than
    ``keep_from`` included. Returns how many moved.

    A row committed into those hours later marks its hour dirty (``mark_dirty``), as it would after
    a full pass, so the next run recomputes it."""
    quiet = states.filter(
        rolled_until__lt=until,
        rolled_until__gt=keep_from,
        rolled_until__gte=floor_day(until),  # a day that completes gets its day rows on the full path
    )
    for model in (Scan, Alert):
        quiet = quiet.exclude(
            Exists(
                model.objects.filter(
                    organization_id=OuterRef("organization_id"),
                    created_at__gte=OuterRef("rolled_until"),
                    created_at__lt=until,
                )
            )
        )
    with transaction.atomic():
        if db.features.has_select_for_update_skip_locked:
            quiet = quiet.select_for_update(skip_locked=True, of=("self",))
        moving = dict(quiet.values_list("organization_id", "rolled_from"))
        trimmed = [org_id for org_id, rolled_from in moving.items() if rolled_from < keep_from]
        if trimmed:
            DashboardRollup.objects.filter(organization_id__in=trimmed, hour__lt=keep_from).delete()
        return DashboardRollupState.objects.filter(organization_id__in=moving).update(
            rolled_from=Greatest("rolled_from", Value(keep_from)), rolled_until=until, version=F("version") + 1
        )


def ended_hours(moments: Iterable[datetime]) -> list[datetime]:
    """The hours of ``moments`` that have ended (the ones a rollup may hold), in order."""
    current = floor_hour(timezone.now())
    return sorted({hour for moment in moments if (hour := floor_hour(moment)) < current})


def mark_dirty(organization_id: int, moments: Iterable[datetime]) -> None:
    """Say that raw rows of the hours of ``moments`` changed after the hours may have been rolled
    up. Call it in the transaction of the change. The current hour is never rolled up: skipped."""
    hours = ended_hours(moments)
    if not hours:
        return
    marked_at = timezone.now()
    DashboardDirtyHour.objects.bulk_create(
        [DashboardDirtyHour(organization_id=organization_id, hour=hour, marked_at=marked_at) for hour in hours],
        update_conflicts=True,
        unique_fields=["organization", "hour"],
        update_fields=["marked_at"],
    )


def scans_purged(cutoff: datetime) -> None:
    """The retention purge deleted scans before ``cutoff``: the scan counts of the rolled-up hours
    before it go too, and the hour of the cutoff (partly purged) is read raw until recomputed.
    Nothing to do when the cutoff is older than every rollup (the default 90-day retention)."""
    hour = floor_hour(cutoff)
    if hour <= floor_hour(timezone.now() - ROLLUP_KEEP):
        return
    states = DashboardRollupState.objects.filter(rolled_from__lt=hour)
    for org_id, rolled_until in states.values_list("organization_id", "rolled_until"):
        DashboardRollup.objects.for_org(org_id).filter(kind__in=SCAN_KINDS, hour__lt=hour).delete()
        if hour < rolled_until:
            mark_dirty(org_id, [hour])
        DashboardRollupState.objects.for_org(org_id).update(version=F("version") + 1)


def rollup_reset(organization_id: int) -> None:
    """Forget an organization's rollups (after rows were written in the past in bulk, as the demo
    seed does): the dashboard reads raw rows until the next ``rollup_advance`` rebuilds them."""
    empty = floor_hour(timezone.now() - ROLLUP_KEEP)
    DashboardRollupState.objects.filter(organization_id=organization_id).update(
        rolled_from=empty, rolled_until=empty, version=F("version") + 1
    )
    DashboardDirtyHour.objects.filter(organization_id=organization_id).delete()
    DashboardRollup.objects.filter(organization_id=organization_id).delete()
