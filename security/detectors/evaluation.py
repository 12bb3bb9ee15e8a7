"""Quality measurements of the detectors (``manage.py evaluate_detectors``).

* prompt injection: balanced accuracy, true/false-positive rates and latency on a labelled
  JSON-lines file (default ``security/data/prompt-injection/dev.jsonl``);
* sensitive data and secrets: entity-level precision and recall on ``security/data/entities.jsonl``,
  where a finding counts only if its category, start and end all equal an expected entity.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from security.detectors import DETECTORS, ScanInput, scan
from security.detectors.injection_model import load_rows, rates
from security.detectors.training import row_kind

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEV_FILE = DATA_DIR / "prompt-injection" / "dev.jsonl"
ENTITIES_FILE = DATA_DIR / "entities.jsonl"
ENTITY_DETECTORS = ("sensitive_data", "secrets")


@dataclass
class InjectionReport:
    rows: int
    balanced_accuracy: float
    tpr: float
    fpr: float
    p50_ms: float
    p99_ms: float
    errors_by_source: Counter = field(default_factory=Counter)
    as_prompt: dict[str, float] = field(default_factory=dict)


def evaluate_injection(path: Path = DEV_FILE, *, limit: int | None = None) -> InjectionReport:
    detector = DETECTORS["prompt_injection"]
    detector.model  # noqa: B018  (load the model before timing)
    rows = load_rows(path)[:limit]
    labels = [int(row["label"] == "injection") for row in rows]
    flags, prompt_flags, timings = [], [], []
    for row in rows:
        start = time.perf_counter()
        findings = detector.scan(ScanInput(row["text"], row_kind(row)), options={})
        timings.append((time.perf_counter() - start) * 1000)
        flags.append(bool(findings))
        if row_kind(row) == "prompt":
            prompt_flags.append(bool(findings))
        else:
            prompt_flags.append(bool(detector.scan(ScanInput(row["text"], "prompt"), options={})))
    result = rates(flags, labels)
    errors = Counter(
        f"{row['source'].split(':')[0]} {row['label']}"
        for row, flag, label in zip(rows, flags, labels, strict=True)
        if flag != bool(label)
    )
    timings.sort()
    return InjectionReport(
        rows=len(rows),
        balanced_accuracy=result["balanced_accuracy"],
        tpr=result["tpr"],
        fpr=result["fpr"],
        p50_ms=statistics.median(timings) if timings else 0.0,
        p99_ms=timings[min(len(timings) - 1, int(len(timings) * 0.99))] if timings else 0.0,
        errors_by_source=errors,
        as_prompt=rates(prompt_flags, labels),
    )


@dataclass
class EntityScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class EntityReport:
    cases: int
    overall: EntityScore
    by_category: dict[str, EntityScore]
    by_split: dict[str, EntityScore]
    mistakes: list[str]


def evaluate_entities(path: Path = ENTITIES_FILE) -> EntityReport:
    overall, by_category, by_split, mistakes = EntityScore(), {}, {}, []
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for case in cases:
        text = case["text"]
        expected = {(e["category"], e["start"], e["end"]) for e in case["entities"]}
        found = {(f.category, f.start, f.end) for f in scan(ScanInput(text, "prompt"), enabled=ENTITY_DETECTORS)}
        split = by_split.setdefault(case.get("split", "all"), EntityScore())
        for outcome, items in (("tp", expected & found), ("fp", found - expected), ("fn", expected - found)):
            for category, start, end in items:
                for score in (overall, split, by_category.setdefault(category, EntityScore())):
                    setattr(score, outcome, getattr(score, outcome) + 1)
                if outcome != "tp":
                    label = "false positive" if outcome == "fp" else "missed"
                    mistakes.append(f"{label} {category} {text[start:end][:12]!r}… in case {case.get('note', '')!r}")
    return EntityReport(len(cases), overall, dict(sorted(by_category.items())), by_split, mistakes)
