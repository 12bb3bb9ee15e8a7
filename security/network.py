"""Network anomaly detection on a connection's telemetry: pure functions, no database.

Two detectors, each explainable with the numbers it used:

- **Egress spike** (robust z-score): each point's egress (``bps_out``) is compared with the median
  and the MAD (median absolute deviation) of the ``window_points`` points before it. A point is a
  spike when it is at least ``spike_z`` robust standard deviations *and* ``spike_min_ratio`` times
  above that median. The median and MAD ignore the odd outlier, so a spike does not hide the next
  one, and a slow daily cycle moves the baseline with it instead of looking like an anomaly.
- **Slow leak** (CUSUM): a small, persistent rise in the share of traffic that leaves (the
  egress-to-ingress ratio, or egress alone on a link with no ingress) that never looks like a
  spike. It is watched on a log scale (multiplicative noise becomes symmetric). The first
  ``reference_points`` points give the reference (median and MAD); the one-sided
  CUSUM ``S = max(0, S + z - k)`` adds up how far each later point is above it, and alarms past ``h``.
  Using the ratio rather than raw egress keeps daily and weekly cycles in volume, which move
  ingress and egress together, from drifting the sum.

A series shorter than the warm-up yields nothing: no verdict without a baseline.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.utils import timezone

from fabric import telemetry
from fabric.models import Connection, Metro, TelemetrySample
from security.choices import AlertCategory, AlertSource, Severity
from security.models import Alert, Policy
from security.services import alert_raise

MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution times this is its standard deviation


class TrafficPoint(Protocol):
    time: datetime
    bps_in: float
    bps_out: float


@dataclass(frozen=True)
class DetectionConfig:
    """Thresholds of both detectors (``SECURITY_NETWORK_DETECTION`` in settings overrides them)."""

    warmup_points: int = 12  # points needed before a first verdict
    window_points: int = 48  # trailing window of the spike baseline
    spike_z: float = 6.0
    spike_min_ratio: float = 2.0  # a spike is also at least this multiple of the baseline
    min_excess_bps: float = 1_000_000.0  # ignore "spikes" smaller than this in absolute terms
    reference_points: int = 72  # the slow-leak reference period (the start of the series)
    cusum_k: float = 0.75  # allowance per point, in robust standard deviations
    cusum_h: float = 12.0  # alarm threshold of the sum
    relative_scale_floor: float = 0.05  # the scale is at least this share of the baseline
    min_ingress_bps: float = 1_000.0  # below this the link has no meaningful ingress: watch egress alone

    @classmethod
    def from_settings(cls, overrides: dict | None) -> DetectionConfig:
        return cls(**(overrides or {}))


@dataclass(frozen=True)
class Anomaly:
    """One finding, with the numbers that explain it (stored as the alert's evidence)."""

    kind: str  # "spike" or "slow_leak"
    metric: str  # what was measured: "bps_out" or "egress_ratio"
    observed: float  # the peak (spike) or the mean over the drift (slow leak)
    baseline: float  # the median the observation is compared with
    scale: float  # the robust standard deviation used (of the logarithm, for a slow leak)
    deviation: float  # z-score (spike) or CUSUM value (slow leak)
    threshold: float
    window_start: datetime
    window_end: datetime
    observed_at: datetime  # the point that raised it (the peak, or where the sum crossed h)
    points: int  # how many points the finding spans

    @property
    def ratio(self) -> float:
        return self.observed / self.baseline if self.baseline else float("inf")

    def evidence(self) -> dict:
        data = asdict(self)
        for key in ("window_start", "window_end", "observed_at"):
            data[key] = data[key].isoformat()
        for key in ("observed", "baseline", "scale", "deviation", "threshold"):
            data[key] = round(data[key], 4)
        data["ratio"] = round(self.ratio, 2) if self.baseline else None
        return data


def robust_location_scale(values: Sequence[float], *, relative_floor: float) -> tuple[float, float]:
    """Median and MAD-based standard deviation, the latter floored at ``relative_floor`` of the median
    (a perfectly flat baseline would otherwise make any wobble infinitely significant)."""
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    scale = max(MAD_TO_SIGMA * mad, relative_floor * abs(median), 1e-9)
    return median, scale


def detect_spikes(points: Sequence[TrafficPoint], config: DetectionConfig) -> list[Anomaly]:
    """Egress spikes, consecutive spiking points merged into one finding at their peak."""
    values = [float(p.bps_out) for p in points]
    found: list[Anomaly] = []
    episode: list[tuple[int, float, float, float]] = []  # (index, z, baseline, scale)

    def close_episode():
        if not episode:
            return
        index, z, baseline, scale = max(episode, key=lambda e: values[e[0]])
        found.append(
            Anomaly(
                kind="spike",
                metric="bps_out",
                observed=values[index],
                baseline=baseline,
                scale=scale,
                deviation=z,
                threshold=config.spike_z,
                window_start=points[episode[0][0]].time,
                window_end=points[episode[-1][0]].time,
                observed_at=points[index].time,
                points=len(episode),
            )
        )
        episode.clear()

    spiking: set[int] = set()
    for i in range(config.warmup_points, len(values)):
        # Earlier spike points stay out of the baseline, so a long exfiltration is not learnt as normal.
        history = [values[j] for j in range(max(0, i - config.window_points), i) if j not in spiking]
        if len(history) < config.warmup_points:
            close_episode()
            continue
        baseline, scale = robust_location_scale(history, relative_floor=config.relative_scale_floor)
        x = values[i]
        z = (x - baseline) / scale
        if z >= config.spike_z and x >= config.spike_min_ratio * baseline and x - baseline >= config.min_excess_bps:
            spiking.add(i)
            episode.append((i, z, baseline, scale))
        else:
            close_episode()
    close_episode()
    return found


def _leak_signal(points: Sequence[TrafficPoint], config: DetectionConfig) -> tuple[str, list[float]]:
    """The log of the egress-to-ingress ratio (symmetric noise, unlike the ratio itself), or the
    log of egress alone on a link without ingress."""
    reference = points[: config.reference_points]
    floor = config.min_ingress_bps
    if statistics.median(float(p.bps_in) for p in reference) >= floor:
        return "egress_ratio", [math.log(max(float(p.bps_out), 1.0) / max(float(p.bps_in), floor)) for p in points]
    return "bps_out", [math.log(max(float(p.bps_out), 1.0)) for p in points]


def detect_slow_leak(points: Sequence[TrafficPoint], config: DetectionConfig) -> Anomaly | None:
    """The first point where the upward CUSUM against the reference period crosses ``cusum_h``."""
    if len(points) <= max(config.reference_points, config.warmup_points):
        return None
    metric, signal = _leak_signal(points, config)
    # The floor is absolute here: a log-ratio's median can be near zero.
    baseline, scale = robust_location_scale(signal[: config.reference_points], relative_floor=0.0)
    scale = max(scale, config.relative_scale_floor)
    total, run_start = 0.0, None
    for i in range(config.reference_points, len(signal)):
        total = max(0.0, total + (signal[i] - baseline) / scale - config.cusum_k)
        if total == 0.0:
            run_start = None
            continue
        if run_start is None:
            run_start = i
        if total > config.cusum_h:
            drift = signal[run_start : i + 1]
            return Anomaly(
                kind="slow_leak",
                metric=metric,
                observed=math.exp(statistics.fmean(drift)),
                baseline=math.exp(baseline),
                scale=scale,
                deviation=total,
                threshold=config.cusum_h,
                window_start=points[run_start].time,
                window_end=points[i].time,
                observed_at=points[i].time,
                points=len(drift),
            )
    return None


def analyse(points: Sequence[TrafficPoint], config: DetectionConfig) -> list[Anomaly]:
    """Every finding in a series ordered by time: spikes first (each one), then a slow leak when the
    drift is not just the spikes themselves."""
    if len(points) <= config.warmup_points:
        return []
    spikes = detect_spikes(points, config)
    spike_times = {p.time for p in points if any(s.window_start <= p.time <= s.window_end for s in spikes)}
    calm = [p for p in points if p.time not in spike_times]
    leak = detect_slow_leak(calm, config)
    return sorted([*spikes, *([leak] if leak else [])], key=lambda a: a.observed_at)


# --- Against the database: a connection's recent telemetry -> alerts ----------------------------
# Member states of the EU and the EEA without a fabric metro are still in the fabric's EU zone.
EU_ZONE_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IS",
        "IT",
        "LI",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "NO",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)


def country_zone(country: str, metro_zones: dict[str, str]) -> str:
    """The sovereignty zone of a destination country, in the zone names the fabric's metros use:
    the zone of the country's metros, EU for the rest of the EU and EEA, else the country code."""
    country = country.upper()
    if country in metro_zones:
        return metro_zones[country]
    return "EU" if country in EU_ZONE_COUNTRIES else country


def metro_zones() -> dict[str, str]:
    return dict(Metro.objects.values_list("country", "sovereignty_zone").distinct())


def detection_config() -> DetectionConfig:
    return DetectionConfig.from_settings(settings.SECURITY_NETWORK_DETECTION)


def _unresolved_evidence(org, dedup_key: str) -> dict | None:
    alert = Alert.objects.for_org(org).unresolved().filter(dedup_key=dedup_key).only("evidence").first()
    return alert.evidence if alert is not None else None


def _already_reported(org, dedup_key: str, field: str, value: str) -> bool:
    """Whether the unresolved alert with ``dedup_key`` already covers ``value`` (an ISO time),
    so a second analysis of the same samples does not count the same finding twice."""
    evidence = _unresolved_evidence(org, dedup_key)
    return bool(evidence) and str(evidence.get(field, "")) >= value


def connection_analyse(connection, *, now: datetime | None = None) -> list:
    """Analyse a connection's recent traffic and raise alerts: exfiltration suspected (an egress
    spike or a slow leak) and sovereignty (traffic to a country outside the policy's zones).

    Each finding is raised once however often the same samples are analysed; a new finding on
    the same connection counts as a repeat of its unresolved alert. Returns the alerts raised.
    """
    now = now or timezone.now()
    org = connection.organization
    lookback = timedelta(seconds=settings.SECURITY_NETWORK_LOOKBACK_SECONDS)
    step = settings.SECURITY_NETWORK_STEP_SECONDS
    points = telemetry.series(connection, since=now - lookback, until=now + timedelta(seconds=step), step_seconds=step)
    raised = []
    dedup_key = f"exfiltration:{connection.public_id}"
    for anomaly in analyse(points, detection_config()):
        evidence = anomaly.evidence() | {"connection": connection.name, "step_seconds": step}
        if _already_reported(org, dedup_key, "observed_at", evidence["observed_at"]):
            continue
        if anomaly.kind == "spike":
            severity = Severity.CRITICAL if anomaly.ratio >= 10 else Severity.HIGH
            title = f"Egress spike on {connection.name}: {anomaly.ratio:.1f}x its baseline"
        else:
            severity = Severity.MEDIUM
            title = f"Slow egress increase on {connection.name}: {anomaly.ratio:.2f}x its baseline"
        alert, _ = alert_raise(
            org=org,
            category=AlertCategory.EXFILTRATION,
            severity=severity,
            source=AlertSource.NETWORK,
            dedup_key=dedup_key,
            title=title,
            evidence=evidence,
            connection=connection,
        )
        raised.append(alert)
    policy = Policy.objects.filter(organization=org).first()
    if policy is not None and policy.allowed_zones:
        zones = metro_zones()
        since = now - lookback
        for country in telemetry.countries_seen(connection, since=since):
            zone = country_zone(country, zones)
            if zone in policy.allowed_zones:
                continue
            key = f"sovereignty:{connection.public_id}:{country}"
            last = _unresolved_evidence(org, key)
            # Only bytes since the last report count again (the same samples are analysed repeatedly).
            window_start = datetime.fromisoformat(last["until"]) if last and last.get("until") else since
            fresh = telemetry.countries_seen(connection, since=window_start).get(country)
            if not fresh:
                continue
            alert, _ = alert_raise(
                org=org,
                category=AlertCategory.SOVEREIGNTY,
                severity=Severity.HIGH,
                source=AlertSource.NETWORK,
                dedup_key=key,
                title=f"Traffic from {connection.name} to {country} (zone {zone}), outside the policy's zones",
                evidence={
                    "connection": connection.name,
                    "country": country,
                    "zone": zone,
                    "allowed_zones": list(policy.allowed_zones),
                    "bytes_out": fresh,
                    "since": window_start.isoformat(),
                    "until": now.isoformat(),
                },
                connection=connection,
            )
            raised.append(alert)
    return raised


def analyse_recent() -> int:
    """Analyse every connection with telemetry in the lookback window now, in this process (the
    demo seed uses it so its injected anomalies are alerts on first start). Returns the findings
    raised (a repeat on an open alert counts)."""
    since = timezone.now() - timedelta(seconds=settings.SECURITY_NETWORK_LOOKBACK_SECONDS)
    ids = TelemetrySample.objects.filter(time__gte=since).values("connection_id").distinct()
    return sum(
        len(connection_analyse(connection))
        for connection in Connection.objects.select_related("organization").filter(pk__in=ids).order_by("pk")
    )
