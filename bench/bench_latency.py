"""Latency model benchmarks: how far off the shipped estimate is on held-out pairs, and what it costs.

The accuracy figures are not timings: they are the absolute percentage errors against the measured
P95 round trips in ``fabric/data/latency_rtt_ms.csv`` (Microsoft Azure network round-trip latency
statistics, CC BY 4.0), on the pairs the shipped fit did not see (the split recorded in
``fabric/data/latency_model.json``). No database is used.
"""

from __future__ import annotations

import csv
import itertools
import json

from bench.runner import Figure, benchmark, latency_figures, measure
from fabric.latency import MODEL_PATH, metro_rtt, shipped_params
from fabric.latency_fit import baseline_fit, heldout_errors, observations_load, observations_split
from fabric.models import Metro
from fabric.services import METROS_CSV


@benchmark(
    "fabric.latency.held_out",
    target=["model.median <= 8 %", "model.p90 <= 25 %"],
)
def latency_held_out():
    """Held-out absolute % error (median, p90): light-in-fibre floor, fixed delay + multiplier, shipped model."""
    split_doc = json.loads(MODEL_PATH.read_text(encoding="utf-8"))["split"]
    split = observations_split(observations_load(), seed=split_doc["seed"], test_fraction=split_doc["test_fraction"])
    errors = heldout_errors(split, shipped_params(), baseline_fit(split.train))
    return [
        Figure(f"{name}.{quantile}", round(value, 2), "%")
        for name, summary in errors.items()
        for quantile, value in (("median", summary.median_pct), ("p90", summary.p90_pct))
    ]


@benchmark("fabric.latency.metro_matrix", target="p95 <= 150 ms")
def latency_metro_matrix():
    """metro_rtt for every pair of the 79 metros (3,081 pairs, what a full latency matrix page computes)."""
    with METROS_CSV.open(newline="", encoding="utf-8") as handle:
        metros = [
            Metro(code=row["code"], name=row["name"], latitude=float(row["lat"]), longitude=float(row["lon"]))
            for row in csv.DictReader(handle)
        ]
    pairs = list(itertools.combinations(metros, 2))

    def matrix(_):
        for a, b in pairs:
            metro_rtt(a, b)

    samples = measure(matrix, n=20, warmup=2, expect=None)
    return [*latency_figures(samples), Figure("pairs", len(pairs), "pairs")]
