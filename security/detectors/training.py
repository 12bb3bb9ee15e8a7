"""Building the injection model artefact from labelled data (``manage.py train_injection_model``).

The decision threshold is chosen on out-of-fold predictions of the training set (k-fold
cross-validation), never on the dev set: the dev set stays a measurement.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

from security.detectors.injection_model import (
    Model,
    Settings,
    choose_threshold,
    cross_validate,
    document_features,
    features,
    load_rows,
    rates,
    train,
    within_budget,
)
from security.detectors.normalize import normalised_sentences
from security.detectors.prompt_injection import Reading, rule_hits

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "prompt-injection"
TRAIN_FILE = DATA_DIR / "train.jsonl"
DEV_FILE = DATA_DIR / "dev.jsonl"
MAX_FPR = 0.015  # keep a margin under the 2 % target when choosing the threshold
MIN_SENTENCE = 20
# Rows of these sources are documents (e-mails, Stack Overflow answers) that an assistant reads
# as retrieved content: the detector sees them as kind "context" and scores their sentences too.
DOCUMENT_SOURCES = ("microsoft/BIPIA:",)


def row_kind(row: dict) -> str:
    return "context" if row.get("source", "").startswith(DOCUMENT_SOURCES) else "prompt"


def rules_flag(text: str, kind: str = "prompt") -> bool:
    """Whether any rule fires on a text (what the detector checks first)."""
    return bool(rule_hits(Reading.of(text), indirect=kind == "context"))


def benign_sentences(rows: list[dict], settings: Settings) -> list[tuple[int, list[int], int]]:
    """Each sentence of a benign multi-sentence text, as a negative example of its own.

    The detector scores the sentences of retrieved content one by one; without these the model
    would only have seen whole documents and would over-read an ordinary sentence of a mail.
    """
    found = []
    for index, row in enumerate(rows):
        if row["label"] != "benign" or len(row["text"]) < 200:
            continue
        sentences = normalised_sentences(row["text"])
        if len(sentences) > 1:
            found += [(index, sorted(features(s, settings)), 0) for s in sentences if len(s) >= MIN_SENTENCE]
    return found


def hidden_instructions(rows: list[dict], *, min_chars: int = 12) -> list[tuple[int, str]]:
    """Instructions planted in documents: the text an injection row adds to a benign twin.

    Indirect-injection data pairs a clean document (benign) with a copy into which an instruction
    was inserted (injection). A twin shares its first or last 60 characters with the copy; what
    the copy adds is the instruction itself, a cleaner positive example than the whole document.
    """
    twins: dict[str, list[str]] = {}
    for row in rows:
        if row["label"] == "benign" and len(row["text"]) >= 200:
            text = row["text"].strip()
            twins.setdefault("^" + text[:60], []).append(text)
            twins.setdefault("$" + text[-60:], []).append(text)
    found = []
    for index, row in enumerate(rows):
        text = row["text"].strip()
        if row["label"] != "injection" or len(text) < 200:
            continue
        candidates = twins.get("^" + text[:60], []) + twins.get("$" + text[-60:], [])
        if not candidates:
            continue
        clean = max(candidates, key=lambda c: difflib.SequenceMatcher(None, c, text, autojunk=False).quick_ratio())
        matcher = difflib.SequenceMatcher(None, clean, text, autojunk=False)
        added = " ".join(text[j1:j2] for op, _, _, j1, j2 in matcher.get_opcodes() if op in {"insert", "replace"})
        if len(added.strip()) >= min_chars:
            found.append((index, added.strip()))
    return found


def twin_groups(rows: list[dict]) -> list[int]:
    """A group id per row; texts sharing their first or last 60 characters (a document and its
    copy with a planted instruction) share one, so cross-validation never splits them."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        text = row["text"].strip()
        if len(text) < 200:
            continue
        for key in ("^" + text[:60], "$" + text[-60:]):
            if key in first_seen:
                parent[root(index)] = root(first_seen[key])
            else:
                first_seen[key] = index
    return [root(i) for i in range(len(rows))]


def build_model(
    train_path: Path = TRAIN_FILE, *, settings: Settings | None = None, folds: int = 5, limit: int | None = None
) -> Model:
    """Train on ``train_path`` (the first ``limit`` rows if given) and pick the threshold by CV."""
    settings = settings or Settings()
    rows = load_rows(train_path)[:limit]
    normalised = [within_budget(normalised_sentences(row["text"])) for row in rows]
    documents = [document_features(sentences, settings) for sentences in normalised]
    sentences = [
        [features(s, settings) for s in doc if len(s) >= MIN_SENTENCE]
        if row_kind(row) == "context" and len(doc) > 1
        else []
        for row, doc in zip(rows, normalised, strict=True)
    ]
    labels = [int(row["label"] == "injection") for row in rows]
    forced = [rules_flag(row["text"], row_kind(row)) for row in rows]
    planted = [
        (index, document_features(normalised_sentences(text), settings), 1) for index, text in hidden_instructions(rows)
    ]
    extra = planted + benign_sentences(rows, settings)
    oof = cross_validate(documents, labels, settings, folds, sentences=sentences, extra=extra, groups=twin_groups(rows))
    threshold = choose_threshold(oof, labels, forced, max_fpr=MAX_FPR)
    cv = rates([f or p >= threshold for p, f in zip(oof, forced, strict=True)], labels)
    model = train([*documents, *(row for _, row, _ in extra)], [*labels, *(label for _, _, label in extra)], settings)
    model.threshold = threshold
    model.meta = {
        "trained_on": train_path.name,
        "train_sha256": hashlib.sha256(train_path.read_bytes()).hexdigest(),
        "rows": len(rows),
        "planted_instructions": len(planted),
        "sentence_negatives": len(extra) - len(planted),
        "folds": folds,
        "cv": {key: round(value, 4) for key, value in cv.items()},
    }
    return model
