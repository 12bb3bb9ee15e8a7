"""The one small interface every content detector implements.

A detector is a plain object with a ``name`` and a ``scan`` method: it reads one
:class:`ScanInput` and returns :class:`Finding` objects with span offsets into the
scanned text. Detectors are pure Python, load their data once at import time and
never touch the database or the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
KINDS = ("prompt", "response", "tool_input", "tool_output", "context")

# Findings of these detectors cover data that must never be stored in clear.
SENSITIVE_DETECTORS = frozenset({"sensitive_data", "secrets"})

EXCERPT_CONTEXT = 32
MASK_CHAR = "*"


@dataclass(frozen=True, slots=True)
class Finding:
    detector: str  # "prompt_injection" | "sensitive_data" | "secrets" | "urls" | "unsafe_code"
    category: str  # e.g. "prompt_injection", "pii.email", "secret.aws_access_key", "url.exfiltration"
    severity: str  # "LOW" | "MEDIUM" | "HIGH" | "CRITICAL"
    score: float  # 0..1 confidence
    start: int  # span offsets into the scanned text (end exclusive)
    end: int
    rule: str  # rule id or short human-readable reason
    excerpt: str  # redacted excerpt around the span, safe to store

    @property
    def sensitive(self) -> bool:
        """True when the span itself is data that must be masked before storage."""
        return self.detector in SENSITIVE_DETECTORS


@dataclass(frozen=True, slots=True)
class ScanInput:
    text: str
    kind: str  # "prompt" | "response" | "tool_input" | "tool_output" | "context"
    tool_name: str = ""


class Detector(Protocol):
    name: str

    def scan(self, item: ScanInput, *, options: Mapping[str, Any]) -> list[Finding]: ...


def mask_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """Replace every character inside ``spans`` by ``*``, keeping the length (offsets stay valid)."""
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        for i in range(max(start, 0), min(end, len(chars))):
            if not chars[i].isspace():
                chars[i] = MASK_CHAR
    return "".join(chars)


def make_excerpt(
    text: str,
    start: int,
    end: int,
    *,
    mask: Sequence[tuple[int, int]] = (),
    context: int = EXCERPT_CONTEXT,
    max_span: int = 160,
) -> str:
    """A short, single-line excerpt around ``[start, end)`` with ``mask`` spans hidden.

    Long spans are cut in the middle so an excerpt stays small whatever was matched.
    """
    lo = max(0, start - context)
    hi = min(len(text), end + context)
    masked = mask_spans(text[lo:hi], [(s - lo, e - lo) for s, e in mask if e > lo and s < hi])
    head, body, tail = masked[: start - lo], masked[start - lo : end - lo], masked[end - lo :]
    if len(body) > max_span:
        body = body[: max_span // 2] + "…" + body[-max_span // 2 :]
    excerpt = ("…" if lo else "") + head + body + tail + ("…" if hi < len(text) else "")
    return " ".join(excerpt.split())
