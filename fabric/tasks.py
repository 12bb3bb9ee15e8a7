from celery import shared_task
from django.conf import settings
from django.utils import timezone

from fabric.models import Workflow
from fabric.telemetry import retention_enforce, rollup_pending
from fabric.telemetry_simulation import active_connections, simulate
from fabric.workflows import stalled_workflow_ids, workflow_advance


@shared_task(acks_late=True, ignore_result=True)
def run_workflow(workflow_id: int, scheduled_retry: bool = False) -> None:
    """Advance a workflow; a transient failure schedules this task again after a backoff."""
    countdown = workflow_advance(workflow_id, scheduled_retry=scheduled_retry)
    if countdown is not None:
        run_workflow.apply_async((workflow_id,), {"scheduled_retry": True}, countdown=countdown)


@shared_task
def sweep_stalled_workflows() -> int:
    """Re-enqueue workflows whose message was lost or whose worker died. Safe to run twice:
    a workflow already being advanced is skipped by its row lock and step state."""
    ids = stalled_workflow_ids()
    # One nudge per stall period: work still waiting in a long queue is not sent again every sweep.
    Workflow.objects.filter(pk__in=ids).update(updated_at=timezone.now())
    for workflow_id in ids:
        run_workflow.delay(workflow_id)
    return len(ids)


@shared_task(ignore_result=True)
def telemetry_rollup() -> int:
    """Roll up the 5-minute and hourly buckets that received samples since the last run."""
    return rollup_pending()


@shared_task(ignore_result=True)
def telemetry_retention() -> dict[str, int]:
    """Delete raw samples and rollups past their retention (FABRIC_TELEMETRY_*_RETENTION_DAYS)."""
    return retention_enforce()


@shared_task(ignore_result=True)
def telemetry_simulate() -> int:
    """The demo's live traffic: extends every ACTIVE connection's simulated telemetry up to now.
    Does nothing unless FABRIC_TELEMETRY_SIMULATE is on."""
    if not settings.FABRIC_TELEMETRY_SIMULATE:
        return 0
    return simulate(
        list(active_connections()), days=1, interval_seconds=settings.FABRIC_TELEMETRY_SIMULATE_INTERVAL_SECONDS
    )
