"""Fitting the latency model of :mod:`fabric.latency` to the measured round trips in ``data/latency_rtt_ms.csv``.

Pure Python: the model is linear in its parameters once a pair's route is known, so the fit is a
closed-form weighted least squares on the relative error ``(estimate - measured) / measured``.

Held-out errors come from holding out whole cities: a deterministic, seeded choice of cities is
removed from fitting, and every pair that touches one of them is a test pair. Both directions of a
pair always land on the same side, and a test pair always has at least one end the fit has never
seen, which is how the model is used (our metros are other sites than the measured regions).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fabric.latency import (
    MODEL_PATH,
    REGIONAL_KNOT_KM,
    LatencyParams,
    Route,
    backbone_route,
    estimate_rtt_ms,
    floor_rtt_ms,
    great_circle_km,
    shipped_params,
)

RTT_CSV = Path(__file__).resolve().parent / "data" / "latency_rtt_ms.csv"
DEFAULT_SEED = 0
DEFAULT_TEST_FRACTION = 0.25
PARAM_DECIMALS = 6
SOURCE = {
    "file": "fabric/data/latency_rtt_ms.csv",
    "title": "Microsoft, Azure network round-trip latency statistics",
    "document": "MicrosoftDocs/azure-docs:articles/networking/azure-network-latency.md "
    "(read from mbender-ms/azure-docs at 5b3e2055eddead4c24aac48156dad9f006268126)",
    "measure": "P95 RTT between 54 Azure regions, 30-day window ending 2026-07-30, directed pairs",
    "license": "CC BY 4.0",
    "attribution": "Source: Microsoft Azure network round-trip latency statistics (CC BY 4.0); "
    "reshaped to pairs and coordinates added by this project.",
}
FORMULA = (
    "estimate_ms = max(floor(km), fixed_ms"
    " + floor(regional_km) * (regional_inflation + regional_inflation_log_slope"
    " * ln(max(regional_km, regional_knot_km) / regional_knot_km))"
    " + floor(corridor_km) * corridor_inflation + corridor_ms * corridors);"
    " floor(d) = 2 * d / 204.19; km is the great circle, the rest comes from fabric.latency.backbone_route"
)


@dataclass(frozen=True)
class Observation:
    """One measured directed pair, with its great-circle distance and backbone route."""

    src: str
    dst: str
    km: float
    route: Route
    rtt_ms: float


@dataclass(frozen=True)
class Split:
    train: list[Observation]
    test: list[Observation]
    held_out: tuple[str, ...]


@dataclass(frozen=True)
class Baseline:
    """The plain fit the model has to beat: a fixed delay plus a multiple of the floor."""

    fixed_ms: float
    multiplier: float

    def estimate(self, km: float) -> float:
        return self.fixed_ms + self.multiplier * floor_rtt_ms(km)


@dataclass(frozen=True)
class ErrorSummary:
    """Absolute percentage errors over a set of pairs."""

    median_pct: float
    p90_pct: float
    pairs: int

    def as_dict(self) -> dict[str, float]:
        return {"median_ape_pct": round(self.median_pct, 2), "p90_ape_pct": round(self.p90_pct, 2), "pairs": self.pairs}


@dataclass(frozen=True)
class FitReport:
    seed: int
    test_fraction: float
    split: Split
    params: LatencyParams
    baseline: Baseline
    errors: dict[str, ErrorSummary]  # "floor", "baseline", "model": on the held-out pairs


def observations_load(path: Path = RTT_CSV) -> list[Observation]:
    """The measured pairs (``src_city,src_lat,src_lon,dst_city,dst_lat,dst_lon,rtt_ms,source``)."""
    observations = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            lat1, lon1 = float(row["src_lat"]), float(row["src_lon"])
            lat2, lon2 = float(row["dst_lat"]), float(row["dst_lon"])
            observations.append(
                Observation(
                    src=row["src_city"],
                    dst=row["dst_city"],
                    km=great_circle_km(lat1, lon1, lat2, lon2),
                    route=backbone_route(lat1, lon1, lat2, lon2),
                    rtt_ms=float(row["rtt_ms"]),
                )
            )
    return observations


def observations_split(observations: Sequence[Observation], *, seed: int, test_fraction: float) -> Split:
    """Hold out ``round(test_fraction * cities)`` whole cities, chosen by a seeded hash of their names.

    Train on the pairs between the other cities; test on every pair with a held-out end. The same
    seed always holds out the same cities, on any machine and Python version.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    cities = sorted({o.src for o in observations} | {o.dst for o in observations})
    count = min(max(1, round(test_fraction * len(cities))), len(cities) - 2)
    ranked = sorted(cities, key=lambda city: hashlib.sha256(f"{seed}:{city}".encode()).hexdigest())
    held_out = set(ranked[:count])
    train = [o for o in observations if o.src not in held_out and o.dst not in held_out]
    test = [o for o in observations if o.src in held_out or o.dst in held_out]
    return Split(train, test, tuple(sorted(held_out)))


def _relative_least_squares(rows: Sequence[Sequence[float]], targets: Sequence[float]) -> list[float]:
    """``beta`` minimising sum(((row . beta - target) / target) ** 2): normal equations, Gaussian elimination."""
    size = len(rows[0])
    matrix = [[0.0] * (size + 1) for _ in range(size)]
    for row, target in zip(rows, targets, strict=True):
        weight = 1.0 / target**2
        for i in range(size):
            matrix[i][size] += weight * row[i] * target
            for j in range(size):
                matrix[i][j] += weight * row[i] * row[j]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(matrix[r][col]))
        if abs(matrix[pivot][col]) < 1e-12:
            raise ValueError("The fit is singular: the training pairs cannot separate the parameters.")
        matrix[col], matrix[pivot] = matrix[pivot], matrix[col]
        for r in range(size):
            if r != col:
                factor = matrix[r][col] / matrix[col][col]
                for k in range(col, size + 1):
                    matrix[r][k] -= factor * matrix[col][k]
    return [matrix[i][size] / matrix[i][i] for i in range(size)]


def baseline_fit(train: Sequence[Observation]) -> Baseline:
    fixed_ms, multiplier = _relative_least_squares(
        [(1.0, floor_rtt_ms(o.km)) for o in train], [o.rtt_ms for o in train]
    )
    return Baseline(fixed_ms, multiplier)


def _model_row(route: Route) -> tuple[float, ...]:
    """The terms of the estimate that multiply each fitted parameter (see ``FORMULA``)."""
    regional = floor_rtt_ms(route.regional_km)
    log_distance = math.log(max(route.regional_km, REGIONAL_KNOT_KM) / REGIONAL_KNOT_KM)
    return (1.0, regional, regional * log_distance, floor_rtt_ms(route.corridor_km), float(route.corridors))


def model_fit(train: Sequence[Observation]) -> LatencyParams:
    """Fitted parameters, rounded to ``PARAM_DECIMALS`` (the rounded values are the ones evaluated and shipped)."""
    beta = _relative_least_squares([_model_row(o.route) for o in train], [o.rtt_ms for o in train])
    fixed_ms, inflation, slope, corridor_inflation, corridor_ms = (round(b, PARAM_DECIMALS) for b in beta)
    return LatencyParams(
        fixed_ms=fixed_ms,
        regional_inflation=inflation,
        regional_inflation_log_slope=slope,
        corridor_inflation=corridor_inflation,
        corridor_ms=corridor_ms,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ape_summary(estimate: Callable[[Observation], float], observations: Sequence[Observation]) -> ErrorSummary:
    errors = [abs(estimate(o) - o.rtt_ms) / o.rtt_ms * 100.0 for o in observations]
    return ErrorSummary(percentile(errors, 50), percentile(errors, 90), len(errors))


def heldout_errors(split: Split, params: LatencyParams, baseline: Baseline) -> dict[str, ErrorSummary]:
    """Floor, baseline and model errors on the held-out pairs of ``split``."""
    return {
        "floor": ape_summary(lambda o: floor_rtt_ms(o.km), split.test),
        "baseline": ape_summary(lambda o: baseline.estimate(o.km), split.test),
        "model": ape_summary(lambda o: estimate_rtt_ms(o.km, params, route=o.route), split.test),
    }


def latency_fit(
    *, seed: int = DEFAULT_SEED, test_fraction: float = DEFAULT_TEST_FRACTION, path: Path = RTT_CSV
) -> FitReport:
    """Split, fit the baseline and the model on the training pairs, measure both on the held-out pairs.

    Deterministic: the same data, seed and fraction give the same parameters and errors.
    """
    split = observations_split(observations_load(path), seed=seed, test_fraction=test_fraction)
    params = model_fit(split.train)
    baseline = baseline_fit(split.train)
    return FitReport(seed, test_fraction, split, params, baseline, heldout_errors(split, params, baseline))


def model_document(report: FitReport, *, fitted_on: datetime.date | None = None) -> dict:
    """The contents of ``latency_model.json`` for a fit."""
    split = report.split
    return {
        "model": "fabric.latency backbone-route estimate",
        "fitted_on": (fitted_on or datetime.date.today()).isoformat(),
        "formula": FORMULA,
        "params": report.params.as_dict(),
        "fit": "least squares on the relative error (estimate - measured) / measured, closed form, training pairs only",
        "data": SOURCE,
        "split": {
            "method": "hold out whole cities: the cities ranked first by sha256('<seed>:<city>') are held out; "
            "train on pairs between the other cities, test on every pair with a held-out end "
            "(both directions of a pair are always on the same side)",
            "seed": report.seed,
            "test_fraction": report.test_fraction,
            "held_out_cities": list(split.held_out),
            "train_pairs": len(split.train),
            "test_pairs": len(split.test),
        },
        "baseline": {
            "fixed_ms": round(report.baseline.fixed_ms, 4),
            "multiplier": round(report.baseline.multiplier, 4),
        },
        "errors_held_out": {name: summary.as_dict() for name, summary in report.errors.items()},
    }


def model_write(report: FitReport, path: Path = MODEL_PATH) -> None:
    """Write ``latency_model.json``; this process reloads it on next use, others when they restart."""
    path.write_text(json.dumps(model_document(report), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shipped_params.cache_clear()
