"""Topology benchmarks: the map page, the logical view and the API for an organization with 1,000 connections.

The organization has 40 ports in 20 metros on three continents and 1,000 connections (written straight
to the tables, as provisioning leaves them): 60 % to a provider's ports in 20 other metros, the rest
between its own ports; most ACTIVE, the others spread over the pending, in-progress and failed states,
bandwidths from 50 Mbps to 10 Gbps. The active ones carry an hour of 5-minute telemetry rollups, so
every edge's utilisation is read. A viewer asks (server time: the in-process test client, no network):

* ``topology.api_1000``: ``GET /api/v1/topology/`` (JSON) and ``?format=graphml``;
* ``topology.pages_1000``: ``GET /fabric/topology/`` (the map) and ``/fabric/topology/logical/``.

Payload is the size of the body as sent (no compression). Queries are counted per request.
"""

from __future__ import annotations

import functools
import random
from datetime import timedelta

from django.test import Client
from django.utils import timezone

from bench import data
from bench.runner import (
    BenchmarkError,
    Figure,
    api_client,
    benchmark,
    check_status,
    count_queries,
    latency_figures,
    measure,
)
from fabric.choices import ConnectionState, PendingOn, PortSpeed, PortState, Priority, Region
from fabric.models import Connection, Metro, Port, TelemetryRollup
from fabric.services import metros_load
from fabric.telemetry import FIVE_MINUTES, floor_time
from hub.choices import OrganizationKind, Role, TokenScope
from hub.middleware import SESSION_ORG_KEY
from hub.services import api_token_create

CONNECTIONS = 1_000
METROS_PER_SIDE = 20
PORTS_PER_METRO = 2
# State of the n-th connection out of every 20: mostly in service, some of everything else.
STATE_CYCLE = [ConnectionState.ACTIVE] * 14 + [
    ConnectionState.PENDING_APPROVAL,
    ConnectionState.PENDING_APPROVAL,
    ConnectionState.PROVISIONING,
    ConnectionState.APPROVED,
    ConnectionState.MODIFYING,
    ConnectionState.FAILED,
]
PENDING_ON = {
    ConnectionState.ACTIVE: PendingOn.NONE,
    ConnectionState.PENDING_APPROVAL: PendingOn.PROVIDER,
    ConnectionState.PROVISIONING: PendingOn.FABRIC,
    ConnectionState.APPROVED: PendingOn.FABRIC,
    ConnectionState.MODIFYING: PendingOn.FABRIC,
    ConnectionState.FAILED: PendingOn.REQUESTER,
}
BANDWIDTHS = [50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000]
REQUESTS = 30
WARMUP = 3


def _spread_metros(count: int, offset: int) -> list[Metro]:
    """``count`` metros taken round-robin from the three regions (so lines cross oceans)."""
    by_region = {region: list(Metro.objects.filter(region=region).order_by("code")) for region in Region.values}
    picked: list[Metro] = []
    i = offset
    while len(picked) < count:
        region = Region.values[i % 3]
        pool = by_region[region]
        metro = pool[(i // 3) % len(pool)]
        if metro not in picked:
            picked.append(metro)
        i += 1
    return picked


def _ports(org, metros, tag: str) -> list[Port]:
    return Port.objects.bulk_create(
        Port(
            organization=org,
            metro=metro,
            name=f"bench-{tag}-{metro.code.lower()}-{n}",
            speed_mbps=PortSpeed.G400,
            capacity_mbps=PortSpeed.G400 * 10,
            state=PortState.ACTIVE,
        )
        for metro in metros
        for n in range(PORTS_PER_METRO)
    )


@functools.cache
def _world():
    """The organization, a viewer's read token and a logged-in portal client for the same viewer."""
    if not Metro.objects.exists():
        metros_load()
    rng = random.Random(1000)
    tenant = data.create_tenants(1, members=2, role=Role.VIEWER, tokens_per_member=0)[0]
    provider = data.create_organizations(1, kind=OrganizationKind.PROVIDER)[0]
    tag = data.new_tag()
    mine = _ports(tenant.org, _spread_metros(METROS_PER_SIDE, 0), tag)
    theirs = _ports(provider, _spread_metros(METROS_PER_SIDE, 31), f"{tag}-p")
    connections = []
    for i in range(CONNECTIONS):
        state = STATE_CYCLE[i % len(STATE_CYCLE)]
        a_port = mine[i % len(mine)]
        z_port = theirs[rng.randrange(len(theirs))] if i % 5 < 3 else mine[(i * 7 + 3) % len(mine)]
        if z_port == a_port:
            z_port = mine[(i + 1) % len(mine)]
        connections.append(
            Connection(
                organization=tenant.org,
                name=f"bench-topology-{i:04d}",
                a_port=a_port,
                a_vlan=100 + i // len(mine),
                z_port=z_port,
                z_vlan=None if state == ConnectionState.PENDING_APPROVAL else 1000 + i,
                bandwidth_mbps=BANDWIDTHS[rng.randrange(len(BANDWIDTHS))],
                state=state,
                pending_on=PENDING_ON[state],
                priority=Priority.PRIMARY,
                created_by=tenant.users[0],
            )
        )
    made = Connection.objects.bulk_create(connections, batch_size=500)
    now = timezone.now()
    first_bucket = floor_time(now - timedelta(hours=1), FIVE_MINUTES)
    TelemetryRollup.objects.bulk_create(
        (
            TelemetryRollup(
                connection=connection,
                resolution_seconds=FIVE_MINUTES,
                bucket=first_bucket + timedelta(seconds=FIVE_MINUTES * b),
                bytes_in=rng.randrange(10**8, 10**10),
                bytes_out=rng.randrange(10**8, 10**10),
                packets_in=10**6,
                packets_out=10**6,
                drops=0,
                max_bps_in=1e8,
                max_bps_out=1e8,
                samples=30,
            )
            for connection in made
            if connection.state == ConnectionState.ACTIVE
            for b in range(12)
        ),
        batch_size=2000,
    )
    data.analyze()
    viewer = tenant.memberships[1]
    _, secret = api_token_create(membership=viewer, name="bench topology", scopes=[TokenScope.READ])
    portal = Client()
    portal.force_login(viewer.user, backend="django.contrib.auth.backends.ModelBackend")
    session = portal.session
    session[SESSION_ORG_KEY] = tenant.org.pk
    session.save()
    return api_client(secret), portal


def _payload_kb(response) -> float:
    return round(len(response.content) / 1024, 1)


def _check_graph(body: dict) -> None:
    if len(body.get("edges", [])) != CONNECTIONS:
        raise BenchmarkError(f"Expected {CONNECTIONS} edges, got {len(body.get('edges', []))}.")
    if not any(edge["utilisation"] for edge in body["edges"]):
        raise BenchmarkError("No edge carries utilisation: the telemetry read found nothing.")


@benchmark(
    "topology.api_1000",
    target=[
        "json.p95 <= 300 ms",
        "json.payload <= 500 KB",
        "graphml.p95 <= 300 ms",
        "json.queries <= 12",
    ],
)
def topology_api():
    """GET /api/v1/topology/ (JSON and GraphML), 1,000 connections, viewer token."""
    client, _ = _world()
    url = "/api/v1/topology/"
    figures = []
    for name, params in (("json", {}), ("graphml", {"format": "graphml"})):
        response = check_status(client.get(url, params))
        if name == "json":
            _check_graph(response.json())
        samples = measure(lambda i, params=params: client.get(url, params), n=REQUESTS, warmup=WARMUP)
        figures += [
            *latency_figures(samples, prefix=name),
            Figure(f"{name}.payload", _payload_kb(response), "KB"),
            Figure(f"{name}.queries", count_queries(lambda i, params=params: client.get(url, params)), "queries"),
        ]
    return figures


@benchmark(
    "topology.pages_1000",
    target=[
        "map.p95 <= 300 ms",
        "map.payload <= 500 KB",
        "logical.p95 <= 300 ms",
        "logical.payload <= 500 KB",
        "map.queries <= 20",
    ],
)
def topology_pages():
    """GET /fabric/topology/ and /fabric/topology/logical/ (full pages), 1,000 connections, viewer."""
    _, portal = _world()
    figures = []
    for name, url in (("map", "/fabric/topology/"), ("logical", "/fabric/topology/logical/")):
        response = check_status(portal.get(url))
        if b'id="topology-figure-data"' not in response.content:
            raise BenchmarkError(f"{url} has no figure.")
        samples = measure(lambda i, url=url: portal.get(url), n=REQUESTS, warmup=WARMUP)
        figures += [
            *latency_figures(samples, prefix=name),
            Figure(f"{name}.payload", _payload_kb(response), "KB"),
            Figure(f"{name}.queries", count_queries(lambda i, url=url: portal.get(url)), "queries"),
        ]
    return figures
