"""Shared helpers of the telemetry tests (no tests here): connections in service and samples."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from fabric.choices import ConnectionState
from fabric.models import Connection


def active_connection(*, org, a_port, z_port, name="link", bandwidth_mbps=1000, vlan=100, **extra) -> Connection:
    """A connection already in service, written straight through the ORM (no workflow)."""
    return Connection.objects.create(
        organization=org,
        name=name,
        a_port=a_port,
        a_vlan=vlan,
        z_port=z_port,
        z_vlan=vlan,
        bandwidth_mbps=bandwidth_mbps,
        state=extra.pop("state", ConnectionState.ACTIVE),
        **extra,
    )


def sample(time: datetime | str | float | None = None, **fields) -> dict:
    """One valid sample as a client would send it (an hour ago unless told)."""
    when = time or timezone.now() - timedelta(hours=1)
    if isinstance(when, datetime):
        when = when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {
        "time": when,
        "interval_seconds": 60,
        "bytes_in": 7_500_000,
        "bytes_out": 1_500_000,
        "packets_in": 6_000,
        "packets_out": 1_200,
        "drops": 0,
        **fields,
    }


def aligned_hour_ago(hours: int = 2) -> datetime:
    """The start of an hour ``hours`` hours back, so 5-minute and hourly buckets are predictable."""
    now = timezone.now().astimezone(UTC)
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)
