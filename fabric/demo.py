"""Demo network for ``seed_demo``: ports in three continents and connections in several states.

Ports are created already provisioned; connections go through the services, so the worker started
by ``make demo`` provisions them live and one request waits for the provider's approval.
"""

from django.db import transaction

from fabric import services
from fabric.choices import LIVE_CONNECTION_STATES, PortState
from fabric.models import Connection, Metro, Port
from hub.choices import Role
from hub.models import Membership, Organization

# (organization slug, port name, metro code, speed in Mbps, auto-approve inbound)
PORTS = [
    ("acme", "fr-core-1", "FR", 10_000, False),
    ("acme", "ny-core-1", "NY", 10_000, False),
    ("acme", "dc-core-1", "DC", 100_000, False),
    ("acme", "sg-edge-1", "SG", 10_000, False),
    ("globex", "ld-core-1", "LD", 10_000, False),
    ("demo-provider", "fr-gpu-1", "FR", 100_000, True),
    ("demo-provider", "dc-gpu-1", "DC", 100_000, False),
    ("demo-provider", "sg-gpu-1", "SG", 100_000, False),
    ("demo-provider", "am-gpu-1", "AM", 100_000, False),
]

# (name, requester slug, A port, Z port's organization slug, Z port, Mbps, provider approves in the seed)
CONNECTIONS = [
    ("acme-fr-gpu-training", "acme", "fr-core-1", "demo-provider", "fr-gpu-1", 5_000, False),
    ("acme-ny-dc-backbone", "acme", "ny-core-1", "acme", "dc-core-1", 2_000, False),
    ("acme-dc-gpu-inference", "acme", "dc-core-1", "demo-provider", "dc-gpu-1", 10_000, True),
    ("acme-sg-gpu-burst", "acme", "sg-edge-1", "demo-provider", "sg-gpu-1", 1_000, False),
    # Long-haul links between the demo's own sites, so the map spans three continents.
    ("acme-fr-ny-transatlantic", "acme", "fr-core-1", "acme", "ny-core-1", 1_000, False),
    ("acme-sg-fr-backhaul", "acme", "sg-edge-1", "acme", "fr-core-1", 500, False),
]


def _owner_like(org: Organization) -> Membership:
    """A member who may manage the fabric (the seed's owners and admins)."""
    return (
        Membership.objects.select_related("user", "organization")
        .filter(organization=org, role__in=[Role.OWNER, Role.ADMIN])
        .order_by("created_at")
        .first()
    )


@transaction.atomic
def seed_fabric_demo() -> tuple[int, int]:
    """Create missing demo ports and connections; returns how many of each were created."""
    orgs = {org.slug: org for org in Organization.objects.filter(slug__in={row[0] for row in PORTS})}
    ports_created = 0
    for slug, name, code, speed, auto_approve in PORTS:
        _, created = Port.objects.get_or_create(
            organization=orgs[slug],
            name=name,
            defaults={
                "metro": Metro.objects.get(code=code),
                "speed_mbps": speed,
                "capacity_mbps": speed,
                "state": PortState.ACTIVE,
                "auto_approve": auto_approve,
            },
        )
        ports_created += created
    connections_created = 0
    for name, requester, a_name, z_slug, z_name, mbps, approve in CONNECTIONS:
        org = orgs[requester]
        if Connection.objects.filter(organization=org, name=name, state__in=LIVE_CONNECTION_STATES).exists():
            continue
        plan = services.connection_request(
            membership=_owner_like(org),
            name=name,
            a_port=Port.objects.get(organization=org, name=a_name),
            z_port=Port.objects.get(organization=orgs[z_slug], name=z_name),
            bandwidth_mbps=mbps,
            purchase_order="DEMO-2026",
        )
        connections_created += 1
        if approve:
            services.connection_approve(membership=_owner_like(orgs[z_slug]), connection=plan.connections[0])
    return ports_created, connections_created
