"""Reliability of provisioning with real worker processes, a real broker and PostgreSQL.

A worker killed with -9 in the middle of a batch, a broker that is down when a connection is
ordered, and a client that fires the same Idempotency-Key many times at once must not lose a
connection, run a workflow step twice to completion, book a VLAN twice nor create a duplicate.

The workers are ``celery -A hub worker`` subprocesses (``tests/fabric/workers.py``) on the test
database and a queue of their own; the test process routes ``fabric.tasks.*`` to that queue.
They get short timeouts (``FABRIC_STEP_TIMEOUT_SECONDS`` / ``FABRIC_STALL_SECONDS`` = 2 s) so a
step left RUNNING by a dead worker is retried within the test, and the test plays beat's part
by calling the sweeper (``sweep_stalled_workflows``) itself.
"""

import random
import threading
import time
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection, connections

from fabric.choices import ConnectionState, StepStatus, WorkflowKind, WorkflowStatus
from fabric.models import Connection, ConnectionEvent, Port, VlanAssignment, Workflow, WorkflowStep
from fabric.services import connection_request
from fabric.tasks import sweep_stalled_workflows
from fabric.workflows import STEPS
from tests.conftest import _reachable
from tests.fabric.workers import (
    WorkerProcess,
    fabric_tasks_routed_to,
    purge_queue,
    queued_count,
    unacked_workflow_ids,
    unique_queue,
)

BROKER = settings.CELERY_BROKER_URL

pytestmark = [
    pytest.mark.worker,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL (DATABASE_URL=postgres://...): worker processes and request threads race on row locks",
    ),
    pytest.mark.skipif(
        not BROKER.startswith("redis://") or not _reachable(BROKER),
        reason=f"needs CELERY_BROKER_URL pointing at a reachable Redis (got {BROKER!r})",
    ),
]

CONNECTIONS = "/api/v1/connections/"
STALL_SECONDS = 2
WORKER_ENV = {
    "FABRIC_SIM_STEP_DELAY": "0.2",
    "FABRIC_SIM_FAILURE_RATE": "0",
    "FABRIC_STEP_TIMEOUT_SECONDS": str(STALL_SECONDS),
    "FABRIC_STALL_SECONDS": str(STALL_SECONDS),
    "LOG_LEVEL": "INFO",
}
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"
PROVISION_STEPS = list(STEPS[WorkflowKind.CONNECTION_PROVISION])


# --- Fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def fabric_queue(transactional_db, settings):
    """Tasks really go through the broker, and ``fabric.tasks.*`` to a queue of this test's own."""
    queue = unique_queue()
    settings.FABRIC_STALL_SECONDS = STALL_SECONDS  # for the sweeper, which runs in this process
    try:
        with fabric_tasks_routed_to(queue):
            yield queue
    finally:
        purge_queue(queue)


@pytest.fixture
def workers(fabric_queue, tmp_path):
    """``workers(concurrency)`` starts a worker process on the test's queue and waits until it is
    ready. Every worker started is stopped (killed if need be) when the test ends, pass or fail."""
    started: list[WorkerProcess] = []

    def start(concurrency: int = 2, **env: str) -> WorkerProcess:
        worker = WorkerProcess(queue=fabric_queue, log_dir=tmp_path, concurrency=concurrency, env={**WORKER_ENV, **env})
        started.append(worker)
        return worker.start().wait_ready()

    start.started = started
    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def _eventually(predicate, *, timeout: float, what: str, workers=(), every: float = 0.2, between=None):
    """Poll ``predicate`` (calling ``between()`` on each round) until truthy; fail with the workers' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if between is not None:
            between()
        time.sleep(every)
    logs = "\n\n".join(f"--- {w.name} (alive={w.alive})\n{w.tail()}" for w in workers)
    pytest.fail(f"{what}: not within {timeout}s\n{logs}")


def _request(member, a_port, z_port, name: str, bandwidth_mbps: int = 10) -> Connection:
    # Fresh instances, as a request would load them.
    a_port, z_port = (Port.objects.select_related("metro", "organization").get(pk=p.pk) for p in (a_port, z_port))
    plan = connection_request(membership=member, name=name, a_port=a_port, z_port=z_port, bandwidth_mbps=bandwidth_mbps)
    return plan.connections[0]


def _states(ids) -> Counter:
    return Counter(Connection.objects.filter(pk__in=ids).values_list("state", flat=True))


def _assert_provisioned_exactly_once(ids) -> None:
    """Every connection ACTIVE through one workflow whose steps each succeeded once, and every
    VLAN booked once per port."""
    assert _states(ids) == {ConnectionState.ACTIVE: len(ids)}
    for pk in ids:
        workflows = list(Workflow.objects.filter(connection_id=pk))
        assert [(w.kind, w.status) for w in workflows] == [
            (WorkflowKind.CONNECTION_PROVISION, WorkflowStatus.SUCCEEDED)
        ], f"connection {pk}"
        steps = list(workflows[0].steps.order_by("position").values_list("position", "name", "status", "finished_at"))
        assert [(p, n, s) for p, n, s, _ in steps] == [
            (i, name, StepStatus.SUCCEEDED) for i, name in enumerate(PROVISION_STEPS, start=1)
        ], f"connection {pk}"
        assert all(finished for *_, finished in steps)
        # The ACTIVE transition (the workflow's outcome) happened once.
        assert ConnectionEvent.objects.filter(connection_id=pk, to_state=ConnectionState.ACTIVE).count() == 1
    # VLANs: each connection holds exactly its two tags, and no tag is on a port twice.
    rows = list(Connection.objects.filter(pk__in=ids).values_list("a_port_id", "a_vlan", "z_port_id", "z_vlan"))
    pairs = Counter(pair for a, av, z, zv in rows for pair in ((a, av), (z, zv)))
    assert [pair for pair, n in pairs.items() if n > 1] == []
    booked = Counter(VlanAssignment.objects.filter(connection_id__in=ids).values_list("port_id", "vlan"))
    assert booked == pairs
    # Bandwidth was reserved once per connection and side.
    reserved = Counter()
    for a, z, mbps in Connection.objects.filter(pk__in=ids).values_list("a_port_id", "z_port_id", "bandwidth_mbps"):
        reserved[a] += mbps
        reserved[z] += mbps
    assert dict(Port.objects.filter(pk__in=reserved).values_list("pk", "committed_mbps")) == dict(reserved)


# --- 1. A worker killed with -9 mid-batch ------------------------------------------------------------
BATCH = 20
KILL_AFTER_ACTIVE = 4


def test_a_worker_killed_mid_provisioning_loses_and_duplicates_nothing(acme, workers, fabric_queue):
    first = workers(concurrency=2)
    pairs = [(acme.fra, acme.ams), (acme.ams, acme.fra10), (acme.fra10, acme.fra)]  # own ports: no approval
    ids = [_request(acme.member, *pairs[i % 3], name=f"batch-{i}").pk for i in range(BATCH)]

    # Kill the whole worker (main process and pool children) while it is in the middle of a step;
    # a random pause lands the kill on a different step from run to run.
    _eventually(
        lambda: _states(ids)[ConnectionState.ACTIVE] >= KILL_AFTER_ACTIVE,
        timeout=60,
        what="provisioning under way",
        workers=[first],
        every=0.05,
    )
    time.sleep(random.uniform(0, 0.8))
    _eventually(
        lambda: WorkflowStep.objects.filter(workflow__connection_id__in=ids, status=StepStatus.RUNNING).exists(),
        timeout=30,
        what="a step running",
        workers=[first],
        every=0.02,
    )
    first.kill()
    at_kill = _states(ids)
    left_running = sorted(
        WorkflowStep.objects.filter(workflow__connection_id__in=ids, status=StepStatus.RUNNING).values_list(
            "workflow_id", flat=True
        )
    )
    stranded = unacked_workflow_ids(fabric_queue)  # taken by the dead worker, never acknowledged
    waiting = queued_count(fabric_queue)
    assert at_kill[ConnectionState.ACTIVE] < BATCH, "the batch finished before the kill: nothing was tested"

    # A new worker takes what is still queued; the sweeper re-enqueues what the dead one held
    # (the Redis transport would only redeliver its unacknowledged messages after visibility_timeout).
    second = workers(concurrency=2)
    sweeps: list[int] = []
    started = time.monotonic()
    _eventually(
        lambda: _states(ids)[ConnectionState.ACTIVE] == BATCH,
        timeout=120,
        what=f"all {BATCH} connections ACTIVE after the kill",
        workers=[first, second],
        every=1.0,
        between=lambda: sweeps.append(sweep_stalled_workflows()),
    )
    recovered_in = time.monotonic() - started

    _assert_provisioned_exactly_once(ids)
    retried = list(
        WorkflowStep.objects.filter(workflow__connection_id__in=ids, attempts__gt=1).values_list(
            "workflow_id", "name", "attempts"
        )
    )
    # A step the dead worker left RUNNING was run again (a new attempt), not skipped.
    assert {wf for wf, _, _ in retried} >= set(left_running)
    print(
        f"\n[kill -9] at kill: {dict(at_kill)}; steps left RUNNING in workflows {left_running}; "
        f"unacked (stranded) run_workflow messages for workflows {stranded}; {waiting} message(s) still queued.\n"
        f"[recovery] all ACTIVE {recovered_in:.1f}s after the new worker was ready; sweeper re-enqueued {sweeps}; "
        f"steps run more than once: {retried}; still unacked in Redis at the end: {unacked_workflow_ids(fabric_queue)}"
    )


IMMEDIATE_BATCH = 150


def test_a_worker_killed_while_running_immediate_steps_loses_and_duplicates_nothing(acme, workers, fabric_queue):
    """At 0 s a step the simulator is an immediate driver: each workflow runs in one transaction
    under its lock. A kill -9 in the middle of a batch rolls the open one back, and the next worker
    (with the sweeper) provisions every connection exactly once."""
    pairs = [(acme.fra, acme.ams), (acme.ams, acme.fra10), (acme.fra10, acme.fra)]
    ids = [_request(acme.member, *pairs[i % 3], name=f"fast-{i}", bandwidth_mbps=1).pk for i in range(IMMEDIATE_BATCH)]
    first = workers(concurrency=2, FABRIC_SIM_STEP_DELAY="0")  # the batch is queued: the kill lands mid-way
    _eventually(
        lambda: _states(ids)[ConnectionState.ACTIVE] >= 10,
        timeout=60,
        what="provisioning under way",
        workers=[first],
        every=0.01,
    )
    first.kill()
    at_kill = _states(ids)
    assert at_kill[ConnectionState.ACTIVE] < IMMEDIATE_BATCH, "the batch finished before the kill: nothing was tested"
    # Nothing is left half-done: a workflow's steps are all pending or all succeeded.
    assert not WorkflowStep.objects.filter(workflow__connection_id__in=ids, status=StepStatus.RUNNING).exists()
    partial = (
        Workflow.objects.filter(connection_id__in=ids, steps__status=StepStatus.SUCCEEDED)
        .exclude(status=WorkflowStatus.SUCCEEDED)
        .exists()
    )
    assert not partial

    second = workers(concurrency=2, FABRIC_SIM_STEP_DELAY="0")
    _eventually(
        lambda: _states(ids)[ConnectionState.ACTIVE] == IMMEDIATE_BATCH,
        timeout=120,
        what=f"all {IMMEDIATE_BATCH} connections ACTIVE after the kill",
        workers=[first, second],
        every=1.0,
        between=sweep_stalled_workflows,
    )
    _assert_provisioned_exactly_once(ids)
    assert not WorkflowStep.objects.filter(workflow__connection_id__in=ids, attempts__gt=1).exists()
    print(f"\n[kill -9, immediate steps] at kill: {dict(at_kill)}")


# --- 2. The broker is down when a connection is requested -------------------------------------------
def _use_broker(monkeypatch, url: str) -> None:
    """Point this process's producer at ``url``. Celery reads CELERY_BROKER_URL from the environment
    before its configuration, and caches its connection and producer pools: drop them (closing
    them would leave the app with a closed producer pool, "Acquire on closed pool")."""
    from hub.celery import app

    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None


def test_a_connection_requested_while_the_broker_is_down_is_kept_and_provisioned_later(
    acme, workers, token_client, monkeypatch
):
    worker = workers(concurrency=1)
    client = token_client(acme.member)
    body = {"name": "broker-down", "a_port": str(acme.fra.public_id), "z_port": str(acme.ams.public_id)}
    body["bandwidth_mbps"] = 100
    key = {"HTTP_IDEMPOTENCY_KEY": "broker-down-1"}

    _use_broker(monkeypatch, UNREACHABLE_BROKER)
    try:
        during_outage = client.post(CONNECTIONS, body, format="json", **key)
    finally:
        _use_broker(monkeypatch, BROKER)

    # Whatever the response, the connection was committed before the enqueue was attempted.
    kept = list(Connection.objects.filter(organization=acme.org, name="broker-down"))
    assert len(kept) == 1
    assert kept[0].state == ConnectionState.PROVISIONING
    workflow = Workflow.objects.get(connection=kept[0])
    assert workflow.status == WorkflowStatus.PENDING  # no message ever reached a worker

    # The broker is back: the sweeper (beat's job, every minute) finds the stalled workflow.
    time.sleep(STALL_SECONDS + 0.5)
    assert sweep_stalled_workflows() >= 1
    _eventually(
        lambda: Connection.objects.get(pk=kept[0].pk).state == ConnectionState.ACTIVE,
        timeout=30,
        what="the connection provisioned once the broker was back",
        workers=[worker],
        every=0.5,
    )

    # A client whose request failed retries it with the same key: it must not get a second connection.
    retry = client.post(CONNECTIONS, body, format="json", **key)
    created = Connection.objects.filter(organization=acme.org, name="broker-down").count()

    problems = []
    if during_outage.status_code != 201:
        problems.append(
            f"ordering a connection while the broker is down answered HTTP {during_outage.status_code} "
            f"{during_outage.content[:200]!r} although the connection was created: the on_commit enqueue "
            "(fabric.workflows.workflow_start) must not fail the request; the sweeper provisions it later"
        )
    if retry.status_code != 201 or retry.headers.get("Idempotent-Replayed") != "true":
        problems.append(f"the client's retry with the same Idempotency-Key was not a replay (HTTP {retry.status_code})")
    if created != 1:
        problems.append(f"the request and its retry created {created} connections instead of 1")
    assert not problems, "\n".join(problems)


# --- 3. One Idempotency-Key, twenty concurrent requests -------------------------------------------
RACERS = 20


def test_concurrent_posts_with_one_idempotency_key_create_one_connection(acme, workers, token_client):
    worker = workers(concurrency=1)
    secret = token_client(acme.member).secret
    body = {
        "name": "same-key",
        "a_port": str(acme.fra.public_id),
        "z_port": str(acme.ams.public_id),
        "bandwidth_mbps": 100,
    }
    barrier = threading.Barrier(RACERS)
    outcomes: list[tuple[int, str, bool, str]] = []
    lock = threading.Lock()

    def post():
        from rest_framework.test import APIClient

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        try:
            barrier.wait(timeout=30)
            response = client.post(CONNECTIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="same-key-1")
            data = response.json()
            if response.status_code == 201:
                outcome = (201, data["connections"][0]["id"], response.headers.get("Idempotent-Replayed") == "true", "")
            else:
                outcome = (response.status_code, "", False, data.get("error", {}).get("code", str(data)))
        except Exception as exc:  # noqa: BLE001 - reported as an outcome, asserted below
            outcome = (0, "", False, f"{exc.__class__.__name__}: {exc}")
        finally:
            connections.close_all()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=post) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcomes) == RACERS, "a request hung"

    statuses = Counter((status, code) for status, _, _, code in outcomes)
    assert set(statuses) <= {(201, ""), (409, "idempotency_in_progress")}, statuses
    created = [o for o in outcomes if o[0] == 201 and not o[2]]
    assert len(created) == 1, outcomes  # exactly one request did the work; the other 201s are replays
    assert {o[1] for o in outcomes if o[0] == 201} == {created[0][1]}

    assert Connection.objects.filter(organization=acme.org).count() == 1
    only = Connection.objects.get(organization=acme.org)
    assert str(only.public_id) == created[0][1]
    assert Workflow.objects.filter(connection=only).count() == 1
    _eventually(
        lambda: Connection.objects.get(pk=only.pk).state == ConnectionState.ACTIVE,
        timeout=30,
        what="the connection provisioned",
        workers=[worker],
    )
    _assert_provisioned_exactly_once([only.pk])
