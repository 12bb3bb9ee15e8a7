"""Prompt injection and jailbreak, direct or hidden in retrieved context and tool output.

Two signals, both reported with their reason:

* explainable rules (:mod:`security.detectors.injection_rules`), each with its span;
* the offline-trained model (:mod:`security.detectors.injection_model`), which scores the whole
  text; in retrieved context and tool output it also scores every sentence on its own, because
  one planted instruction is diluted in a long document. A flagged text's span is narrowed to
  its most suspicious sentence when that sentence is suspicious on its own.

Before either reads a text it is normalised sentence by sentence
(:mod:`security.detectors.normalize`): invisible characters dropped, homoglyphs and leetspeak
undone, spaced-out letters joined. Text smuggled in Unicode tag characters and base64 / hex
payloads that decode to readable text are scanned as well, and reported at the span of the
encoded run. Options: ``threshold`` (0..1, default: the threshold shipped with the model).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from security.detectors.base import Finding, ScanInput, make_excerpt
from security.detectors.injection_model import Model, sentences_ids, within_budget
from security.detectors.injection_rules import Rule, match_rules
from security.detectors.normalize import decoded_payloads, normalize_spans, segments, tag_runs

NAME = "prompt_injection"
INDIRECT_KINDS = frozenset({"context", "tool_output"})
MAX_DEPTH = 2  # payloads inside decoded payloads are followed this deep
MIN_SENTENCE = 20  # shorter sentences are not scored on their own


@dataclass(frozen=True, slots=True)
class Reading:
    """A text cut into sentences, each normalised, and the normalised document they make."""

    spans: list[tuple[int, int]]
    normalised: list[str]
    document: str  # the normalised sentences joined by newlines
    offsets: list[int]  # where each normalised sentence starts in ``document``

    @classmethod
    def of(cls, text: str) -> Reading:
        spans = segments(text)
        normalised = normalize_spans(text, spans)
        offsets, position = [], 0
        for sentence in normalised:
            offsets.append(position)
            position += len(sentence) + 1
        return cls(spans, normalised, "\n".join(normalised), offsets)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text behind ``document[start:end]``."""
        first = bisect_right(self.offsets, start) - 1
        last = bisect_right(self.offsets, max(start, end - 1)) - 1
        if first == last and len(self.normalised[first]) == self.spans[first][1] - self.spans[first][0]:
            base = self.spans[first][0] - self.offsets[first]  # normalisation kept the length: exact
            return base + start, base + end
        return self.spans[first][0], self.spans[last][1]


def rule_hits(reading: Reading, *, indirect: bool) -> list[tuple[Rule, int, int]]:
    """Each rule match as (rule, start, end) in the original text."""
    return [
        (rule, *reading.original_span(*match.span()))
        for rule, match in match_rules(reading.document, indirect=indirect)
    ]


def _severity(score: float, threshold: float, indirect: bool) -> str:
    if indirect and score >= max(threshold, 0.8):
        return "CRITICAL"
    return "HIGH" if score >= max(threshold + 0.1, 0.8) else "MEDIUM"


class PromptInjectionDetector:
    name = NAME

    @cached_property
    def model(self) -> Model:
        return Model.load()

    def scan(self, item: ScanInput, *, options: Mapping[str, Any]) -> list[Finding]:
        # Without an explicit threshold, the model's probability is compared with the threshold
        # chosen in training and every rule counts; an explicit one applies to every score.
        explicit = options.get("threshold")
        threshold = float(explicit) if explicit is not None else None
        indirect = item.kind in INDIRECT_KINDS
        findings = self._scan_text(item.text, None, indirect, threshold, depth=0)
        return [replace(f, excerpt=make_excerpt(item.text, f.start, f.end)) for f in findings]

    def _scan_text(
        self, text: str, outer: tuple[int, int, str] | None, indirect: bool, threshold: float | None, *, depth: int
    ) -> list[Finding]:
        """Findings in ``text``. ``outer`` (start, end, encoding) is set for a decoded payload:
        its findings are all reported at the span of the encoded run."""
        findings: list[Finding] = []
        model_threshold = self.model.threshold if threshold is None else threshold
        rule_threshold = 0.0 if threshold is None else threshold

        def add(start: int, end: int, category: str, score: float, rule: str, *, by_model: bool = False) -> None:
            if outer is not None:
                start, end, rule = outer[0], outer[1], f"{outer[2]}: {rule}"
            if score < (model_threshold if by_model else rule_threshold):
                return
            if not any((f.start, f.end, f.rule) == (start, end, rule) for f in findings):
                severity = _severity(score, model_threshold, indirect)
                findings.append(Finding(NAME, category, severity, round(score, 4), start, end, rule, ""))

        reading = Reading.of(text)
        for rule, start, end in rule_hits(reading, indirect=indirect):
            add(start, end, rule.category, rule.score, f"{rule.id}: {rule.reason}")
        if not findings and reading.spans:
            self._model_finding(reading, indirect, model_threshold, add)
        if depth < MAX_DEPTH:
            findings.extend(self._hidden(text, outer, indirect, threshold, depth))
        return findings

    def _model_finding(self, reading: Reading, indirect: bool, threshold: float, add) -> None:
        model = self.model
        sentences = within_budget(reading.normalised)
        ids = sentences_ids(sentences, model.settings)
        probability = model.probability_of_ids(model.distinct(ids.document()))
        whole = (reading.spans[0][0], reading.spans[-1][1])
        if probability < threshold and not (indirect and len(sentences) > 1):
            return
        best, best_span = 0.0, whole
        if len(sentences) > 1:
            for index, (span, sentence) in enumerate(zip(reading.spans, sentences, strict=False)):
                if len(sentence) < MIN_SENTENCE:
                    continue
                if (p := model.probability_of_ids(model.distinct(ids.sentence(index)))) > best:
                    best, best_span = p, span
        if indirect:
            # One planted instruction is diluted in a long document's score: in retrieved
            # content a sentence suspicious on its own is enough.
            probability = max(probability, best)
        if probability >= threshold:
            span = best_span if best >= threshold else whole
            add(
                *span, "prompt_injection", probability, f"model: injection probability {probability:.2f}", by_model=True
            )

    def _hidden(
        self, text: str, outer: tuple[int, int, str] | None, indirect: bool, threshold: float | None, depth: int
    ) -> list[Finding]:
        """Findings in text smuggled as Unicode tag characters or base64 / hex payloads."""
        found: list[Finding] = []
        for run_start, run_end, hidden in tag_runs(text):
            start, end = outer[:2] if outer else (run_start, run_end)
            if len(hidden.strip()) >= 8 and (threshold is None or threshold <= 0.9):
                found.append(
                    Finding(
                        NAME, "prompt_injection", "HIGH", 0.9, start, end, "text hidden in Unicode tag characters", ""
                    )
                )
            found.extend(self._scan_text(hidden, (start, end, "tag characters"), indirect, threshold, depth=depth + 1))
        for payload in decoded_payloads(text):
            start, end = outer[:2] if outer else (payload.start, payload.end)
            via = (start, end, f"{payload.encoding} payload")
            found.extend(self._scan_text(payload.text, via, indirect, threshold, depth=depth + 1))
        return found
