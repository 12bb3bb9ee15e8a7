"""Marketplace benchmarks over a generated catalog of 100,000 offerings (``generate_catalog --seed 1``).

``marketplace.search.facets_100k`` times the catalog's search with all its facets
(``marketplace.search.catalog_page``: what the catalog page and ``GET /api/v1/offerings/`` +
``facets/`` run) in-process, i.e. server time without the network, for five typical requests in turn:
"H100"; "H100" in EMEA sorted by latency from Frankfurt; GPU clouds with A100s; "storage" by price;
and the whole catalog unfiltered. Its figures: p50/p95, the SQL statements per request, and the raw-SQL
floor: the very statements the search ran, replayed with ``cursor.execute`` + ``fetchall`` (no ORM,
no Python), whose p95 the search's p95 must stay within twice of.

Since the facets are counted in the in-process catalog index (``marketplace.catalog_index``), those
statements are: the catalog version, my ports, the ids (and, for the relevance sort, the rank) of the
offerings matching the text, and the page's rows with their access points. The counting and ordering
over 100,000 offerings is Python (numpy) time, so it is in the search's figure and not in the floor: the
ratio is the whole search against the database work it cannot avoid. The index (with the metros and
providers) is built once per catalog version and process; ``index.rebuild`` is one search that had to
rebuild it, as the first search after a catalog write does (four more statements: every offering's facet
columns, every access point's metro, the metros, the providers).

``marketplace.api.offerings_wrk`` runs gunicorn with 2 worker processes and the production settings of
``gunicorn.conf.py`` (threaded workers, keep-alive) on the runner's database and loads
``GET /api/v1/offerings/?limit=50`` with ``wrk`` (Debian's package; ``apt-get install -y wrk``) for
15 seconds with 16 connections, as an enterprise member's bearer token. Without wrk it fails with a
message saying so: there is no made-up figure.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench import data
from bench.runner import BASE_DIR, BenchmarkError, Figure, benchmark, latency_figures, measure, percentile
from fabric.choices import PortSpeed, PortState
from fabric.models import Metro, Port
from hub.choices import TokenScope
from marketplace import catalog_index, search
from marketplace.models import Offering

OFFERINGS = 100_000
SEED = 1
SEARCHES = [
    {"q": "H100"},
    {"q": "H100", "region": "EMEA", "sort": "latency", "from_metro": "FR"},
    {"category": "GPU_CLOUD", "accelerator": "A100"},
    {"q": "storage", "sort": "price"},
    {},
]
REQUESTS = 200
WRK_SECONDS = 15
WRK_CONNECTIONS = 16
GUNICORN = Path(sys.executable).with_name("gunicorn")
GUNICORN_CONF = BASE_DIR / "gunicorn.conf.py"


@functools.cache
def _tenant():
    """The generated catalog (made once per run) and an enterprise with a 10G port in Frankfurt."""
    if Offering.objects.count() < OFFERINGS:
        call_command("generate_catalog", offerings=OFFERINGS, seed=SEED, verbosity=0)
        data.analyze()
    tenant = data.create_tenants(1, members=1, scopes=(TokenScope.READ,))[0]
    Port.objects.create(
        organization=tenant.org,
        metro=Metro.objects.get(code="FR"),
        name="bench-fra",
        speed_mbps=PortSpeed.G10,
        capacity_mbps=PortSpeed.G10,
        state=PortState.ACTIVE,
    )
    return tenant


def _search(i: int):
    search.catalog_page(_tenant().org, SEARCHES[i % len(SEARCHES)])


def _raw_floor(n: int) -> list[float]:
    """Each search's own SQL, captured once and replayed through the cursor: the database's share alone."""
    statements = []
    for params in SEARCHES:
        with CaptureQueriesContext(connection) as captured:
            search.catalog_page(_tenant().org, params)
        statements.append([q["sql"] for q in captured.captured_queries])
    samples = []
    clock = time.perf_counter
    for i in range(n + len(SEARCHES)):
        start = clock()
        with connection.cursor() as cursor:
            for sql in statements[i % len(SEARCHES)]:
                cursor.execute(sql)
                cursor.fetchall()
        if i >= len(SEARCHES):
            samples.append((clock() - start) * 1000.0)
    return samples


@benchmark(
    "marketplace.search.facets_100k",
    target=["p95 <= 50 ms", "floor_ratio <= 2", "queries <= 10"],
)
def search_facets_100k():
    """Catalog search + 8 facets over 100,000 offerings: five typical requests in turn (server time)."""
    if connection.vendor != "postgresql":
        raise BenchmarkError("This benchmark is about PostgreSQL's full-text search: set DATABASE_URL=postgres://...")
    tenant = _tenant()
    totals = [search.catalog_page(tenant.org, params).total for params in SEARCHES]
    samples = measure(_search, n=REQUESTS, warmup=len(SEARCHES) * 2, expect=None)
    floor = _raw_floor(REQUESTS)
    queries = 0
    for params in SEARCHES:
        with CaptureQueriesContext(connection) as captured:
            search.catalog_page(tenant.org, params)
        queries = max(queries, len(captured.captured_queries))
    p95, floor_p95 = percentile(samples, 95), percentile(floor, 95)
    catalog_index.forget()
    started = time.perf_counter()
    search.catalog_page(tenant.org, SEARCHES[0])
    rebuild = (time.perf_counter() - started) * 1000.0
    return [
        *latency_figures(samples),
        Figure("floor.p95", round(floor_p95, 3), "ms"),
        Figure("floor_ratio", round(p95 / floor_p95, 2), "x"),
        Figure("queries", queries, "queries"),
        Figure("index.rebuild", round(rebuild, 1), "ms"),
        Figure("matches_h100", totals[0], "offerings"),
        Figure("matches_all", totals[-1], "offerings"),
    ]


# --- gunicorn + wrk ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"gunicorn exited at start:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise BenchmarkError(f"gunicorn did not listen on {port} within {timeout:.0f} s.")


def _wrk_requests_per_second(output: str) -> float:
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise BenchmarkError(f"Could not read wrk's output:\n{output}")
    return float(match.group(1))


@benchmark("marketplace.api.offerings_wrk", target=["throughput >= 300 req/s"])
def offerings_api_wrk():
    """GET /api/v1/offerings/?limit=50 under gunicorn (2 workers) with wrk, 100,000 offerings in the catalog."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchmarkError("wrk is not installed, so no throughput was measured: apt-get install -y wrk")
    if connection.vendor != "postgresql":
        raise BenchmarkError("gunicorn's workers need the runner's database on PostgreSQL: DATABASE_URL=postgres://...")
    tenant = _tenant()
    secret = tenant.secret()
    connection.close()  # the workers open their own; nothing of ours stays idle in a transaction
    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-gunicorn-")) / "gunicorn.log"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hub.settings", "DEBUG": "false"}
    command = [str(GUNICORN), "hub.wsgi", "-c", str(GUNICORN_CONF), "-w", "2", "-b", f"127.0.0.1:{port}"]
    command += ["--access-logfile", "-"]
    with log.open("ab") as handle:
        server = subprocess.Popen(
            [*command, "--access-logformat", "%(s)s"],
            cwd=BASE_DIR,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_listening(port, server, log)
        url = f"http://127.0.0.1:{port}/api/v1/offerings/?limit=50"
        header = f"Authorization: Bearer {secret}"
        subprocess.run([wrk, "-t2", "-c4", "-d3s", "-H", header, url], check=True, capture_output=True)  # warm-up
        result = subprocess.run(
            [
                wrk,
                "-t2",
                f"-c{WRK_CONNECTIONS}",
                f"-d{WRK_SECONDS}s",
                "--timeout",
                "10s",
                "--latency",
                "-H",
                header,
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    statuses = log.read_text(errors="replace").split()
    bad = [s for s in statuses if s.isdigit() and len(s) == 3 and s != "200"]
    if bad:
        raise BenchmarkError(f"{len(bad)} responses were not 200 (first: {bad[0]}); see {log}.")
    failures = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", result.stdout)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    if (failures and any(int(n) for n in failures.groups())) or non_2xx:
        raise BenchmarkError(f"wrk saw failed requests, so its rate would mean nothing:\n{result.stdout}")
    rate = _wrk_requests_per_second(result.stdout)
    p99 = re.search(r"99%\s+([\d.]+)(ms|s|us)", result.stdout)
    figures = [Figure("throughput", round(rate, 1), "req/s")]
    if p99:
        scale = {"ms": 1.0, "s": 1000.0, "us": 0.001}[p99.group(2)]
        figures.append(Figure("wrk.p99", round(float(p99.group(1)) * scale, 1), "ms"))
    return figures
