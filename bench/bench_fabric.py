"""Fabric benchmarks: provisioning throughput with real Celery worker processes, and the connection list API.

``fabric.connections.provision_1000`` orders 1,000 own-to-own connections (no approval) through
``fabric.services.connection_request`` (what POST /api/v1/connections/ runs) and times them until
the last one is ACTIVE, with the simulated driver at 0 ms per step and two worker processes
(``celery -A hub worker -c 1``, started by the benchmark on the runner's database and a queue of
its own). It then checks that nothing was done twice and that no VLAN is booked twice on a port,
and counts the SQL statements of one more request like the timed ones (rolled back).
It needs PostgreSQL and a Redis broker: worker processes cannot share the runner's SQLite file
usefully nor its filesystem-broker folder.

``fabric.connections.list_api`` times GET /api/v1/connections/?limit=50 for an organization with
50 and then 500 connections: the SQL per request must not grow with the number of connections.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench import data
from bench.runner import (
    BASE_DIR,
    BenchmarkError,
    Figure,
    api_client,
    benchmark,
    count_queries,
    latency_figures,
    measure,
)
from fabric.choices import ConnectionState, PendingOn, PortSpeed, PortState, StepStatus, WorkflowKind, WorkflowStatus
from fabric.models import Connection, ConnectionEvent, Metro, Port, VlanAssignment, Workflow, WorkflowStep
from fabric.services import connection_request, metros_load
from fabric.workflows import STEPS
from hub.choices import Role, TokenScope
from hub.services import api_token_create

PROVISION_COUNT = 1_000
PROVISION_WORKERS = 2
PROVISION_PORT_PAIRS = 10  # 100 connections per port pair: 100 of the 3,995 automatic VLANs per port
PROVISION_TIMEOUT_S = 180
LIST_PAGE = 50
CELERY = Path(sys.executable).with_name("celery")


# --- Worker processes --------------------------------------------------------------------------
def services_problem() -> str | None:
    """Why worker processes cannot run here (None when they can): they need PostgreSQL and Redis."""
    problems = []
    if connection.vendor != "postgresql":
        problems.append(f"the database is {connection.vendor}, not PostgreSQL")
    broker = str(settings.CELERY_BROKER_URL)
    if not broker.startswith(("redis://", "rediss://")):
        problems.append(f"the broker is {broker.split(':', 1)[0]}://, not Redis")
    if not problems:
        return None
    return (
        f"needs worker processes on PostgreSQL and a Redis broker, but {' and '.join(problems)}. Run e.g. "
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/hub_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/12 "
        "REDIS_URL=redis://127.0.0.1:6379/13 python -m bench.runner 'fabric.connections.*'"
    )


def _database_url() -> str:
    """The runner's own database: what DATABASE_URL says (the runner set it, or SQLite by default)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        raise BenchmarkError(f"Worker processes need DATABASE_URL=postgres://...; got {url!r}.")
    return url


class Workers:
    """``count`` worker processes (``-c 1`` each) consuming ``queue``; a context manager that kills
    them (and their pool children: each has a process group of its own) on the way out."""

    def __init__(self, queue: str, *, count: int, env: dict[str, str]):
        self.queue = queue
        self.names = [f"{queue}-{i}" for i in range(count)]
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "hub.settings",
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": str(settings.CELERY_BROKER_URL),
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "DEBUG": "false",
            **env,
        }
        self.command = [str(CELERY), "-A", "hub", "worker", "-Q", queue, "-c", "1", "-l", "info"]
        self.command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.logdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> Workers:
        for name in self.names:
            with (self.logdir / f"{name}.log").open("ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        [*self.command, "-n", f"{name}@%h"],
                        cwd=BASE_DIR,
                        env=self.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        try:
            self.wait_ready()
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def logs(self, lines: int = 30) -> str:
        out = []
        for name in self.names:
            text = (self.logdir / f"{name}.log").read_text(errors="replace").splitlines()
            out.append(f"--- {name}\n" + "\n".join(text[-lines:]))
        return "\n".join(out)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise BenchmarkError(f"A worker process exited at start:\n{self.logs()}")
            if all(" ready." in (self.logdir / f"{n}.log").read_text(errors="replace") for n in self.names):
                return
            time.sleep(0.1)
        raise BenchmarkError(f"Workers not ready within {timeout:.0f} s:\n{self.logs()}")

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)  # warm shutdown: gives back what it reserved
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        if exc[0] is None:  # keep the logs of a failed run
            shutil.rmtree(self.logdir, ignore_errors=True)


@contextlib.contextmanager
def _fabric_tasks_routed_to(queue: str):
    """This process sends ``fabric.tasks.*`` to ``queue`` (routing happens where a task is sent)."""
    from hub.celery import app

    saved = {key: app.conf[key] for key in ("task_always_eager", "task_routes")}
    app.conf.update(task_always_eager=False, task_routes={"fabric.tasks.*": {"queue": queue}})
    try:
        yield
    finally:
        app.conf.update(saved)
        with contextlib.suppress(Exception):
            _purge_queue(queue)


def _purge_queue(queue: str) -> None:
    import redis

    client = redis.Redis.from_url(str(settings.CELERY_BROKER_URL))
    keys = list(client.scan_iter(match=f"*{queue}*"))  # the queue's lists and its binding
    if keys:
        client.delete(*keys)


def _cpu_seconds(pids) -> dict[int, float]:
    """CPU time (user + system) that each of ``pids`` has used so far (gone ones are left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


def _run_pids(workers: Workers) -> list[int]:
    """This process, the workers with their pool children (each worker leads a session of its own)
    and every server process of this database: what the run spends CPU on besides Redis."""
    sessions = {p.pid for p in workers.processes}
    pids = [os.getpid()]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) in sessions:  # the session id
                    pids.append(int(entry.name))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        pids += [pid for (pid,) in cursor.fetchall()]
    return pids


# --- Provisioning ------------------------------------------------------------------------------
def _provision_world():
    """An org whose owner orders connections between its own ports (no approval), with room for
    1,000 connections: capacity set far above the speed, written straight to the table."""
    if not Metro.objects.exists():
        metros_load()
    metros = list(Metro.objects.order_by("code")[: PROVISION_PORT_PAIRS * 2])
    tenant = data.create_tenants(1, members=1, tokens_per_member=0)[0]
    member = tenant.memberships[0]  # OWNER
    tag = data.new_tag()
    ports = Port.objects.bulk_create(
        Port(
            organization=tenant.org,
            metro=metros[i % len(metros)],
            name=f"bench-{tag}-{i}",
            speed_mbps=PortSpeed.G400,
            capacity_mbps=2_000_000_000,
            state=PortState.ACTIVE,
        )
        for i in range(PROVISION_PORT_PAIRS * 2)
    )
    ports = list(Port.objects.select_related("metro", "organization").filter(pk__in=[p.pk for p in ports]))
    pairs = [(ports[2 * i], ports[2 * i + 1]) for i in range(PROVISION_PORT_PAIRS)]
    return tenant.org, member, pairs


def _duplicates(org) -> int:
    """Anything done more than once: connections, workflows per connection, ACTIVE transitions,
    steps succeeded per workflow beyond the workflow's steps."""
    extra_connections = max(Connection.objects.filter(organization=org).count() - PROVISION_COUNT, 0)
    extra_workflows = sum(
        n - 1
        for n in Workflow.objects.filter(connection__organization=org)
        .values("connection")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
        if n > 1
    )
    extra_active = sum(
        n - 1
        for n in ConnectionEvent.objects.filter(connection__organization=org, to_state=ConnectionState.ACTIVE)
        .values("connection")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
        if n > 1
    )
    expected_steps = len(STEPS[WorkflowKind.CONNECTION_PROVISION])
    extra_steps = sum(
        abs(n - expected_steps)
        for n in Workflow.objects.filter(connection__organization=org)
        .annotate(n=Count("steps", filter=Q(steps__status=StepStatus.SUCCEEDED)))
        .values_list("n", flat=True)
    )
    return extra_connections + extra_workflows + extra_active + extra_steps


def vlan_violations() -> int:
    """Tags used twice on a port by live connections (either side), plus tags a connection uses
    without a booking in VlanAssignment (whose unique constraint is the last line of defence)."""
    live = Connection.objects.exclude(
        state__in=[ConnectionState.REJECTED, ConnectionState.CANCELLED, ConnectionState.DEPROVISIONED]
    )
    used = Counter()
    for a_port, a_vlan, z_port, z_vlan in live.values_list("a_port_id", "a_vlan", "z_port_id", "z_vlan"):
        used[(a_port, a_vlan)] += 1
        if z_vlan is not None:
            used[(z_port, z_vlan)] += 1
    booked = set(VlanAssignment.objects.values_list("port_id", "vlan"))
    return sum(n - 1 for n in used.values() if n > 1) + len(set(used) - booked)


def provision_1000():
    """1,000 connections from request to ACTIVE: 2 worker processes, simulated driver at 0 ms a step."""
    if problem := services_problem():
        raise BenchmarkError(f"{PROVISION} {problem}")
    org, member, pairs = _provision_world()
    queue = f"bench-workflows-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    worker_env = {"FABRIC_SIM_STEP_DELAY": "0", "FABRIC_SIM_FAILURE_RATE": "0", "LOG_LEVEL": "WARNING"}
    with _fabric_tasks_routed_to(queue), Workers(queue, count=PROVISION_WORKERS, env=worker_env) as workers:
        cpu_before = _cpu_seconds(_run_pids(workers))
        started_at = timezone.now()
        clock = time.perf_counter()
        for i in range(PROVISION_COUNT):
            a_port, z_port = pairs[i % len(pairs)]
            connection_request(membership=member, name=f"bench-{i}", a_port=a_port, z_port=z_port, bandwidth_mbps=100)
        submitted_s = time.perf_counter() - clock
        deadline = time.monotonic() + PROVISION_TIMEOUT_S
        active = 0
        while time.monotonic() < deadline:
            active = Connection.objects.filter(organization=org, state=ConnectionState.ACTIVE).count()
            if active >= PROVISION_COUNT:
                break
            time.sleep(0.1)
        else:
            failed = Workflow.objects.filter(connection__organization=org, status=WorkflowStatus.FAILED).count()
            raise BenchmarkError(
                f"Only {active} of {PROVISION_COUNT} connections ACTIVE after {PROVISION_TIMEOUT_S} s "
                f"({failed} workflows failed).\n{workers.logs()}"
            )
        # Server processes that started during the run (the workers connect at their first task) count
        # from zero; one that ended before this point would be missed (connections persist).
        cpu_after = _cpu_seconds(_run_pids(workers))
        cpu_s = sum(used - cpu_before.get(pid, 0.0) for pid, used in cpu_after.items())
    # The last ACTIVE transition, as the workers stamped it (same host clock): no polling granularity.
    last_active = ConnectionEvent.objects.filter(
        connection__organization=org, to_state=ConnectionState.ACTIVE
    ).aggregate(last=Max("created_at"))["last"]
    wall_s = (last_active - started_at).total_seconds()
    duplicates = _duplicates(org)
    retried = WorkflowStep.objects.filter(workflow__connection__organization=org, attempts__gt=1).count()
    not_active = Connection.objects.filter(organization=org).exclude(state=ConnectionState.ACTIVE).count()
    statements = _statements_per_request(member, *pairs[0])
    return [
        Figure("wall", round(wall_s, 2), "s"),
        Figure("submit", round(submitted_s, 2), "s"),
        Figure("throughput", round(PROVISION_COUNT / wall_s, 1), "conn/s"),
        # CPU of the runner, the workers and the database's server processes: on 2 CPUs the wall time
        # cannot be below cpu / 2, and unlike the wall time it hardly depends on other work on the machine.
        Figure("cpu", round(cpu_s, 1), "s"),
        Figure("duplicates", duplicates),
        Figure("vlan_violations", vlan_violations()),
        Figure("not_active", not_active),
        Figure("step_retries", retried),
        Figure("statements", statements, "per request"),
    ]


def _statements_per_request(member, a_port, z_port) -> int:
    """SQL statements of one more request like the timed ones, after the run and rolled back (its
    savepoint and release stand for the BEGIN and COMMIT of a request of its own)."""
    with transaction.atomic():
        with CaptureQueriesContext(connection) as captured:
            connection_request(membership=member, name="bench-count", a_port=a_port, z_port=z_port, bandwidth_mbps=100)
        transaction.set_rollback(True)
    return len(captured)


# The runner has no notion of a skipped benchmark and records nothing when one fails, so on SQLite
# or the filesystem broker this one is not registered (with a note) instead of failing the run.
PROVISION = "fabric.connections.provision_1000"
if _why_not := services_problem():
    print(f"note: {PROVISION} skipped: it {_why_not}", flush=True)
else:
    benchmark(PROVISION, target=["wall <= 30 s", "duplicates == 0", "vlan_violations == 0", "not_active == 0"])(
        provision_1000
    )


# --- The connection list -----------------------------------------------------------------------
@functools.cache
def _list_world():
    """An org (a viewer's read token) with two ports; connections are added by :func:`_grow`."""
    if not Metro.objects.exists():
        metros_load()
    metro = Metro.objects.order_by("code").first()
    tenant = data.create_tenants(1, members=2, role=Role.VIEWER, tokens_per_member=0)[0]
    tag = data.new_tag()
    ports = Port.objects.bulk_create(
        Port(
            organization=tenant.org,
            metro=metro,
            name=f"bench-{tag}-{i}",
            speed_mbps=PortSpeed.G100,
            capacity_mbps=PortSpeed.G100,
            state=PortState.ACTIVE,
        )
        for i in range(2)
    )
    _, secret = api_token_create(membership=tenant.memberships[1], name="bench connections", scopes=[TokenScope.READ])
    return tenant, ports, secret


def _grow(tenant, ports, total: int) -> None:
    """Active connections (written straight to the tables, as provisioning leaves them) up to ``total``."""
    have = Connection.objects.filter(organization=tenant.org).count()
    a_port, z_port = ports
    made = Connection.objects.bulk_create(
        Connection(
            organization=tenant.org,
            name=f"bench-list-{i}",
            a_port=a_port,
            a_vlan=100 + i,
            z_port=z_port,
            z_vlan=100 + i,
            bandwidth_mbps=100,
            state=ConnectionState.ACTIVE,
            pending_on=PendingOn.NONE,
            created_by=tenant.users[0],
        )
        for i in range(have, total)
    )
    VlanAssignment.objects.bulk_create(
        VlanAssignment(port=port, vlan=vlan, connection=c)
        for c in made
        for port, vlan in ((a_port, c.a_vlan), (z_port, c.z_vlan))
    )
    data.analyze()


@benchmark(
    "fabric.connections.list_api",
    target=[
        "org50.queries <= 10",
        "org500.queries <= 10",
        "queries_growth == 0",
        "org50.p95 <= 50 ms",
        "org500.p95 <= 50 ms",
    ],
)
def connections_list_api():
    """GET /api/v1/connections/?limit=50 (viewer token) with 50 and with 500 connections in the org."""
    tenant, ports, secret = _list_world()
    client = api_client(secret)
    url = f"/api/v1/connections/?limit={LIST_PAGE}"
    figures, queries = [], {}
    for total in (50, 500):
        _grow(tenant, ports, total)
        body = client.get(url).json()
        if body.get("count") != total or len(body.get("results", [])) != LIST_PAGE:
            raise BenchmarkError(f"Unexpected page for {total} connections: count={body.get('count')}")
        samples = measure(lambda i: client.get(url), n=300, warmup=30)
        queries[total] = count_queries(lambda i: client.get(url))
        figures += [
            *latency_figures(samples, prefix=f"org{total}"),
            Figure(f"org{total}.queries", queries[total], "queries"),
        ]
    return [*figures, Figure("queries_growth", queries[500] - queries[50], "queries")]
