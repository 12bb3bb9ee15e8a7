"""Network detection algorithms on synthetic series (no database): a spike is found, a slow leak is
found by CUSUM, and a busy but ordinary day (daily cycle plus noise) raises nothing."""

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from security.network import DetectionConfig, analyse, detect_slow_leak, detect_spikes

START = datetime(2026, 11, 2, tzinfo=UTC)
STEP = timedelta(minutes=5)
DAY = 288  # points of 5 minutes
CONFIG = DetectionConfig()


@dataclass(frozen=True)
class P:
    time: datetime
    bps_in: float
    bps_out: float


def series(n, *, base_out=40e6, ratio=0.3, daily_amplitude=0.5, noise=0.08, seed=7, out_extra=None):
    """``n`` points of a link whose volume follows a daily cycle; egress is ``ratio`` of ingress plus
    noise. ``out_extra(i, out)`` adds what an attacker sends."""
    rng = random.Random(seed)
    points = []
    for i in range(n):
        volume = 1 + daily_amplitude * math.sin(2 * math.pi * i / DAY)
        bps_in = base_out / ratio * volume * (1 + rng.gauss(0, noise))
        bps_out = base_out * volume * (1 + rng.gauss(0, noise))
        if out_extra:
            bps_out += out_extra(i, bps_out)
        points.append(P(START + i * STEP, max(bps_in, 0.0), max(bps_out, 0.0)))
    return points


@pytest.mark.parametrize("seed", range(5))
def test_an_ordinary_week_with_a_daily_cycle_raises_nothing(seed):
    assert analyse(series(7 * DAY, seed=seed), CONFIG) == []


def test_a_flat_quiet_link_raises_nothing():
    points = [P(START + i * STEP, 1e6, 2e5) for i in range(DAY)]
    assert analyse(points, CONFIG) == []


def test_an_egress_spike_is_found_with_its_numbers():
    points = series(DAY, out_extra=lambda i, out: 6 * out if i in (200, 201, 202) else 0)
    [anomaly] = analyse(points, CONFIG)
    assert anomaly.kind == "spike"
    assert anomaly.window_start == points[200].time
    assert anomaly.window_end == points[202].time
    assert anomaly.points == 3
    assert anomaly.observed == max(p.bps_out for p in points[200:203])
    assert 4 < anomaly.ratio < 10  # about 7 times the usual egress
    assert anomaly.deviation >= CONFIG.spike_z
    evidence = anomaly.evidence()
    assert evidence["baseline"] == pytest.approx(anomaly.baseline, rel=1e-3)
    assert evidence["window_start"] == points[200].time.isoformat()


def test_two_separate_spikes_are_two_findings_and_the_first_does_not_hide_the_second():
    points = series(DAY, out_extra=lambda i, out: 5 * out if i in (100, 180) else 0)
    assert [a.observed_at for a in detect_spikes(points, CONFIG)] == [points[100].time, points[180].time]


def test_a_spike_during_warm_up_is_not_judged():
    points = series(DAY, out_extra=lambda i, out: 8 * out if i == 3 else 0)
    assert detect_spikes(points, CONFIG) == []


def test_a_small_absolute_blip_on_an_idle_link_is_not_a_spike():
    # 10 kbit/s to 100 kbit/s is ten times the baseline but far below the absolute floor.
    points = [P(START + i * STEP, 50e3, 10e3 if i != 150 else 100e3) for i in range(DAY)]
    assert detect_spikes(points, CONFIG) == []


def test_a_slow_leak_is_found_by_cusum_and_not_as_a_spike():
    # From point 150 on, an extra 25 % of the usual egress leaves: never a spike, always there.
    points = series(DAY, out_extra=lambda i, out: 0.25 * out if i >= 150 else 0)
    assert detect_spikes(points, CONFIG) == []
    leak = detect_slow_leak(points, CONFIG)
    assert leak is not None
    assert leak.kind == "slow_leak"
    assert leak.metric == "egress_ratio"
    assert points[150].time <= leak.window_start <= points[175].time
    assert leak.observed > leak.baseline
    assert leak.deviation > CONFIG.cusum_h
    assert [a.kind for a in analyse(points, CONFIG)] == ["slow_leak"]


def test_a_slow_ramp_is_found():
    points = series(DAY, out_extra=lambda i, out: out * max(0, i - 120) / 200)
    leak = detect_slow_leak(points, CONFIG)
    assert leak is not None
    assert leak.observed_at < points[-1].time


def test_egress_alone_is_watched_on_a_link_without_ingress():
    rng = random.Random(3)
    points = [P(START + i * STEP, 0.0, 10e6 * (1 + rng.gauss(0, 0.05)) * (1.3 if i >= 100 else 1)) for i in range(DAY)]
    leak = detect_slow_leak(points, CONFIG)
    assert leak is not None
    assert leak.metric == "bps_out"


def test_a_series_shorter_than_the_warm_up_gives_no_verdict():
    points = series(CONFIG.warmup_points, out_extra=lambda i, out: 10 * out)
    assert analyse(points, CONFIG) == []


def test_thresholds_come_from_the_configuration():
    points = series(DAY, daily_amplitude=0, out_extra=lambda i, out: 0.7 * out if i == 200 else 0)
    assert detect_spikes(points, CONFIG) == []  # 1.7 times the baseline: below the default ratio of 2
    sensitive = DetectionConfig(spike_z=4.0, spike_min_ratio=1.5)
    assert [a.observed_at for a in detect_spikes(points, sensitive)] == [points[200].time]
