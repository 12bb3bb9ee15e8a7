"""The advisor's covering index (migration 0004): it holds every offering column the judging statement
reads (so PostgreSQL can read the category's offerings from the index alone), and the advice is the same
with and without it."""

import re

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from fabric.services import metros_load
from marketplace import advisor

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="INCLUDE indexes are PostgreSQL's"),
]

QUESTIONS = [
    {"category": "GPU_CLOUD", "data_metro": "FR", "accelerator": "H100", "min_gpus": 8, "allowed_zones": ["EU"]},
    {"category": "GPU_CLOUD", "data_metro": "SG", "max_monthly_cost": 20_000, "latency_budget_ms": 150},
    {"category": "MODEL_VENDOR", "data_metro": "NY"},
]


@pytest.fixture
def catalog():
    metros_load()
    call_command("generate_catalog", offerings=300, seed=5, stdout=open("/dev/null", "w"))  # noqa: SIM115


def _answer(advice: advisor.Advice):
    return (
        [(p.offering.pk, p.access_point.pk, p.total_monthly) for p in advice.placements],
        advice.candidates,
        [(e.offering.pk, e.code, e.reason) for e in advice.excluded],
        advice.excluded_counts,
    )


@pytest.mark.parametrize("question", QUESTIONS)
def test_the_index_holds_every_offering_column_the_judging_statement_reads(question, catalog):
    """An index-only scan needs every column: one added to the statement must be added to the index."""
    req = advisor.requirements(**question)
    sql, _ = advisor._judged_sql(req, advisor.legs_from(req), limit=20, excluded_limit=200)
    read = set(re.findall(r"\bo\.(\w+)", sql))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indexrelid = 'offering_advisor_cover'::regclass"
        )
        covered = {name for (name,) in cursor.fetchall()}
    assert {"category", "status", "id", "price_amount"} <= read
    assert read <= covered, f"not in the index: {sorted(read - covered)}"


def test_the_advice_is_the_same_without_the_index(catalog):
    requirements = [advisor.requirements(**question) for question in QUESTIONS]
    with_index = [_answer(advisor.advise(req)) for req in requirements]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX offering_advisor_cover")
        without = [_answer(advisor.advise(req)) for req in requirements]
        transaction.set_rollback(True)
    assert with_index == without
    assert all(candidates for _, candidates, _, _ in with_index)
