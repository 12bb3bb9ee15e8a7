"""The workflow engine: recorded steps run by Celery, safe to run twice.

``workflow_start`` is called inside a service's transaction: it records the workflow and its steps
and enqueues the task on commit. ``workflow_advance`` (the task's body) locks the workflow row,
skips steps already done, runs the next one through the driver outside the lock, records the
outcome, and loops. A driver whose steps finish at once (``FabricDriver.immediate``: no device or
network to wait for, e.g. the simulator at 0 s a step) has its remaining steps run back to back in
one transaction under the workflow's lock instead, each recorded with its status, attempts and
error. Transient driver errors are retried with exponential backoff (the task is
re-enqueued with a countdown) until ``FABRIC_STEP_MAX_ATTEMPTS``; then, or on a permanent error,
the workflow fails and the service records a reason a person can read. A periodic sweeper
re-enqueues workflows that stalled (a lost message, a dead worker).
"""

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from fabric.choices import StepStatus, WorkflowKind, WorkflowStatus
from fabric.drivers import DriverError, TransientDriverError, get_driver
from fabric.inserts import insert_with_children
from fabric.models import Workflow, WorkflowStep

logger = logging.getLogger(__name__)

STEPS: dict[str, tuple[str, ...]] = {
    WorkflowKind.PORT_PROVISION: ("allocate_port", "configure_port", "verify_port", "activate_port"),
    WorkflowKind.PORT_DECOMMISSION: ("shutdown_port", "release_port"),
    WorkflowKind.CONNECTION_PROVISION: ("reserve_vlans", "configure_a_side", "configure_z_side", "verify", "activate"),
    WorkflowKind.CONNECTION_MODIFY: ("reconfigure_a_side", "reconfigure_z_side", "verify"),
    WorkflowKind.CONNECTION_DEPROVISION: ("unconfigure_a_side", "unconfigure_z_side", "release_vlans"),
}
FINISHED = (WorkflowStatus.SUCCEEDED, WorkflowStatus.FAILED)


def workflow_start(*, kind: str, port=None, connection=None) -> Workflow:
    """Record a workflow and enqueue it when the surrounding transaction commits."""
    from fabric.tasks import run_workflow

    workflow = Workflow(kind=kind, port=port, connection=connection)
    steps = [WorkflowStep(workflow=workflow, position=index, name=name) for index, name in enumerate(STEPS[kind], 1)]
    insert_with_children(workflow, steps, fk="workflow")
    # A broker outage must not fail the request: the workflow is recorded and the sweeper enqueues it.
    transaction.on_commit(lambda: run_workflow.delay(workflow.pk), robust=True)
    return workflow


def backoff_seconds(attempts: int) -> float:
    base = settings.FABRIC_RETRY_BACKOFF_SECONDS * (2 ** max(attempts - 1, 0))
    jitter = random.uniform(0.8, 1.2)  # noqa: S311 - spreading retries, not security
    return min(base * jitter, settings.FABRIC_RETRY_BACKOFF_MAX_SECONDS)


def _subject(workflow: Workflow, *, lock: bool = False):
    """The workflow's connection or port, as the driver needs it; ``lock``: locked for the rest of
    the transaction, loaded as the services that conclude the workflow need it."""
    from fabric import services

    if lock:
        return services.locked_subject(workflow)
    if workflow.connection_id:
        from fabric.models import Connection

        return Connection.objects.select_related("a_port__metro", "z_port__metro").get(pk=workflow.connection_id)
    from fabric.models import Port

    return Port.objects.select_related("metro").get(pk=workflow.port_id)


def _lock(workflow_id: int) -> Workflow | None:
    return Workflow.objects.select_for_update().filter(pk=workflow_id).first()


def _may_advance(workflow: Workflow | None, now, *, scheduled_retry: bool) -> bool:
    """Whether this delivery should advance the (locked) workflow at all."""
    if workflow is None or workflow.status in FINISHED:
        return False
    # A retry is already scheduled: only that scheduled delivery runs it.
    return not (workflow.next_attempt_at and workflow.next_attempt_at > now and not scheduled_retry)


def _taken_by_another_worker(step: WorkflowStep, now) -> bool:
    timeout = timedelta(seconds=settings.FABRIC_STEP_TIMEOUT_SECONDS)
    return step.status == StepStatus.RUNNING and step.started_at is not None and step.started_at > now - timeout


def workflow_advance(workflow_id: int, *, scheduled_retry: bool = False) -> float | None:
    """Run the remaining steps. Returns a countdown when a step must be retried later, else None.

    Other deliveries (a sweeper's, a duplicate) leave a workflow alone while a retry is scheduled;
    the scheduled retry itself (``scheduled_retry``) runs it.
    """
    driver = get_driver()
    if driver.immediate:
        return _advance_immediately(driver, workflow_id, scheduled_retry=scheduled_retry)
    subject = None
    done_step_id = None  # the step this call just ran, recorded together with the start of the next one
    while True:
        now = timezone.now()
        with transaction.atomic():
            workflow = _lock(workflow_id)
            if done_step_id is not None:
                WorkflowStep.objects.filter(pk=done_step_id).update(status=StepStatus.SUCCEEDED, finished_at=now)
                done_step_id = None
            if not _may_advance(workflow, now, scheduled_retry=scheduled_retry):
                return None
            step = workflow.steps.exclude(status=StepStatus.SUCCEEDED).order_by("position").first()
            if step is None:
                _finish(workflow, succeeded=True)
                return None
            if _taken_by_another_worker(step, now):
                return None
            step.status, step.attempts, step.started_at, step.error = StepStatus.RUNNING, step.attempts + 1, now, ""
            step.save(update_fields=["status", "attempts", "started_at", "error"])
            workflow.status, workflow.next_attempt_at = WorkflowStatus.RUNNING, None
            workflow.save(update_fields=["status", "next_attempt_at", "updated_at"])
            if subject is None:
                subject = _subject(workflow)

        try:
            driver.run(step.name, subject)
        except TransientDriverError as exc:
            return _record_transient(workflow_id, step.pk, str(exc))
        except DriverError as exc:
            _record_failure(workflow_id, step.pk, str(exc))
            return None
        except Exception as exc:
            logger.exception("Unexpected error in workflow %s step %s", workflow_id, step.name)
            return _record_transient(workflow_id, step.pk, f"Unexpected error ({exc.__class__.__name__}).")

        done_step_id = step.pk


def _advance_immediately(driver, workflow_id: int, *, scheduled_retry: bool) -> float | None:
    """``workflow_advance`` for an immediate driver: every remaining step in one transaction.

    The workflow's row lock is held throughout, so no other worker can run a step meanwhile; a
    worker that dies mid-way leaves nothing half-recorded (the transaction rolls back and a later
    delivery, or the sweeper, starts again from the last committed step: steps are idempotent).
    The steps that succeeded are marked in one UPDATE; a failing step is recorded as in the
    step-by-step path (a transient error schedules a retry with backoff, the rest end the workflow).
    """
    with transaction.atomic():
        now = timezone.now()
        workflow = _lock(workflow_id)
        if not _may_advance(workflow, now, scheduled_retry=scheduled_retry):
            return None
        remaining = [step for step in workflow.steps.order_by("position") if step.status != StepStatus.SUCCEEDED]
        if remaining and _taken_by_another_worker(remaining[0], now):
            return None
        subject = _subject(workflow, lock=True) if remaining else None
        done: list[WorkflowStep] = []
        for step in remaining:
            step.status, step.attempts, step.started_at, step.error = StepStatus.RUNNING, step.attempts + 1, now, ""
            try:
                driver.run(step.name, subject)
            except TransientDriverError as exc:
                _mark_succeeded(done, started_at=now)
                return _retry_later(workflow, step, str(exc))
            except DriverError as exc:
                _mark_succeeded(done, started_at=now)
                _fail_step(workflow, step, f"{step.label} failed: {exc}")
                return None
            except Exception as exc:
                logger.exception("Unexpected error in workflow %s step %s", workflow_id, step.name)
                _mark_succeeded(done, started_at=now)
                return _retry_later(workflow, step, f"Unexpected error ({exc.__class__.__name__}).")
            done.append(step)
        _mark_succeeded(done, started_at=now)
        _finish(workflow, succeeded=True, subject=subject)
        return None


def _mark_succeeded(steps: list[WorkflowStep], *, started_at) -> None:
    """Record steps run once each in this transaction (one UPDATE: their attempts go up by one)."""
    if steps:
        WorkflowStep.objects.filter(pk__in=[step.pk for step in steps]).update(
            status=StepStatus.SUCCEEDED,
            attempts=F("attempts") + 1,
            error="",
            started_at=started_at,
            finished_at=timezone.now(),
        )


def _record_transient(workflow_id: int, step_id: int, message: str) -> float | None:
    with transaction.atomic():
        workflow = _lock(workflow_id)
        step = WorkflowStep.objects.get(pk=step_id)
        return _retry_later(workflow, step, message)


def _retry_later(workflow: Workflow, step: WorkflowStep, message: str) -> float | None:
    """A transient error: schedule the step again after a backoff, or fail it once out of attempts."""
    if step.attempts >= settings.FABRIC_STEP_MAX_ATTEMPTS:
        _fail_step(workflow, step, f"{step.label} failed after {step.attempts} attempts: {message}")
        return None
    countdown = backoff_seconds(step.attempts)
    step.status, step.error = StepStatus.PENDING, message[:500]
    step.save(update_fields=["status", "error", "attempts", "started_at"])
    workflow.status = WorkflowStatus.RUNNING
    workflow.next_attempt_at = timezone.now() + timedelta(seconds=countdown)
    workflow.save(update_fields=["status", "next_attempt_at", "updated_at"])
    return countdown


def _record_failure(workflow_id: int, step_id: int, message: str) -> None:
    with transaction.atomic():
        workflow = _lock(workflow_id)
        step = WorkflowStep.objects.get(pk=step_id)
        _fail_step(workflow, step, f"{step.label} failed: {message}")


def _fail_step(workflow: Workflow, step: WorkflowStep, reason: str) -> None:
    step.status, step.error, step.finished_at = StepStatus.FAILED, reason[:500], timezone.now()
    step.save(update_fields=["status", "error", "finished_at", "attempts", "started_at"])
    workflow.error = reason[:500]
    _finish(workflow, succeeded=False)


def _finish(workflow: Workflow, *, succeeded: bool, subject=None) -> None:
    """``subject``: the workflow's port or connection if this transaction already locked it."""
    from fabric import services

    workflow.status = WorkflowStatus.SUCCEEDED if succeeded else WorkflowStatus.FAILED
    workflow.finished_at = timezone.now()
    workflow.save(update_fields=["status", "error", "finished_at", "updated_at"])
    if succeeded:
        services.workflow_succeeded(workflow=workflow, locked=subject)
    else:
        services.workflow_failed(workflow=workflow, reason=workflow.error, locked=subject)


def stalled_workflow_ids(limit: int = 500) -> list[int]:
    """Unfinished workflows nobody has touched for ``FABRIC_STALL_SECONDS`` and not waiting for a retry."""
    cutoff = timezone.now() - timedelta(seconds=settings.FABRIC_STALL_SECONDS)
    return list(
        Workflow.objects.filter(status__in=[WorkflowStatus.PENDING, WorkflowStatus.RUNNING], updated_at__lt=cutoff)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=cutoff))
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
