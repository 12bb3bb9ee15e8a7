"""The placement advisor over a generated catalog of 100,000 offerings (``generate_catalog --seed 7``).

``marketplace.advisor.100k`` times ``marketplace.advisor.advise`` (what the advisor page and
``POST /api/v1/advisor/`` run) in-process, i.e. server time without the network, for three
representative questions in turn: 8x H100 with the data in Frankfurt, a 20 ms budget and EU zones
only; any GPU with the data in Singapore within 20,000 USD a month; model vendors with the data in
New York. Its figures: p50/p95 over the three, each question's own p95, and the SQL statements per
answer, requirements included (a constant 9 at most: the data metro and zones, the metros, one
judging statement in its own transaction with JIT off, the two pages' offerings and access points).

Run it on its own database, e.g. ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/hub_bench_advisor``
(the runner empties it first; the catalog is generated on the first run, which takes minutes).
"""

from __future__ import annotations

import functools

from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench import data
from bench.runner import BenchmarkError, Figure, benchmark, latency_figures, measure, percentile
from marketplace import advisor
from marketplace.models import Offering

OFFERINGS = 100_000
SEED = 7
QUESTIONS = {
    "h100_fr": {
        "category": "GPU_CLOUD",
        "data_metro": "FR",
        "accelerator": "H100",
        "min_gpus": 8,
        "latency_budget_ms": 20,
        "allowed_zones": ["EU"],
    },
    "gpu_sg_budget": {"category": "GPU_CLOUD", "data_metro": "SG", "max_monthly_cost": 20_000},
    "models_ny": {"category": "MODEL_VENDOR", "data_metro": "NY"},
}
REQUESTS = 60


@functools.cache
def _catalog() -> None:
    if Offering.objects.count() < OFFERINGS:
        call_command("generate_catalog", offerings=OFFERINGS, seed=SEED, verbosity=0)
        data.analyze()


def _ask(name: str) -> advisor.Advice:
    return advisor.advise(advisor.requirements(**QUESTIONS[name]))


@benchmark("marketplace.advisor.100k", target=["p95 <= 300 ms", "queries <= 9"])
def advisor_100k():
    """Placement advisor over 100,000 offerings: three representative questions in turn (server time)."""
    if connection.vendor != "postgresql":
        raise BenchmarkError("The 100k advisor target is for PostgreSQL: set DATABASE_URL=postgres://...")
    _catalog()
    names = list(QUESTIONS)
    answers = {name: _ask(name) for name in names}
    if not all(answer.placements for answer in answers.values()):
        empty = [name for name, answer in answers.items() if not answer.placements]
        raise BenchmarkError(f"No offering ranked for {', '.join(empty)}: the timings would mean nothing.")
    samples = measure(lambda i: _ask(names[i % len(names)]), n=REQUESTS, warmup=len(names), expect=None)
    per_question = {name: samples[i :: len(names)] for i, name in enumerate(names)}
    queries = 0
    for name in names:
        with CaptureQueriesContext(connection) as captured:
            _ask(name)
        queries = max(queries, len(captured.captured_queries))
    return [
        *latency_figures(samples),
        *(Figure(f"{name}.p95", round(percentile(s, 95), 3), "ms") for name, s in per_question.items()),
        Figure("queries", queries, "queries"),
        *(Figure(f"{name}.candidates", answers[name].candidates, "offerings") for name in names),
    ]
