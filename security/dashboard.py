"""Reads of the threat dashboard: every figure of a window, exact and fresh.

The finished hours of a window come from the hourly rollups (``security.rollups``): about 90
small rows per hour instead of the raw scans and alerts, summed by the database and cached per
window under the rollups' ``version`` (so the cache changes whenever the rollups do). The rest of
the window (its partial first hour, the hours not rolled up yet, the current hour, any dirty hour)
is counted from the raw rows on every view, as are the open alerts (an index-only scan of
``alert_org_status_severity``), the open alerts of the top connections and the open incidents. A
new scan or alert is therefore on the next view at once; nothing of the summary waits on a cache.
The 1-hour window is read from the raw rows by minute. The live table is never cached.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection as db
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from fabric.models import Connection
from security.choices import SEVERITY_RANK, AlertStatus, Severity, Verdict, category_label
from security.models import Alert, DashboardDirtyHour, DashboardRollup, DashboardRollupState, Incident
from security.rollups import DAY, HOUR, ceil_hour, day_ranges, floor_day, floor_hour, iso, raw_slices

Kind = DashboardRollup.Kind


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    span: timedelta
    bucket: timedelta

    @property
    def bucket_name(self) -> str:
        return {60: "minute", 3600: "hour", 86400: "day"}[int(self.bucket.total_seconds())]


WINDOWS = {
    "1h": Window("1h", "Last hour", timedelta(hours=1), timedelta(minutes=1)),
    "24h": Window("24h", "Last 24 hours", timedelta(hours=24), timedelta(hours=1)),
    "7d": Window("7d", "Last 7 days", timedelta(days=7), timedelta(hours=1)),
    "30d": Window("30d", "Last 30 days", timedelta(days=30), timedelta(days=1)),
}
DEFAULT_WINDOW = "24h"
TOP = 10
LIVE_ROWS = 50
SEVERITIES_HIGH_FIRST = sorted(Severity.values, key=lambda s: -SEVERITY_RANK[Severity(s)])
OPEN_STATUSES = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)


def ceil_day(value: datetime) -> datetime:
    floor = floor_day(value)
    return floor if floor == value else floor + DAY


def window_for(key: str | None) -> Window:
    return WINDOWS.get(key or DEFAULT_WINDOW, WINDOWS[DEFAULT_WINDOW])


def _empty_figures() -> dict:
    """Counts of a window: ``scans`` {verdict: {bucket: n}}, ``alerts`` {category: {bucket: n}},
    ``apps`` and ``agents`` {name: [scans, flagged, blocked]}, ``detectors`` and ``connections``
    {key: n}."""
    return {"scans": {}, "alerts": {}, "apps": {}, "agents": {}, "detectors": {}, "connections": {}}


def _bucket_of(moment_iso: str, window: Window) -> str:
    if window.bucket >= DAY:
        return iso(datetime.fromisoformat(moment_iso).replace(hour=0))
    return moment_iso


def _add_point(figures: dict, part: str, name: str, bucket: str, n: int) -> None:
    series = figures[part].setdefault(name, {})
    series[bucket] = series.get(bucket, 0) + n


def _add_total(figures: dict, part: str, name: str, value) -> None:
    if isinstance(value, list):
        total = figures[part].setdefault(name, [0, 0, 0])
        for i, n in enumerate(value):
            total[i] += n
    else:
        figures[part][name] = figures[part].get(name, 0) + value


def _add_slices(figures: dict, slices: dict[str, dict], window: Window) -> None:
    """Add counts of raw rows (``security.rollups.raw_slices``) to ``figures``."""
    for moment_iso, counts in slices.items():
        bucket = _bucket_of(moment_iso, window)
        for part in ("scans", "alerts"):
            for name, n in counts[part].items():
                _add_point(figures, part, name, bucket, n)
        for part in ("apps", "agents", "detectors", "connections"):
            for name, value in counts[part].items():
                _add_total(figures, part, name, value)


def _add_figures(figures: dict, other: dict) -> None:
    for part in ("scans", "alerts"):
        for name, series in other[part].items():
            for bucket, n in series.items():
                _add_point(figures, part, name, bucket, n)
    for part in ("apps", "agents", "detectors", "connections"):
        for name, value in other[part].items():
            _add_total(figures, part, name, list(value) if isinstance(value, list) else value)


def _rolled_rows(org, start: datetime, end: datetime, dirty: list[datetime]):
    """The rollup rows of ``[start, end)`` less the ``dirty`` hours: a day row for each whole day
    without a dirty hour, hour rows for the rest."""
    dirty_days = {floor_day(hour) for hour in dirty}
    day = ceil_day(start)
    days = []
    while day + DAY <= end:
        if day not in dirty_days:
            days.append(day)
        day += DAY
    whole = Q(pk__in=[])
    for first, last in day_ranges(days):
        whole |= Q(hour__gte=first, hour__lt=last)
    rows = DashboardRollup.objects.for_org(org)
    hourly = rows.filter(hours=1, hour__gte=start, hour__lt=end).exclude(whole)
    if dirty:
        hourly = hourly.exclude(hour__in=dirty)
    return rows.filter(whole, hours=24) if days else rows.none(), hourly


def _rolled(org, window: Window, start: datetime, end: datetime, dirty: list[datetime], version: int) -> dict:
    """The figures of the rolled-up hours ``[start, end)`` except ``dirty``, summed by the
    database; cached under the rollups' version, which every change of the rollups raises."""
    digest = hashlib.sha256(",".join(iso(h) for h in dirty).encode()).hexdigest()[:16] if dirty else "-"
    key = f"security:dashboard:rolled:{org.pk}:{window.key}:{start:%Y%m%d%H}:{end:%Y%m%d%H}:{version}:{digest}"
    figures = cache.get(key)
    if figures is not None:
        return figures
    figures = _empty_figures()
    daily, hourly = _rolled_rows(org, start, end, dirty)
    timeline_kinds = (Kind.VERDICT, Kind.CATEGORY)
    if window.bucket >= DAY:
        points = (
            (daily | hourly)
            .filter(kind__in=timeline_kinds)
            .annotate(day=TruncDay("hour", tzinfo=UTC))
            .values_list("day", "kind", "key")
            .annotate(total=Sum("n"))
            .order_by()
        )
    else:  # per hour: the hour rows of the whole range, one row per hour and key already
        hours = DashboardRollup.objects.for_org(org).filter(hours=1, hour__gte=start, hour__lt=end)
        points = hours.exclude(hour__in=dirty).filter(kind__in=timeline_kinds).values_list("hour", "kind", "key", "n")
    for bucket, kind, name, n in points:
        _add_point(figures, "scans" if kind == Kind.VERDICT else "alerts", name, iso(bucket), n)
    parts = {Kind.APP: "apps", Kind.AGENT: "agents", Kind.DETECTOR: "detectors", Kind.CONNECTION: "connections"}
    totals = (
        (daily | hourly)
        .filter(kind__in=list(parts))
        .values_list("kind", "key")
        .annotate(total=Sum("n"), flagged=Sum("flagged"), blocked=Sum("blocked"))
        .order_by()
    )
    for kind, name, n, flagged, blocked in totals:
        _add_total(figures, parts[kind], name, [n, flagged, blocked] if kind in (Kind.APP, Kind.AGENT) else n)
    cache.set(key, figures, settings.SECURITY_DASHBOARD_HOUR_CACHE_SECONDS)
    return figures


def window_figures(org, window: Window, *, since: datetime, now: datetime) -> dict:
    """The counts of ``[since, now)``: rolled-up hours from the rollups, every other moment (the
    partial first hour, hours not rolled up yet, the current hour, dirty hours) from raw rows."""
    figures = _empty_figures()
    if window.bucket < HOUR:
        _add_slices(figures, raw_slices(org.pk, [(since, now)], "minute"), window)
        return figures
    raw = [(since, now)]
    state = DashboardRollupState.objects.for_org(org).values_list("rolled_from", "rolled_until", "version")
    state = state.first()
    if state is not None:
        rolled_from, rolled_until, version = state
        start, end = max(ceil_hour(since), rolled_from), min(floor_hour(now), rolled_until)
        if start < end:
            dirty = sorted(
                DashboardDirtyHour.objects.for_org(org)
                .filter(hour__gte=start, hour__lt=end)
                .values_list("hour", flat=True)
            )
            _add_figures(figures, _rolled(org, window, start, end, dirty, version))
            raw = [(since, start), (end, now), *((hour, hour + HOUR) for hour in dirty)]
    _add_slices(figures, raw_slices(org.pk, raw, "hour"), window)
    return figures


def _open_by_severity(org) -> dict[str, int]:
    """Open (or acknowledged) alerts of any age per severity, highest first: one count per
    severity, each an index-only range of ``alert_org_status_severity`` (no grouping of the tens
    of thousands of open alerts a big organization may have)."""
    one = (
        f"(SELECT COUNT(*) FROM {Alert._meta.db_table} "  # noqa: S608 - no user input
        "WHERE organization_id = %s AND status IN (%s, %s) AND severity = %s)"
    )
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT " + ", ".join([one] * len(SEVERITIES_HIGH_FIRST)),
            [value for severity in SEVERITIES_HIGH_FIRST for value in (org.pk, *map(str, OPEN_STATUSES), severity)],
        )
        counts = cursor.fetchone()
    return dict(zip(SEVERITIES_HIGH_FIRST, counts, strict=True))


def summary(*, org, window: Window, now: datetime | None = None) -> dict:
    """Everything the dashboard's charts and KPIs show for ``window``, exact as of now."""
    now = now or timezone.now()
    since = now - window.span
    figures = window_figures(org, window, since=since, now=now)
    scans_over_time = {Verdict.ALLOW.value: {}, Verdict.BLOCK.value: {}}
    scans_over_time.update({verdict: dict(sorted(s.items())) for verdict, s in figures["scans"].items()})
    alerts_over_time = {category: dict(sorted(s.items())) for category, s in sorted(figures["alerts"].items())}
    scan_totals = {verdict: sum(s.values()) for verdict, s in figures["scans"].items()}
    category_totals = {category: sum(s.values()) for category, s in figures["alerts"].items()}
    by_connection = figures["connections"]

    open_by_severity = _open_by_severity(org)
    alerts = Alert.objects.for_org(org)

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
    ranked = sorted((item for item in by_connection.items() if item[0] in connections), key=lambda i: (-i[1], i[0]))
    top_ids = [pk for pk, _ in ranked[:TOP]]
    # Open alerts of the top connections, any age: the partial index ``alert_org_open_connection``.
    open_counts = {
        str(pk): n
        for pk, n in alerts.filter(status__in=OPEN_STATUSES, connection_id__in=[int(pk) for pk in top_ids])
        .values_list("connection_id")
        .annotate(n=Count("*"))
        .order_by()
    }
    top_connections = [
        {
            "id": str(connections[pk]["public_id"]),
            "name": connections[pk]["name"],
            "alerts": by_connection[pk],
            "open": open_counts.get(pk, 0),
        }
        for pk in top_ids
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
    detectors = sorted(figures["detectors"].items(), key=lambda item: (-item[1], item[0]))
    return {
        "window": window.key,
        "since": iso(since),
        "until": iso(now),
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
            {"category": c, "label": category_label(c), "alerts": n}
            for c, n in sorted(category_totals.items(), key=lambda item: (-item[1], item[0]))
        ],
        "top_connections": top_connections,
        "top_agents": top(figures["agents"]),
        "top_apps": top(figures["apps"]),
        "detectors": [{"detector": d, "label": category_label(d), "scans": n} for d, n in detectors],
        "by_metro": sorted(metros.values(), key=lambda m: (-m["alerts"], m["code"])),
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


def json_island(element_id: str, value) -> str:
    """What ``{{ value|json_script:element_id }}`` writes, dumped by orjson (the 7-day timeline's
    figures are a few thousand points): ``<``, ``>`` and ``&`` escaped, so no text ends the script."""
    text = orjson.dumps(value, default=DjangoJSONEncoder().default).decode()
    text = text.replace("<", "\\u003C").replace(">", "\\u003E").replace("&", "\\u0026")
    return format_html('<script id="{}" type="application/json">{}</script>', element_id, mark_safe(text))  # noqa: S308


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
                "fitbounds": False,  # the whole world (plotly.js would zoom to a lone metro)
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
