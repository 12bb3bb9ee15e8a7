"""The Celery application.

Queues: ``default`` (mail, housekeeping), ``workflows`` (provisioning), ``telemetry`` (ingest,
rollups, detection) and ``webhooks`` (outbound delivery). Tasks are acknowledged after they run
and requeued if the worker dies, so every task must be safe to run twice.
"""

import os

from celery import Celery
from celery.schedules import crontab
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUES = ("default", "workflows", "telemetry", "webhooks")

app.conf.update(
    task_queues=[Queue(name) for name in QUEUES],
    task_default_queue="default",
    task_routes={
        # The first matching pattern wins: the specific one comes before the catch-all.
        "fabric.tasks.telemetry_*": {"queue": "telemetry"},
        "fabric.tasks.*": {"queue": "workflows"},
        "security.tasks.*": {"queue": "telemetry"},
        "hub.tasks.webhook_*": {"queue": "webhooks"},
    },
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_track_started=True,
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    beat_schedule={
        "purge-expired-idempotency-keys": {
            "task": "hub.tasks.purge_expired_idempotency_keys",
            "schedule": crontab(minute=17),
        },
        "sweep-stalled-workflows": {
            "task": "fabric.tasks.sweep_stalled_workflows",
            "schedule": 60.0,
        },
        "send-unsent-invitations": {
            "task": "hub.tasks.send_unsent_invitations",
            "schedule": 300.0,
        },
        "purge-expired-invitations": {
            "task": "hub.tasks.purge_expired_invitations",
            "schedule": crontab(minute=23, hour=3),
        },
        "sweep-stalled-webhook-deliveries": {
            "task": "hub.tasks.webhook_sweep",
            "schedule": 60.0,
        },
        "purge-old-webhook-deliveries": {
            "task": "hub.tasks.webhook_purge_deliveries",
            "schedule": crontab(minute=41, hour=3),
        },
        "purge-old-notifications": {
            "task": "hub.tasks.purge_old_notifications",
            "schedule": crontab(minute=47, hour=3),
        },
        "telemetry-rollup": {
            "task": "fabric.tasks.telemetry_rollup",
            "schedule": 60.0,
        },
        "telemetry-retention": {
            "task": "fabric.tasks.telemetry_retention",
            "schedule": crontab(minute=29),
        },
        "telemetry-simulate": {  # a no-op unless FABRIC_TELEMETRY_SIMULATE is on (the demo)
            "task": "fabric.tasks.telemetry_simulate",
            "schedule": 60.0,
        },
        "purge-old-security-scans": {
            "task": "security.tasks.purge_old_scans",
            "schedule": crontab(minute=53, hour=3),
        },
        "security-dashboard-rollup": {
            "task": "security.tasks.dashboard_rollup",
            "schedule": 60.0,
        },
        "sweep-network-detection": {
            "task": "security.tasks.network_sweep",
            "schedule": 300.0,
        },
    },
)
app.autodiscover_tasks()


def _ensure_filesystem_broker_folders() -> None:
    """kombu's filesystem transport expects its folders to exist."""
    from pathlib import Path

    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


@app.on_after_configure.connect
def _prepare_broker(sender, **kwargs):
    if str(sender.conf.broker_url or "").startswith("filesystem://"):
        _ensure_filesystem_broker_folders()
