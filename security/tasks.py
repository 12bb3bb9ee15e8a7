"""Security's Celery tasks: thin wrappers around services."""

from celery import shared_task

from security import services


@shared_task(acks_late=True)
def purge_old_scans() -> int:
    """Delete scans older than ``SECURITY_SCAN_RETENTION_DAYS`` (beat, daily)."""
    return services.scan_purge()


@shared_task(acks_late=True, ignore_result=True)
def dashboard_rollup() -> int:
    """Roll up the threat dashboard's finished hours and recompute its dirty ones (beat, every minute)."""
    from security.rollups import rollup_advance

    return rollup_advance()


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def record_policy_denial(**arguments) -> None:
    """Record a policy denial whose request ran inside a caller's transaction that rolled back."""
    services.policy_denial_record(**arguments)


# --- Network detection (threat dashboard) ------------------------------------------------------
@shared_task(acks_late=True, ignore_result=True)
def network_analyse(connection_id: int) -> int:
    """Analyse one connection's recent telemetry; returns how many alerts it raised or counted.
    Safe to run twice: a finding already on its alert is not counted again."""
    from fabric.models import Connection
    from security.network import connection_analyse

    connection = Connection.objects.select_related("organization").filter(pk=connection_id).first()
    if connection is None:
        return 0
    return len(connection_analyse(connection))


@shared_task(acks_late=True, ignore_result=True)
def network_analyse_batch(connection_ids: list[int]) -> int:
    """Analyse the connections of one ingest call in one task (a bulk call may name thousands)."""
    return sum(network_analyse(connection_id) for connection_id in connection_ids)


@shared_task(acks_late=True, ignore_result=True)
def network_sweep() -> int:
    """Beat: analyse every connection that sent telemetry since the last sweep (and one more
    period), in case a message of ``samples_ingested`` was lost."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from fabric.models import TelemetrySample

    since = timezone.now() - timedelta(seconds=2 * settings.SECURITY_NETWORK_SWEEP_SECONDS)
    ids = list(TelemetrySample.objects.filter(time__gte=since).values_list("connection_id", flat=True).distinct())
    for connection_id in ids:
        network_analyse.delay(connection_id)
    return len(ids)
