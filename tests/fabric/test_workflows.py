"""The workflow engine: transient errors are retried with backoff, permanent ones end the workflow
with a readable reason, running twice is harmless, and the sweeper rescues lost work."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from fabric.choices import ConnectionState, PendingOn, StepStatus, WorkflowKind, WorkflowStatus
from fabric.drivers.simulated import SimulatedDriver
from fabric.models import Connection, Port, Workflow, WorkflowStep
from fabric.services import connection_modify_bandwidth, connection_request
from fabric.tasks import run_workflow, sweep_stalled_workflows
from fabric.workflows import backoff_seconds, stalled_workflow_ids, workflow_advance
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db

S = ConnectionState


@pytest.fixture(autouse=True, params=["immediate", "step_by_step"])
def engine(request, settings):
    """Every test runs on both paths of the engine: the simulator at 0 s a step is an immediate
    driver (all steps in one transaction); at 1 ms a step each step is committed around the driver."""
    delay = 0 if request.param == "immediate" else 0.001
    settings.FABRIC_SIMULATED = {**settings.FABRIC_SIMULATED, "step_delay_seconds": delay}
    return request.param


def _own_link(acme, bandwidth_mbps=100, name="link") -> Connection:
    """An own-to-own request: approved at once, its provisioning workflow enqueued on commit."""
    return connection_request(
        membership=acme.member, name=name, a_port=acme.fra, z_port=acme.ams, bandwidth_mbps=bandwidth_mbps
    ).connections[0]


def _steps(workflow) -> dict[str, WorkflowStep]:
    return {step.name: step for step in workflow.steps.order_by("position")}


def _committed(*ports) -> list[int]:
    return [Port.objects.get(pk=port.pk).committed_mbps for port in ports]


def _age(workflow, seconds) -> None:
    """Pretend nobody touched the workflow for ``seconds`` (``update`` skips ``auto_now``)."""
    Workflow.objects.filter(pk=workflow.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))


# --- Transient and permanent errors --------------------------------------------------------------
def test_transient_failures_are_retried_until_the_step_succeeds(
    acme, settings, fail_steps, django_capture_on_commit_callbacks
):
    settings.FABRIC_RETRY_BACKOFF_SECONDS = 0  # eager tasks ignore countdowns; let retries be due at once
    fail_steps({"configure_a_side": "transient:2"})
    with django_capture_on_commit_callbacks(execute=True):
        connection = _own_link(acme)

    connection.refresh_from_db()
    assert connection.state == S.ACTIVE
    workflow = connection.workflows.get()
    assert (workflow.status, workflow.error) == (WorkflowStatus.SUCCEEDED, "")
    steps = _steps(workflow)
    assert (steps["configure_a_side"].attempts, steps["configure_a_side"].status) == (3, StepStatus.SUCCEEDED)
    assert steps["configure_a_side"].error == ""
    assert {name: step.attempts for name, step in steps.items() if name != "configure_a_side"} == {
        "reserve_vlans": 1,
        "configure_z_side": 1,
        "verify": 1,
        "activate": 1,
    }


def test_a_retry_waits_for_its_backoff_then_continues(acme, settings, fail_steps):
    settings.FABRIC_RETRY_BACKOFF_SECONDS = 30
    fail_steps({"configure_z_side": "transient:1"})
    connection = _own_link(acme)  # on-commit callbacks are not run: the test drives the workflow
    workflow = connection.workflows.get()

    countdown = workflow_advance(workflow.pk)
    assert 24 <= countdown <= 36
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.RUNNING
    assert timezone.now() + timedelta(seconds=20) < workflow.next_attempt_at
    step = _steps(workflow)["configure_z_side"]
    assert (step.status, step.attempts) == (StepStatus.PENDING, 1)
    assert step.error == "Simulated timeout in configure z side (attempt 1)."
    connection.refresh_from_db()
    assert (connection.state, connection.pending_on) == (S.PROVISIONING, PendingOn.FABRIC)

    # Delivered early (a duplicate message), the task does nothing.
    assert workflow_advance(workflow.pk) is None
    assert _steps(workflow)["configure_z_side"].attempts == 1

    Workflow.objects.filter(pk=workflow.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert workflow_advance(workflow.pk) is None
    connection.refresh_from_db()
    assert connection.state == S.ACTIVE
    assert _steps(workflow)["configure_z_side"].attempts == 2


def test_the_task_reschedules_itself_with_the_backoff(acme, settings, fail_steps):
    settings.FABRIC_RETRY_BACKOFF_SECONDS = 10
    fail_steps({"verify": "transient:1"})
    workflow = _own_link(acme).workflows.get()
    with mock.patch.object(run_workflow, "apply_async") as schedule:
        run_workflow(workflow.pk)
    schedule.assert_called_once()
    args, kwargs = schedule.call_args
    # The scheduled retry says so, so it is not mistaken for an early duplicate delivery.
    assert args == ((workflow.pk,), {"scheduled_retry": True})
    assert 8 <= kwargs["countdown"] <= 12


def test_too_many_transient_failures_fail_the_connection_with_a_readable_reason(
    acme, settings, fail_steps, django_capture_on_commit_callbacks
):
    settings.FABRIC_RETRY_BACKOFF_SECONDS = 0
    settings.FABRIC_STEP_MAX_ATTEMPTS = 3
    fail_steps({"verify": "transient:10"})
    with django_capture_on_commit_callbacks(execute=True):
        connection = _own_link(acme, 300)

    reason = "Verify failed after 3 attempts: Simulated timeout in verify (attempt 3)."
    connection.refresh_from_db()
    assert (connection.state, connection.pending_on, connection.status_reason) == (
        S.FAILED,
        PendingOn.REQUESTER,
        reason,
    )
    workflow = connection.workflows.get()
    assert (workflow.status, workflow.error) == (WorkflowStatus.FAILED, reason)
    assert workflow.finished_at is not None
    verify = _steps(workflow)["verify"]
    assert (verify.status, verify.attempts, verify.error) == (StepStatus.FAILED, 3, reason)
    assert _steps(workflow)["activate"].status == StepStatus.PENDING
    assert connection.events.last().message == reason
    # A failed connection keeps its bandwidth so that a retry can succeed.
    assert _committed(acme.fra, acme.ams) == [300, 300]


def test_an_unexpected_driver_exception_is_treated_as_transient(acme, settings):
    settings.FABRIC_RETRY_BACKOFF_SECONDS = 5
    workflow = _own_link(acme).workflows.get()
    with mock.patch("fabric.drivers.simulated.SimulatedDriver.run", side_effect=RuntimeError("socket closed")):
        countdown = workflow_advance(workflow.pk)
    assert countdown is not None
    step = _steps(workflow)["reserve_vlans"]
    assert (step.status, step.attempts, step.error) == (StepStatus.PENDING, 1, "Unexpected error (RuntimeError).")
    workflow.refresh_from_db()
    assert workflow.status == WorkflowStatus.RUNNING


def test_backoff_grows_exponentially_and_is_capped(settings):
    settings.FABRIC_RETRY_BACKOFF_SECONDS = 2
    settings.FABRIC_RETRY_BACKOFF_MAX_SECONDS = 60
    with mock.patch("fabric.workflows.random.uniform", return_value=1.0):
        assert [backoff_seconds(n) for n in range(1, 9)] == [2, 4, 8, 16, 32, 60, 60, 60]
    for attempts in range(1, 6):
        base = 2 * 2 ** (attempts - 1)
        samples = [backoff_seconds(attempts) for _ in range(50)]
        assert all(0.8 * base <= s <= 1.2 * base for s in samples)  # jitter spreads retries by +-20 %
    assert max(backoff_seconds(30) for _ in range(50)) == 60


# --- Safe to run twice ---------------------------------------------------------------------------
def test_a_finished_workflow_is_left_untouched(acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        connection = _own_link(acme)
    workflow = connection.workflows.get()
    before = (
        list(workflow.steps.values_list("status", "attempts", "finished_at")),
        Workflow.objects.get(pk=workflow.pk).updated_at,
        connection.events.count(),
    )

    assert workflow_advance(workflow.pk) is None
    run_workflow(workflow.pk)

    after = (
        list(workflow.steps.values_list("status", "attempts", "finished_at")),
        Workflow.objects.get(pk=workflow.pk).updated_at,
        connection.events.count(),
    )
    assert after == before
    assert Connection.objects.get(pk=connection.pk).state == S.ACTIVE


def test_a_step_another_worker_is_running_is_skipped_until_it_times_out(acme, settings):
    settings.FABRIC_STEP_TIMEOUT_SECONDS = 300
    connection = _own_link(acme)
    workflow = connection.workflows.get()
    first = workflow.steps.get(position=1)
    Workflow.objects.filter(pk=workflow.pk).update(status=WorkflowStatus.RUNNING)
    WorkflowStep.objects.filter(pk=first.pk).update(status=StepStatus.RUNNING, attempts=1, started_at=timezone.now())

    assert workflow_advance(workflow.pk) is None
    first.refresh_from_db()
    assert (first.status, first.attempts) == (StepStatus.RUNNING, 1)
    assert workflow.steps.filter(attempts=0).count() == 4
    assert Connection.objects.get(pk=connection.pk).state == S.PROVISIONING

    # The worker died mid-step: once the step has timed out, it is run again.
    WorkflowStep.objects.filter(pk=first.pk).update(started_at=timezone.now() - timedelta(seconds=301))
    assert workflow_advance(workflow.pk) is None
    first.refresh_from_db()
    assert (first.status, first.attempts) == (StepStatus.SUCCEEDED, 2)
    assert Workflow.objects.get(pk=workflow.pk).status == WorkflowStatus.SUCCEEDED
    assert Connection.objects.get(pk=connection.pk).state == S.ACTIVE


def test_a_worker_that_dies_mid_way_through_an_immediate_run_leaves_nothing_half_recorded(acme, engine):
    """Immediate steps run in one transaction: a worker killed in the middle (here: an exception
    that is no driver error, as a SIGTERM's would be) rolls all of it back, and the next delivery
    runs every step once. Step by step, what was committed before the kill stays recorded."""
    connection = _own_link(acme)
    workflow = connection.workflows.get()
    real_run = SimulatedDriver.run

    def dies_in_verify(driver, step, subject):
        if step == "verify":
            raise SystemExit("killed")
        return real_run(driver, step, subject)

    with mock.patch.object(SimulatedDriver, "run", dies_in_verify), pytest.raises(SystemExit):
        workflow_advance(workflow.pk)

    steps = _steps(workflow)
    if engine == "immediate":
        assert {name: (step.status, step.attempts) for name, step in steps.items()} == {
            name: (StepStatus.PENDING, 0) for name in steps
        }
        assert Workflow.objects.get(pk=workflow.pk).status == WorkflowStatus.PENDING
    else:
        assert [(step.status, step.attempts) for step in steps.values()] == [
            (StepStatus.SUCCEEDED, 1),
            (StepStatus.SUCCEEDED, 1),
            (StepStatus.SUCCEEDED, 1),
            (StepStatus.RUNNING, 1),
            (StepStatus.PENDING, 0),
        ]
        WorkflowStep.objects.filter(pk=steps["verify"].pk).update(started_at=timezone.now() - timedelta(days=1))

    assert workflow_advance(workflow.pk) is None
    steps = _steps(workflow)
    assert {step.status for step in steps.values()} == {StepStatus.SUCCEEDED}
    assert steps["verify"].attempts == (1 if engine == "immediate" else 2)
    assert all(step.started_at and step.finished_at for step in steps.values())
    assert Connection.objects.get(pk=connection.pk).state == S.ACTIVE
    assert connection.events.filter(to_state=S.ACTIVE).count() == 1


def test_a_workflow_takes_a_bounded_number_of_statements(acme, engine, django_assert_max_num_queries):
    workflow = _own_link(acme).workflows.get()
    # Immediate: lock, steps, subject, the steps' outcome, the workflow's, then ACTIVE with its
    # timeline and audit entry (one statement on PostgreSQL, two elsewhere), notification and
    # webhooks: 12 with BEGIN/COMMIT, in one transaction.
    # Step by step: a transaction around every step (the driver waits outside the lock): 48.
    bound = (12 if engine == "immediate" else 48) + (db_connection.vendor != "postgresql")
    with django_assert_max_num_queries(bound):
        assert workflow_advance(workflow.pk) is None
    assert Connection.objects.get(pk=workflow.connection_id).state == S.ACTIVE


# --- The sweeper ---------------------------------------------------------------------------------
def test_the_sweeper_rescues_a_workflow_whose_message_was_lost(acme, settings):
    settings.FABRIC_STALL_SECONDS = 120
    connection = _own_link(acme)  # committed, but the on-commit enqueue never happened
    workflow = connection.workflows.get()
    assert stalled_workflow_ids() == []  # recent work is given time

    _age(workflow, 121)
    assert stalled_workflow_ids() == [workflow.pk]
    assert sweep_stalled_workflows() == 1

    connection.refresh_from_db()
    assert connection.state == S.ACTIVE
    assert Workflow.objects.get(pk=workflow.pk).status == WorkflowStatus.SUCCEEDED
    assert stalled_workflow_ids() == []
    assert sweep_stalled_workflows() == 0


def test_the_sweeper_leaves_scheduled_retries_and_finished_work_alone(
    acme, settings, django_capture_on_commit_callbacks
):
    settings.FABRIC_STALL_SECONDS = 120
    with django_capture_on_commit_callbacks(execute=True):
        done = _own_link(acme, name="done").workflows.get()
    waiting = _own_link(acme, name="waiting").workflows.get()
    Workflow.objects.filter(pk=waiting.pk).update(
        status=WorkflowStatus.RUNNING, next_attempt_at=timezone.now() + timedelta(seconds=60)
    )
    _age(done, 3600)
    _age(waiting, 3600)

    assert stalled_workflow_ids() == []
    assert sweep_stalled_workflows() == 0
    assert _steps(waiting)["reserve_vlans"].attempts == 0

    # A retry that is long overdue (its message was lost too) is rescued.
    Workflow.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=600))
    _age(waiting, 3600)
    assert stalled_workflow_ids() == [waiting.pk]


def test_the_sweeper_rescues_a_workflow_whose_worker_died(acme, settings):
    settings.FABRIC_STALL_SECONDS = 120
    settings.FABRIC_STEP_TIMEOUT_SECONDS = 300
    connection = _own_link(acme)
    workflow = connection.workflows.get()
    long_ago = timezone.now() - timedelta(seconds=900)
    WorkflowStep.objects.filter(workflow=workflow, position=1).update(
        status=StepStatus.RUNNING, attempts=1, started_at=long_ago
    )
    Workflow.objects.filter(pk=workflow.pk).update(status=WorkflowStatus.RUNNING, updated_at=long_ago)

    assert sweep_stalled_workflows() == 1
    assert Connection.objects.get(pk=connection.pk).state == S.ACTIVE


# --- A failed bandwidth change -------------------------------------------------------------------
def test_a_modify_that_fails_permanently_keeps_the_old_bandwidth_and_releases_the_reservation(
    acme, fail_steps, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        connection = _own_link(acme, 400)
    fail_steps({"reconfigure_z_side": "permanent"})
    with django_capture_on_commit_callbacks(execute=True):
        connection_modify_bandwidth(membership=acme.member, connection=connection, bandwidth_mbps=900)

    connection.refresh_from_db()
    assert (connection.state, connection.pending_on) == (S.ACTIVE, PendingOn.NONE)
    assert (connection.bandwidth_mbps, connection.requested_bandwidth_mbps) == (400, None)
    assert _committed(acme.fra, acme.ams) == [400, 400]
    modify = connection.workflows.get(kind=WorkflowKind.CONNECTION_MODIFY)
    reason = "Reconfigure z side failed: Simulated permanent failure in reconfigure z side."
    assert (modify.status, modify.error) == (WorkflowStatus.FAILED, reason)
    last = connection.events.last()
    assert (last.from_state, last.to_state) == (S.MODIFYING, S.ACTIVE)
    assert last.message == f"Bandwidth change failed, still 400 Mbps: {reason}"

    # The released capacity can be used again.
    fail_steps({})
    with django_capture_on_commit_callbacks(execute=True):
        connection_modify_bandwidth(membership=acme.member, connection=connection, bandwidth_mbps=1000)
    connection.refresh_from_db()
    assert (connection.state, connection.bandwidth_mbps) == (S.ACTIVE, 1000)
    assert _committed(acme.fra, acme.ams) == [1000, 1000]


def test_a_failed_decrease_keeps_the_old_bandwidth_reserved(acme, fail_steps, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        connection = _own_link(acme, 400)
    fail_steps({"verify": "permanent"})
    with django_capture_on_commit_callbacks(execute=True):
        connection_modify_bandwidth(membership=acme.member, connection=connection, bandwidth_mbps=100)
    connection.refresh_from_db()
    assert (connection.state, connection.bandwidth_mbps) == (S.ACTIVE, 400)
    assert _committed(acme.fra, acme.ams) == [400, 400]


# --- A real worker -------------------------------------------------------------------------------
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_provisions_a_committed_request(celery_worker, acme):
    connection = _own_link(acme)  # the service's transaction commits, then the task is sent
    assert connection.state == S.PROVISIONING

    wait_for(lambda: Connection.objects.get(pk=connection.pk).state == S.ACTIVE)
    workflow = connection.workflows.get()
    assert workflow.status == WorkflowStatus.SUCCEEDED
    assert set(workflow.steps.values_list("status", flat=True)) == {StepStatus.SUCCEEDED}
    assert list(connection.events.values_list("to_state", flat=True)) == [
        S.PENDING_APPROVAL,
        S.APPROVED,
        S.PROVISIONING,
        S.ACTIVE,
    ]
