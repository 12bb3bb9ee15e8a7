"""Shared set-up of the threat dashboard tests: an organization with a connection and alerts."""

from fabric.choices import ConnectionState
from fabric.models import Connection, Metro
from fabric.services import metros_load
from security.choices import AlertCategory, AlertSource, Severity
from security.services import alert_raise
from tests.fabric.factories import PortFactory


def make_connection(org, *, name="fr-to-ny", a_metro="FR", z_metro="NY", bandwidth_mbps=1000):
    if not Metro.objects.exists():
        metros_load()
    a_port = PortFactory(
        organization=org, metro=Metro.objects.get(code=a_metro), speed_mbps=10_000, capacity_mbps=10_000
    )
    z_port = PortFactory(
        organization=org, metro=Metro.objects.get(code=z_metro), speed_mbps=10_000, capacity_mbps=10_000
    )
    return Connection.objects.create(
        organization=org,
        name=name,
        a_port=a_port,
        a_vlan=100,
        z_port=z_port,
        z_vlan=100,
        bandwidth_mbps=bandwidth_mbps,
        state=ConnectionState.ACTIVE,
    )


def raise_alert(org, *, key, title=None, severity=Severity.HIGH, category=AlertCategory.EXFILTRATION, **kwargs):
    alert, _ = alert_raise(
        org=org,
        category=category,
        severity=severity,
        source=kwargs.pop("source", AlertSource.NETWORK),
        dedup_key=key,
        title=title or f"alert {key}",
        evidence=kwargs.pop("evidence", {"baseline": 1.0, "observed": 9.0}),
        **kwargs,
    )
    return alert
