"""The quality command and the labelled entity set it reads."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from security.detectors.evaluation import ENTITIES_FILE, evaluate_entities


def test_entity_set_is_well_formed_and_has_tricky_negatives():
    cases = [json.loads(line) for line in ENTITIES_FILE.read_text(encoding="utf-8").splitlines()]
    assert len(cases) >= 300
    negatives = [case for case in cases if not case["entities"]]
    assert len(negatives) >= 80
    for case in cases:
        for entity in case["entities"]:
            assert 0 <= entity["start"] < entity["end"] <= len(case["text"])
    assert {case["split"] for case in cases} == {"tuning", "holdout"}


def test_entity_scores_count_a_wrong_span_as_a_miss_and_a_false_positive(tmp_path):
    path = tmp_path / "entities.jsonl"
    cases = [
        {"text": "mail jane@acme.io now", "entities": [{"category": "pii.email", "start": 5, "end": 17}]},
        {"text": "mail jane@acme.io now", "entities": [{"category": "pii.email", "start": 5, "end": 12}]},
        {"text": "version 1.2.3.4", "entities": []},
    ]
    path.write_text("\n".join(json.dumps(case) for case in cases), encoding="utf-8")
    report = evaluate_entities(path)
    assert (report.overall.tp, report.overall.fp, report.overall.fn) == (1, 1, 1)
    assert report.overall.precision == 0.5
    assert report.overall.recall == 0.5


def test_evaluate_command_prints_every_figure_with_its_target():
    out = io.StringIO()
    call_command("evaluate_detectors", limit=60, stdout=out)
    text = out.getvalue()
    for phrase in (
        "balanced accuracy",
        "false-positive rate",
        "latency per scan",
        "precision",
        "recall",
        "split holdout",
    ):
        assert phrase in text
    assert "target >= 0.98" in text


def test_evaluate_command_reports_a_missing_file_as_an_error(tmp_path):
    with pytest.raises(CommandError):
        call_command("evaluate_detectors", entities_file=tmp_path / "missing.jsonl", limit=5, stdout=io.StringIO())


def test_train_command_refuses_nonsense_options():
    with pytest.raises(CommandError, match="folds"):
        call_command("train_injection_model", folds=1, stdout=io.StringIO())
