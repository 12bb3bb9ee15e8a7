"""Content detector benchmarks: every detector on a 2 KB text, in one process, no database.

The texts are built from the labelled prompts in ``security/data/prompt-injection/dev.jsonl``
(benign and injected, many languages) cut to 2,048 characters, each with an e-mail address, a
phone number, a card number, an AWS key, a URL and a shell command mixed in, so that every
detector has work to do. Every measured text is distinct and none was seen while warming up, so
the per-word feature cache of the injection model helps only as much as real vocabulary repeats.

``security.detectors.prompt_2kb`` scans them as prompts; ``security.detectors.context_2kb``
scans them as retrieved context, where the injection model also scores every sentence. Besides
the wall-clock p50/p95/p99 (the targets), ``cpu.p50``/``cpu.p99`` give the CPU time of the scanning
thread, which a loaded, shared machine does not inflate.
"""

from __future__ import annotations

import random
import time

from bench.runner import Figure, benchmark, latency_figures, measure
from security.detectors import DETECTORS, ScanInput, scan
from security.detectors.evaluation import DEV_FILE
from security.detectors.injection_model import load_rows

SIZE = 2_048
SAMPLES = 1_000
WARMUP = 200
EXTRAS = [
    "Please mail the invoice to jana.novak@example.org or call +44 20 7946 0958.",
    "Card 4242 4242 4242 4242 exp 04/27.",
    "aws_access_key_id = AKIAQYLPMN5HHHFPZAM2",
    "See https://docs.example.com/guide?page=2 and ![chart](https://img.example.net/c.png).",
    "Then run `rm -rf ./build && make dist` in the repo.",
    "Server 10.20.30.40 answered in 12 ms.",
]


def texts(count: int, *, seed: int) -> list[str]:
    """``count`` distinct texts of exactly ``SIZE`` characters."""
    rows = [row["text"] for row in load_rows(DEV_FILE)]
    rng = random.Random(seed)
    built = []
    while len(built) < count:
        parts: list[str] = []
        while sum(map(len, parts)) < SIZE:
            parts.append(rng.choice(rows) if rng.random() < 0.8 else rng.choice(EXTRAS))
        built.append(" ".join(parts)[:SIZE])
    return built


def _figures(kind: str) -> list[Figure]:
    DETECTORS["prompt_injection"].model  # noqa: B018  (loaded once per process, like a worker does)
    warm = texts(WARMUP, seed=1)
    cold = texts(SAMPLES, seed=2)
    for text in warm:
        scan(ScanInput(text, kind))
    samples = measure(lambda i: scan(ScanInput(cold[i], kind)), n=SAMPLES, warmup=0, expect=None)
    # CPU time of the scanning thread as well: on a shared, loaded machine the wall-clock figures
    # include time spent waiting for a CPU, which the CPU figures do not.
    cpu = []
    for text in cold:
        start = time.thread_time()
        scan(ScanInput(text, kind))
        cpu.append((time.thread_time() - start) * 1000.0)
    return [*latency_figures(samples, quantiles=(50, 95, 99)), *latency_figures(cpu, "cpu", quantiles=(50, 99))]


@benchmark("security.detectors.prompt_2kb", target=["p50 <= 5 ms", "p99 <= 25 ms"])
def detectors_prompt_2kb():
    """All five detectors on 1,000 distinct 2 KB prompts (p50, p95, p99)."""
    return _figures("prompt")


@benchmark("security.detectors.context_2kb", target=["p50 <= 5 ms", "p99 <= 25 ms"])
def detectors_context_2kb():
    """All five detectors on 1,000 distinct 2 KB retrieved-context texts (sentences scored too)."""
    return _figures("context")
