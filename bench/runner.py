"""Benchmark harness: a registry of benchmarks, measuring helpers and the CLI.

A benchmark is a function registered with :func:`benchmark` that returns one or more
:class:`Figure` (a list, a tuple, a generator or a single figure)::

    from bench.runner import Figure, benchmark, latency_figures, measure

    @benchmark("api.me.bearer", target=["p95 <= 20 ms", "queries <= 5"])
    def me():
        samples = measure(lambda i: client.get("/api/v1/me/"), n=500, warmup=50)
        return [*latency_figures(samples), Figure("queries", 4, "queries")]

A target is ``"<figure> <op> <number> [unit]"`` (op: ``<=``, ``<``, ``>=``, ``>``, ``==``); the
runner fills in each figure's target and whether it is met. A figure may also carry its own
``target`` (``"<= 20 ms"``) and ``met``.

    python -m bench.runner [NAME_OR_GLOB ...] [--record] [--list] [--strict] [--verbose]

runs the selected benchmarks (all when none is named) and prints one line per figure. With
``--record`` it rewrites the generated section of docs/PERFORMANCE.md (between
``<!-- bench:begin -->`` and ``<!-- bench:end -->``); rows of benchmarks not run this time are
kept, so recording a subset updates only those rows.

Benchmarks live in ``bench/bench_<area>.py``; every such module is imported after Django is
set up. The runner owns its database: it refuses one whose name lacks "bench", creates it
(PostgreSQL) if missing, migrates it and empties it (``flush``) before running.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import importlib
import operator
import os
import pkgutil
import platform
import re
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
REPORT = BASE_DIR / "docs" / "PERFORMANCE.md"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
DEFAULT_SQLITE = BASE_DIR / "var" / "bench.sqlite3"
# Rate limiting stays on (its cache round trips are part of every API request) but never trips.
THROTTLE_RATE = "1000000/min"
VERBOSE = False

COLUMNS = ["Benchmark", "Figure", "Value", "Target", "Met", "Database", "Cache", "Date", "Machine"]


# --- Registry ----------------------------------------------------------------------------------
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
}
_TARGET = re.compile(
    r"^\s*(?P<figure>[\w.\-]+)?\s*(?P<op><=|>=|==|<|>)\s*(?P<limit>-?\d+(?:\.\d+)?)\s*(?P<unit>\S*)\s*$"
)


@dataclass(frozen=True)
class Target:
    figure: str
    op: str
    limit: float
    unit: str = ""

    @classmethod
    def parse(cls, text: str, figure: str | None = None) -> Target:
        """``"p95 <= 20 ms"``, or ``"<= 20 ms"`` when ``figure`` is given."""
        match = _TARGET.match(text)
        if match is None or not (match["figure"] or figure):
            raise ValueError(
                f"Cannot read target {text!r}: write '<figure> <op> <number> [unit]', e.g. 'p95 <= 20 ms'."
            )
        return cls(match["figure"] or figure, match["op"], float(match["limit"]), match["unit"])

    def met(self, value: float) -> bool:
        return _OPS[self.op](value, self.limit)

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g} {self.unit}".strip()


@dataclass
class Figure:
    """One measured number. ``target`` is ``"<= 20 ms"`` (filled from the benchmark's targets if unset)."""

    name: str
    value: float
    unit: str = ""
    target: str | None = None
    met: bool | None = None


@dataclass(frozen=True)
class Benchmark:
    name: str
    func: Callable[[], object]
    targets: tuple[Target, ...]
    description: str

    def run(self) -> list[Figure]:
        result = self.func()
        figures = [result] if isinstance(result, Figure) else list(result or [])
        if not figures or not all(isinstance(f, Figure) for f in figures):
            raise TypeError(f"Benchmark {self.name} must return one or more Figure objects.")
        by_name = {t.figure: t for t in self.targets}
        unknown = set(by_name) - {f.name for f in figures}
        if unknown:
            raise ValueError(f"{self.name}: targets name figures it did not return: {', '.join(sorted(unknown))}.")
        for figure in figures:
            if figure.target is None and figure.name in by_name:
                target = by_name[figure.name]
                if target.unit and figure.unit and target.unit != figure.unit:
                    raise ValueError(f"{self.name}: target {target} is in {target.unit}, figure in {figure.unit}.")
                figure.target = str(target)
            if figure.target is not None and figure.met is None:
                figure.met = Target.parse(figure.target, figure.name).met(figure.value)
        return figures


REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, *, target: str | Iterable[str] | None = None):
    """Register the decorated function as benchmark ``name`` (dotted, e.g. ``api.me.bearer``)."""
    targets = [target] if isinstance(target, str) else list(target or [])

    def register(func):
        if name in REGISTRY:
            raise ValueError(f"Benchmark {name!r} is registered twice.")
        doc = (func.__doc__ or "").strip().splitlines()
        REGISTRY[name] = Benchmark(name, func, tuple(Target.parse(t) for t in targets), doc[0] if doc else "")
        return func

    return register


# --- Measuring helpers -------------------------------------------------------------------------
class BenchmarkError(AssertionError):
    """A benchmark's request did not do what it should; its timings would mean nothing."""


def check_status(response, expected: int = 200):
    if response.status_code != expected:
        body = getattr(response, "content", b"")[:500]
        raise BenchmarkError(f"Expected HTTP {expected}, got {response.status_code}: {body!r}")
    return response


def measure(call: Callable[[int], object], *, n: int, warmup: int = 20, expect: int | None = 200) -> list[float]:
    """Call ``call(i)`` ``warmup + n`` times; return the last ``n`` durations in milliseconds.

    ``i`` runs from 0 (warm-up calls first), so a call can pick a fresh key per request. When
    ``call`` returns a response and ``expect`` is set, its status is checked after the clock stops.
    """
    samples: list[float] = []
    clock = time.perf_counter
    for i in range(warmup + n):
        start = clock()
        response = call(i)
        elapsed = (clock() - start) * 1000.0
        if expect is not None and response is not None:
            check_status(response, expect)
        if i >= warmup:
            samples.append(elapsed)
    return samples


def percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("No samples.")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_figures(samples: list[float], prefix: str = "", quantiles: Iterable[int] = (50, 95)) -> list[Figure]:
    """``p50`` and ``p95`` (or ``<prefix>.p50``...) in milliseconds."""
    name = f"{prefix}." if prefix else ""
    return [Figure(f"{name}p{q}", round(percentile(samples, q), 3), "ms") for q in quantiles]


def count_queries(call: Callable[[int], object], *, repeat: int = 3, expect: int | None = 200) -> int:
    """SQL statements per call: the most that any of ``repeat`` calls ``call(i)`` ran (``--verbose`` prints them).

    Run it after :func:`measure` so once-in-a-while work (caches, last-used stamps) is not counted
    as the steady state. Counted like ``assertNumQueries``: every statement Django sends,
    including the transaction control Django logs (``BEGIN``, ``COMMIT``, ``ROLLBACK``, savepoints).
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for i in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            response = call(i)
        if expect is not None and response is not None:
            check_status(response, expect)
        counts.append(len(captured.captured_queries))
        if VERBOSE and i == 0:
            for n, query in enumerate(captured.captured_queries, 1):
                print(f"      sql {n}: {query['sql'][:400]}")
    if VERBOSE and len(set(counts)) > 1:
        print(f"      query counts differ between calls: {counts}")
    return max(counts)


def summary(samples: list[float]) -> str:
    return f"n={len(samples)} mean={statistics.fmean(samples):.2f} ms max={max(samples):.2f} ms"


def api_client(secret: str | None = None):
    """A DRF test client (in-process: server time, no network), sending ``Bearer <secret>`` if given."""
    from rest_framework.test import APIClient

    client = APIClient()
    if secret:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


# --- Environment and database -------------------------------------------------------------------
def setup_django() -> None:
    """Environment for benchmarking, then ``django.setup()``. Must run before models are imported."""
    import environ

    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # as hub.settings would, so .env counts
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{DEFAULT_SQLITE}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "hub.settings"
    os.environ["DEBUG"] = "false"  # production-like: no query log, JSON renderer only
    # DRF binds throttle rates when rest_framework.throttling is imported, so override_settings
    # would come too late: the rate has to be in the environment before setup.
    os.environ["API_THROTTLE_RATE"] = THROTTLE_RATE

    warnings.filterwarnings("ignore", message="No directory at")  # STATIC_ROOT unbuilt
    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import override_settings

    override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"]).enable()


def database_label() -> str:
    from django.db import connection

    names = {"postgresql": "PostgreSQL", "sqlite": "SQLite", "mysql": "MySQL", "oracle": "Oracle"}
    version = ".".join(str(part) for part in connection.get_database_version())
    return f"{names.get(connection.vendor, connection.vendor)} {version}"


def cache_label() -> str:
    from django.conf import settings

    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    return {"RedisCache": "Redis", "LocMemCache": "local memory"}.get(backend, backend)


def machine_label() -> str:
    """CPUs, architecture, Python and the 1-minute load average when the run started (other work skews timings)."""
    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} CPU, {platform.machine()}, Python {platform.python_version()}{load}"


def prepare_database(*, keep_data: bool = False) -> None:
    """Create (PostgreSQL), migrate and empty the benchmark database (unless ``keep_data``)."""
    from django.core.management import call_command
    from django.db import connection

    name = str(connection.settings_dict["NAME"])
    if "bench" not in Path(name).name.lower():
        raise SystemExit(
            f"Refusing to benchmark against database {name!r}: the runner empties its database, so its "
            "name must contain 'bench'. Use e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/hub_bench "
            "or leave DATABASE_URL unset for var/bench.sqlite3."
        )
    if connection.vendor == "sqlite":
        Path(name).parent.mkdir(parents=True, exist_ok=True)
    elif connection.vendor == "postgresql":
        _create_postgres_database(connection, name)
    call_command("migrate", interactive=False, verbosity=0)
    if not keep_data:
        call_command("flush", interactive=False, verbosity=0)


def _create_postgres_database(connection, name: str) -> None:
    from django.db import DatabaseError

    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is not None:
            return
        try:
            cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}")
        except DatabaseError as exc:  # created concurrently by another run
            if "already exists" not in str(exc):
                raise
    print(f"Created PostgreSQL database {name}.")


def discover() -> list[str]:
    """Import every ``bench/bench_*.py``; return the module names."""
    names = sorted(m.name for m in pkgutil.iter_modules([str(BENCH_DIR)]) if m.name.startswith("bench_"))
    for module in names:
        importlib.import_module(f"bench.{module}")
    return names


def select(patterns: list[str]) -> list[Benchmark]:
    if not patterns:
        return [REGISTRY[name] for name in sorted(REGISTRY)]
    chosen: list[str] = []
    for pattern in patterns:
        matches = sorted(name for name in REGISTRY if fnmatch.fnmatchcase(name, pattern))
        if not matches:
            raise SystemExit(f"No benchmark matches {pattern!r}. Known: {', '.join(sorted(REGISTRY))}")
        chosen.extend(m for m in matches if m not in chosen)
    return [REGISTRY[name] for name in chosen]


# --- Output ------------------------------------------------------------------------------------
def format_value(figure: Figure) -> str:
    if figure.unit == "ms":
        text = f"{figure.value:.2f}"
    elif float(figure.value).is_integer():
        text = str(int(figure.value))
    else:
        text = f"{figure.value:.3g}"
    return f"{text} {figure.unit}".strip()


def format_met(figure: Figure) -> str:
    if figure.met is None:
        return ""
    return "yes" if figure.met else "NO"


def print_figure(bench: Benchmark, figure: Figure) -> None:
    target = f"target {figure.target}: {'met' if figure.met else 'NOT MET'}" if figure.target else ""
    print(f"{bench.name:<36} {figure.name:<18} {format_value(figure):>14}   {target}".rstrip(), flush=True)


def table_rows(results: dict[str, list[Figure]], env: dict[str, str]) -> list[list[str]]:
    return [
        [
            name,
            figure.name,
            format_value(figure),
            figure.target or "",
            format_met(figure),
            env["database"],
            env["cache"],
            env["date"],
            env["machine"],
        ]
        for name, figures in results.items()
        for figure in figures
    ]


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def render_section(rows: list[list[str]]) -> str:
    lines = [
        BEGIN,
        "<!-- Generated by `python -m bench.runner --record`; edits between the markers are overwritten. -->",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
        END,
    ]
    return "\n".join(lines)


def parse_rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        line = line.strip()
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells == COLUMNS or len(cells) != len(COLUMNS):
            continue
        rows.append(cells)
    return rows


def record(results: dict[str, list[Figure]], env: dict[str, str], *, replace_all: bool, path: Path = REPORT) -> None:
    """Rewrite the generated section of ``path``; everything outside the markers stays as written."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    start, end = text.find(BEGIN), text.find(END)
    if start == -1 or end == -1 or end < start:
        before, old, after = text.rstrip("\n") + "\n\n", "", "\n"
    else:
        before, old, after = text[:start], text[start : end + len(END)], text[end + len(END) :]
    kept = [] if replace_all else [row for row in parse_rows(old) if row[0] not in results]
    rows = sorted([*kept, *table_rows(results, env)], key=lambda row: row[0])  # stable: figure order kept
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(before + render_section(rows) + after, encoding="utf-8")


# --- CLI ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    global VERBOSE
    parser = argparse.ArgumentParser(prog="python -m bench.runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmark names or globs (e.g. 'api.*'); default: all")
    parser.add_argument("--record", action="store_true", help=f"rewrite the generated section of {REPORT.name}")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the SQL of counted requests")
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="do not empty the database first: a benchmark that can reuses the rows of an earlier run "
        "(for iterating on one benchmark; never with --record)",
    )
    args = parser.parse_args(argv)
    VERBOSE = args.verbose

    setup_django()
    discover()
    benches = select(args.names)
    if args.list:
        for bench in benches:
            targets = ", ".join(f"{t.figure} {t}" for t in bench.targets)
            print(f"{bench.name:<36} {bench.description}" + (f"  [{targets}]" if targets else ""))
        return 0

    if args.keep_data and args.record:
        raise SystemExit("--keep-data measures on left-over data: it cannot be recorded.")
    prepare_database(keep_data=args.keep_data)
    env = {
        "database": database_label(),
        "cache": cache_label(),
        "date": datetime.date.today().isoformat(),
        "machine": machine_label(),
    }
    print(f"# {env['database']}, cache {env['cache']}, {env['machine']}, {env['date']}", flush=True)

    results: dict[str, list[Figure]] = {}
    failed: list[str] = []
    for bench in benches:
        started = time.perf_counter()
        try:
            figures = bench.run()
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            print(f"{bench.name:<36} FAILED", flush=True)
            failed.append(bench.name)
            continue
        results[bench.name] = figures
        for figure in figures:
            print_figure(bench, figure)
        if VERBOSE:
            print(f"  ({bench.name} took {time.perf_counter() - started:.1f} s)", flush=True)

    missed = [f"{name} {f.name}" for name, figures in results.items() for f in figures if f.met is False]
    if missed:
        print("Targets not met: " + "; ".join(missed))
    if failed:
        print(f"Failed: {', '.join(failed)}" + (" (nothing recorded)" if args.record else ""))
        return 1
    if args.record:
        record(results, env, replace_all=not args.names)
        print(f"Recorded {sum(map(len, results.values()))} figures in {REPORT.relative_to(BASE_DIR)}.")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    # Run main() of the importable module, so benchmarks registering via ``bench.runner`` share its registry.
    from bench.runner import main as _main

    sys.exit(_main())
