"""Content detectors for AI runtime scanning.

``scan`` runs the enabled detectors over one :class:`ScanInput` and returns their
findings ordered by position, each with an excerpt in which every sensitive span
(personal data, secrets) of the whole text is masked. ``redact`` masks those spans
in the text itself, keeping its length so that finding offsets stay valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from security.detectors.base import (
    KINDS,
    SENSITIVE_DETECTORS,
    SEVERITIES,
    Detector,
    Finding,
    ScanInput,
    make_excerpt,
    mask_spans,
)
from security.detectors.prompt_injection import PromptInjectionDetector
from security.detectors.secrets import GENERIC_SECRET, SecretsDetector
from security.detectors.sensitive_data import SensitiveDataDetector
from security.detectors.unsafe_code import UnsafeCodeDetector
from security.detectors.urls import UrlDetector

__all__ = [
    "DETECTORS",
    "KINDS",
    "SEVERITIES",
    "Detector",
    "Finding",
    "ScanInput",
    "redact",
    "scan",
]

DETECTORS: dict[str, Detector] = {
    detector.name: detector
    for detector in (
        PromptInjectionDetector(),
        SensitiveDataDetector(),
        SecretsDetector(),
        UrlDetector(),
        UnsafeCodeDetector(),
    )
}


def scan(
    item: ScanInput,
    *,
    enabled: Iterable[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """Run the ``enabled`` detectors (all when None) over ``item``.

    Raises ``ValueError`` for an unknown detector name.
    """
    names = list(DETECTORS) if enabled is None else list(dict.fromkeys(enabled))
    unknown = [name for name in names if name not in DETECTORS]
    if unknown:
        raise ValueError(f"Unknown detector(s): {', '.join(sorted(unknown))}.")
    options = options or {}
    findings: list[Finding] = []
    for name in names:
        findings.extend(DETECTORS[name].scan(item, options=options.get(name) or {}))
    findings = _drop_generic_overlaps(findings)
    sensitive = _sensitive_spans(findings)
    if sensitive:
        # A detector only masks its own spans; re-cut every excerpt so none shows
        # another detector's secret or card number in its context window.
        findings = [replace(f, excerpt=make_excerpt(item.text, f.start, f.end, mask=sensitive)) for f in findings]
    findings.sort(key=lambda f: (f.start, f.end, f.detector, f.category))
    return findings


def redact(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with every sensitive span (personal data, secrets) masked by ``*``, same length."""
    return mask_spans(text, _sensitive_spans(findings))


def _drop_generic_overlaps(findings: list[Finding]) -> list[Finding]:
    """A generic high-entropy finding yields to a specific one on the same text (an IBAN, a card)."""
    specific = [f for f in findings if f.detector in SENSITIVE_DETECTORS and f.category != GENERIC_SECRET]
    return [
        f
        for f in findings
        if f.category != GENERIC_SECRET or not any(s.start < f.end and f.start < s.end for s in specific)
    ]


def _sensitive_spans(findings: Sequence[Finding]) -> list[tuple[int, int]]:
    return [(f.start, f.end) for f in findings if f.detector in SENSITIVE_DETECTORS]
