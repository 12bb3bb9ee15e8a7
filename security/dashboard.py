"""Reads of the threat dashboard: aggregates of scans and alerts per hour, cached per hour.

Every figure of a window (except the open alerts, which are read live from the
``alert_org_status_severity`` index) is a sum over **slices**: one small dict of counts per hour
(per day for the 30-day window) of scans by verdict, alerts by category and by connection, and
scans by app, agent and detector. A finished hour or day never changes (scans and alerts keep
their time, category and connection), so its slice is cached for
``SECURITY_DASHBOARD_HOUR_CACHE_SECONDS``; only the current hour and the window's first, partial
hour are read from the database on every view. Missing slices are computed together with one
grouped query per figure over their time range (``date_trunc`` buckets on the
``organization, created_at`` indexes). The 1-hour window is read live by minute.
The whole summary is also cached for ``SECURITY_DASHBOARD_CACHE_SECONDS``; the live table never.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection as db
from django.db.models import Count, Q
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.utils import timezone

from fabric.models import Connection
from security.choices import SEVERITY_RANK, AlertStatus, Severity, Verdict, category_label
from security.models import Alert, Incident, Scan

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    span: timedelta
    trunc: type
    bucket: timedelta

    @property
    def bucket_name(self) -> str:
        return {60: "minute", 3600: "hour", 86400: "day"}[int(self.bucket.total_seconds())]


WINDOWS = {
    "1h": Window("1h", "Last hour", timedelta(hours=1), TruncMinute, timedelta(minutes=1)),
    "24h": Window("24h", "Last 24 hours", timedelta(hours=24), TruncHour, timedelta(hours=1)),
    "7d": Window("7d", "Last 7 days", timedelta(days=7), TruncHour, timedelta(hours=1)),
    "30d": Window("30d", "Last 30 days", timedelta(days=30), TruncDay, timedelta(days=1)),
}
DEFAULT_WINDOW = "24h"
TOP = 10
LIVE_ROWS = 50
SEVERITIES_HIGH_FIRST = sorted(Severity.values, key=lambda s: -SEVERITY_RANK[Severity(s)])
OPEN_STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)
FLAGGED = Q(verdict=Verdict.BLOCK) | Q(finding_count__gt=0)


def window_for(key: str | None) -> Window:
    return WINDOWS.get(key or DEFAULT_WINDOW, WINDOWS[DEFAULT_WINDOW])


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _floor_hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _empty_slice() -> dict:
    return {"scans": {}, "alerts": {}, "connections": {}, "apps": {}, "agents": {}, "detectors": {}}


def _detector_rows(org, ranges: list[tuple[datetime, datetime]], trunc: str) -> list[tuple]:
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
        cursor.execute(sql, [org.pk, *(bound for pair in ranges for bound in pair)])
        return [(_as_utc(value), detector, n) for value, detector, n in cursor.fetchall()]


def _as_utc(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _slices(org, ranges: list[tuple[datetime, datetime]], trunc=TruncHour, trunc_name: str = "hour") -> dict[str, dict]:
    """Counts per ``trunc`` bucket of the time ``ranges`` (``[start, end)`` each): one grouped
    query per figure, whatever the number of ranges."""
    slices: dict[str, dict] = {}

    def slot(bucket) -> dict:
        return slices.setdefault(_iso(_as_utc(bucket)), _empty_slice())

    within = Q()
    for start, end in ranges:
        within |= Q(created_at__gte=start, created_at__lt=end)
    scans = Scan.objects.for_org(org).filter(within)
    alerts = Alert.objects.for_org(org).filter(within)
    for row in (
        scans.annotate(b=trunc("created_at", tzinfo=UTC)).values("b", "verdict").annotate(n=Count("*")).order_by()
    ):
        slot(row["b"])["scans"][row["verdict"]] = row["n"]
    for row in (
        alerts.annotate(b=trunc("created_at", tzinfo=UTC)).values("b", "category").annotate(n=Count("*")).order_by()
    ):
        slot(row["b"])["alerts"][row["category"]] = row["n"]
    for row in (
        alerts.filter(connection__isnull=False)
        .annotate(b=trunc("created_at", tzinfo=UTC))
        .values("b", "connection_id")
        .annotate(n=Count("id"))
        .order_by()
    ):
        slot(row["b"])["connections"][str(row["connection_id"])] = row["n"]
    for field, key in (("app", "apps"), ("agent", "agents")):
        for row in (
            scans.exclude(**{field: ""})
            .annotate(b=trunc("created_at", tzinfo=UTC))
            .values("b", field)
            .annotate(
                n=Count("id"), flagged=Count("id", filter=FLAGGED), blocked=Count("id", filter=Q(verdict="block"))
            )
            .order_by()
        ):
            slot(row["b"])[key][row[field]] = [row["n"], row["flagged"], row["blocked"]]
    for bucket, detector, n in _detector_rows(org, ranges, trunc_name):
        slot(bucket)["detectors"][detector] = n
    return slices


def _day_key(org, day: datetime) -> str:
    return f"security:dashboard:hours:{org.pk}:{day:%Y-%m-%d}"


def _hourly(org, since: datetime, now: datetime) -> dict[str, dict]:
    """The hour slices of ``[since, now)``: finished hours from the cache (computing the missing
    ones together), the window's partial first hour and the current hour from the database.

    Finished hours are cached in one entry per day (at most 31 keys for a 30-day window)."""
    first_full = since if _floor_hour(since) == since else _floor_hour(since) + HOUR
    current = _floor_hour(now)
    hours = []
    hour = first_full
    while hour < current:
        hours.append(hour)
        hour += HOUR
    day_keys = {_day_key(org, h) for h in hours}
    bundles = cache.get_many(sorted(day_keys))
    result: dict[str, dict] = {}
    missing = []
    for h in hours:
        bundle = bundles.get(_day_key(org, h), {})
        if _iso(h) in bundle:
            result[_iso(h)] = bundle[_iso(h)]
        else:
            missing.append(h)
    if missing:
        computed = _slices(org, [(min(missing), max(missing) + HOUR)])
        changed = {}
        for h in missing:
            result[_iso(h)] = computed.get(_iso(h), _empty_slice())
            key = _day_key(org, h)
            changed[key] = changed.get(key) or dict(bundles.get(key, {}))
            changed[key][_iso(h)] = result[_iso(h)]
        cache.set_many(changed, settings.SECURITY_DASHBOARD_HOUR_CACHE_SECONDS)
    live = [(start, end) for start, end in ((since, min(first_full, now)), (max(current, since), now)) if start < end]
    if live:
        for bucket, counts in _slices(org, live).items():
            result[bucket] = _merge_slice(result.get(bucket, _empty_slice()), counts)
    return result


def _daily(org, since: datetime, now: datetime) -> dict[str, dict]:
    """Day slices for the finished days of ``[since, now)`` (one cache entry per day, the missing
    days computed together), and hour slices for the window's partial first day and today."""
    first_full = _floor_day(since) if _floor_day(since) == since else _floor_day(since) + DAY
    today = _floor_day(now)
    days = []
    day = first_full
    while day < today:
        days.append(day)
        day += DAY
    keys = {f"security:dashboard:day:{org.pk}:{d:%Y-%m-%d}": d for d in days}
    cached = cache.get_many(list(keys))
    result = {_iso(keys[k]): v for k, v in cached.items()}
    missing = [d for k, d in keys.items() if k not in cached]
    if missing:
        computed = _slices(org, [(min(missing), max(missing) + DAY)], trunc=TruncDay, trunc_name="day")
        fresh = {}
        for k, d in keys.items():
            if k not in cached:
                result[_iso(d)] = fresh[k] = computed.get(_iso(d), _empty_slice())
        cache.set_many(fresh, settings.SECURITY_DASHBOARD_HOUR_CACHE_SECONDS)
    for start, end in ((since, min(first_full, now)), (max(today, since), now)):
        if start < end:
            result.update(_hourly(org, start, end))
    return result


def _floor_day(value: datetime) -> datetime:
    return _floor_hour(value).replace(hour=0)


def _merge_slice(into: dict, other: dict) -> dict:
    merged = _empty_slice()
    for part in merged:
        for source in (into[part], other[part]):
            for name, value in source.items():
                if isinstance(value, list):
                    old = merged[part].get(name, [0, 0, 0])
                    merged[part][name] = [a + b for a, b in zip(old, value, strict=True)]
                else:
                    merged[part][name] = merged[part].get(name, 0) + value
    return merged


def summary(*, org, window: Window, now: datetime | None = None) -> dict:
    """Everything the dashboard's charts and KPIs show for ``window`` (cached briefly)."""
    now = now or timezone.now()
    key = f"security:dashboard:{org.pk}:{window.key}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    data = _summary(org=org, window=window, now=now)
    cache.set(key, data, settings.SECURITY_DASHBOARD_CACHE_SECONDS)
    return data


def _bucket_of(hour_iso: str, window: Window) -> str:
    if window.bucket == timedelta(days=1):
        return _iso(datetime.fromisoformat(hour_iso).replace(hour=0))
    return hour_iso


def _summary(*, org, window: Window, now: datetime) -> dict:
    since = now - window.span
    if window.bucket < HOUR:
        slices = _slices(org, [(since, now)], trunc=TruncMinute, trunc_name="minute")
    elif window.bucket >= DAY:
        slices = _daily(org, since, now)
    else:
        slices = _hourly(org, since, now)

    scans_over_time: dict[str, dict[str, int]] = {Verdict.ALLOW: {}, Verdict.BLOCK: {}}
    alerts_over_time: dict[str, dict[str, int]] = {}
    scan_totals: Counter = Counter()
    category_totals: Counter = Counter()
    by_connection: Counter = Counter()
    detectors: Counter = Counter()
    apps: dict[str, list[int]] = {}
    agents: dict[str, list[int]] = {}
    for hour_iso, counts in sorted(slices.items()):
        bucket = _bucket_of(hour_iso, window)
        for verdict, n in counts["scans"].items():
            series = scans_over_time.setdefault(verdict, {})
            series[bucket] = series.get(bucket, 0) + n
            scan_totals[verdict] += n
        for category, n in counts["alerts"].items():
            series = alerts_over_time.setdefault(category, {})
            series[bucket] = series.get(bucket, 0) + n
            category_totals[category] += n
        by_connection.update(counts["connections"])
        detectors.update(counts["detectors"])
        for target, source in ((apps, counts["apps"]), (agents, counts["agents"])):
            for name, values in source.items():
                total = target.setdefault(name, [0, 0, 0])
                for i, value in enumerate(values):
                    total[i] += value

    open_by_severity = dict.fromkeys(SEVERITIES_HIGH_FIRST, 0)
    alerts = Alert.objects.for_org(org)
    # COUNT(*), not COUNT(id): an index-only scan of ``alert_org_status_severity``, no table reads.
    for row in alerts.filter(status__in=OPEN_STATUSES).values("severity").annotate(n=Count("*")).order_by():
        open_by_severity[row["severity"]] = row["n"]

    connections = {
        str(row["pk"]): row
        for row in Connection.objects.filter(pk__in=[int(pk) for pk in by_connection]).values(
            "pk",
            "public_id",
            "name",
            "a_port__metro__code",
            "a_port__metro__name",
            "a_port__metro__latitude",
            "a_port__metro__longitude",
        )
    }
    top_ids = [pk for pk, _ in sorted(by_connection.items(), key=lambda item: (-item[1], item[0]))[:TOP]]
    top_connections = [
        {
            "id": str(connections[pk]["public_id"]),
            "name": connections[pk]["name"],
            "alerts": by_connection[pk],
        }
        for pk in top_ids
        if pk in connections
    ]
    metros: dict[str, dict] = {}
    for pk, n in by_connection.items():
        row = connections.get(pk)
        if row is None:
            continue
        metro = metros.setdefault(
            row["a_port__metro__code"],
            {
                "code": row["a_port__metro__code"],
                "name": row["a_port__metro__name"],
                "lat": row["a_port__metro__latitude"],
                "lon": row["a_port__metro__longitude"],
                "alerts": 0,
            },
        )
        metro["alerts"] += n

    def top(source: dict[str, list[int]]) -> list[dict]:
        ranked = sorted(source.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))[:TOP]
        return [
            {"name": name, "scans": n, "flagged": flagged, "blocked": blocked} for name, (n, flagged, blocked) in ranked
        ]

    total_scans = sum(scan_totals.values())
    blocked = scan_totals.get(Verdict.BLOCK, 0)
    return {
        "window": window.key,
        "since": _iso(since),
        "until": _iso(now),
        "bucket_seconds": int(window.bucket.total_seconds()),
        "kpis": {
            "open_alerts": sum(open_by_severity.values()),
            "critical_open": open_by_severity[Severity.CRITICAL] + open_by_severity[Severity.HIGH],
            "new_alerts": sum(category_totals.values()),
            "scans": total_scans,
            "blocked": blocked,
            "block_rate": round(100 * blocked / total_scans, 1) if total_scans else 0.0,
            "open_incidents": Incident.objects.for_org(org).filter(status="OPEN").count(),
        },
        "open_by_severity": open_by_severity,
        "scans_over_time": scans_over_time,
        "alerts_over_time": alerts_over_time,
        "category_totals": [
            {"category": c, "label": category_label(c), "alerts": n} for c, n in category_totals.most_common()
        ],
        "top_connections": top_connections,
        "top_agents": top(agents),
        "top_apps": top(apps),
        "detectors": [{"detector": d, "label": category_label(d), "scans": n} for d, n in detectors.most_common()],
        "by_metro": sorted(metros.values(), key=lambda m: -m["alerts"]),
    }


def live_refresh_seconds() -> int:
    return settings.SECURITY_LIVE_REFRESH_SECONDS


SEVERITY_COLOURS = {"CRITICAL": "#7f1d1d", "HIGH": "#b3261e", "MEDIUM": "#a15c00", "LOW": "#0172ad"}
_LAYOUT = {
    "margin": {"l": 40, "r": 10, "t": 10, "b": 40},
    "height": 260,
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "legend": {"orientation": "h", "y": -0.25},
}


def charts(data: dict) -> dict:
    """Plotly figures (plain JSON) built from a summary; each page also shows the same data as a table."""
    severity = {
        "data": [
            {
                "type": "bar",
                "x": [Severity(s).label for s in data["open_by_severity"]],
                "y": list(data["open_by_severity"].values()),
                "marker": {"color": [SEVERITY_COLOURS[s] for s in data["open_by_severity"]]},
                "hovertemplate": "%{x}: %{y} open<extra></extra>",
            }
        ],
        "layout": {**_LAYOUT, "yaxis": {"rangemode": "tozero"}},
    }
    timeline_traces = [
        {
            "type": "bar",
            "name": category_label(category),
            "x": list(points),
            "y": list(points.values()),
            "width": data["bucket_seconds"] * 1000 * 0.8,  # milliseconds on a date axis: one bucket
            "hovertemplate": "%{x}: %{y}<extra>" + category_label(category) + "</extra>",
        }
        for category, points in sorted(data["alerts_over_time"].items())
    ]
    blocked = data["scans_over_time"].get(Verdict.BLOCK, {})
    if blocked:
        timeline_traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Blocked scans",
                "x": sorted(blocked),
                "y": [blocked[t] for t in sorted(blocked)],
                "yaxis": "y2",
                "line": {"color": "#444", "width": 1.5},
            }
        )
    timeline = {
        "data": timeline_traces,
        "layout": {
            **_LAYOUT,
            "barmode": "stack",
            "height": 300,
            "xaxis": {"type": "date", "range": [data["since"], data["until"]]},
            "yaxis": {"title": {"text": "alerts"}, "rangemode": "tozero"},
            "yaxis2": {"title": {"text": "blocked scans"}, "overlaying": "y", "side": "right", "rangemode": "tozero"},
        },
    }
    detectors = {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "y": [d["label"] for d in data["detectors"]][::-1],
                "x": [d["scans"] for d in data["detectors"]][::-1],
                "marker": {"color": "#0172ad"},
                "hovertemplate": "%{y}: %{x} scans<extra></extra>",
            }
        ],
        "layout": {**_LAYOUT, "margin": {"l": 130, "r": 10, "t": 10, "b": 30}},
    }
    metros = data["by_metro"]
    biggest = max((m["alerts"] for m in metros), default=1)
    world = {
        "data": [
            {
                "type": "scattergeo",
                "lat": [m["lat"] for m in metros],
                "lon": [m["lon"] for m in metros],
                "text": [f"{m['name']} ({m['code']}): {m['alerts']} alerts" for m in metros],
                "hoverinfo": "text",
                "mode": "markers",
                "marker": {
                    "size": [8 + 30 * (m["alerts"] / biggest) ** 0.5 for m in metros],
                    "color": "#b3261e",
                    "opacity": 0.7,
                    "line": {"color": "#fff", "width": 1},
                },
            }
        ],
        "layout": {
            **_LAYOUT,
            "height": 320,
            "geo": {
                "projection": {"type": "natural earth"},
                "showcountries": True,
                "countrycolor": "#ccc",
                "showland": True,
                "landcolor": "#f3f4f6",
                "showframe": False,
            },
        },
    }
    return {"severity": severity, "timeline": timeline, "detectors": detectors, "world": world}
