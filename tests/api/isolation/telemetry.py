"""Tenant-isolation cases of telemetry (merged into MATRIX by tests/api/test_isolation.py).

Org B owns a connection of its own (``world.extra["connection_b"]``), so its bulk ingest naming
both connections succeeds for its own sample and must refuse the one for org A's connection.
"""

from datetime import UTC, timedelta

from django.utils import timezone

from fabric.choices import ConnectionState, PortState
from fabric.models import Connection, Metro, Port, TelemetrySample
from hub.roles import Action
from tests.api.isolation import API, PORTAL, Case, _conn, _port, _r


def _sample(**extra) -> dict:
    when = (timezone.now() - timedelta(minutes=30)).astimezone(UTC).isoformat()
    return {"time": when, "bytes_in": 1, "bytes_out": 2, "packets_in": 1, "packets_out": 1, **extra}


def _bulk(w) -> dict:
    return {
        "samples": [
            _sample(connection=str(w.connection_a.public_id)),
            _sample(connection=str(w.extra["connection_b"].public_id)),
        ]
    }


CASES: dict[str, Case] = {
    "connection-telemetry [post]": Case(
        API,
        _r("connection-telemetry", public_id=_conn),
        "post",
        Action.FABRIC_MANAGE,
        names_object=True,
        data=lambda w: {"samples": [_sample()]},
    ),
    "telemetry-bulk [post]": Case(API, _r("telemetry-bulk"), "post", Action.FABRIC_MANAGE, data=_bulk),
    "connection-stats": Case(
        API, _r("connection-stats", public_id=_conn), action=Action.FABRIC_VIEW, names_object=True
    ),
    "fabric:connection-utilisation": Case(
        PORTAL, _r("fabric:connection-utilisation", connection_id=_conn), action=Action.FABRIC_VIEW, names_object=True
    ),
    "fabric:port-utilisation": Case(
        PORTAL, _r("fabric:port-utilisation", port_id=_port), action=Action.FABRIC_VIEW, names_object=True
    ),
}


def extend_world(world) -> None:
    """Org B gets two ports and a connection in service between them, to report telemetry for."""
    org_b = world.owner_b.organization
    metro = Metro.objects.get(code="FR")
    ports = [
        Port.objects.create(
            organization=org_b, metro=metro, name=name, speed_mbps=1000, capacity_mbps=1000, state=PortState.ACTIVE
        )
        for name in ("beta-telemetry-a", "beta-telemetry-z")
    ]
    world.extra["connection_b"] = Connection.objects.create(
        organization=org_b,
        name="beta-telemetry-link",
        a_port=ports[0],
        a_vlan=200,
        z_port=ports[1],
        z_vlan=200,
        bandwidth_mbps=100,
        state=ConnectionState.ACTIVE,
    )


def assert_untouched(world, *, created_by_a: bool) -> None:
    """No refused request (anonymous or another organization's) stored telemetry for org A's connection."""
    assert not TelemetrySample.objects.filter(connection=world.connection_a).exists()
