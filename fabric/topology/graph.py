"""The network an organization can see, as a graph: metros, ports and organizations (nodes) and
connections (edges), with the filters that narrow it.

Visibility follows the connection pages exactly: my ports, and of another organization only the
ports at the far end of a connection I can see (``Connection.objects.for_org``: mine, and those
landing on my ports), with no more of them than a connection page shows (name, organization, metro).

:func:`topology_graph` runs a fixed number of queries whatever the number of connections: my ports,
the connections with both ends, the metros, the organizations and the telemetry read.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from fabric.choices import LIVE_CONNECTION_STATES, ConnectionState, PortState, Region
from fabric.latency import metro_rtt
from fabric.models import Connection, Metro, Port
from fabric.telemetry import utilisation_by_connection
from hub.choices import OrganizationKind
from hub.errors import DomainError
from hub.models import Organization

#: Utilisation on the map is the average over this window (read from the 5-minute rollups).
UTILISATION_WINDOW = timedelta(hours=1)
#: States in which a connection carries traffic (only these are asked for telemetry).
CARRYING_STATES = frozenset({ConnectionState.ACTIVE, ConnectionState.MODIFYING, ConnectionState.DEPROVISIONING})
#: Most values one filter takes in one request.
MAX_FILTER_VALUES = 50
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


# --- Filters ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TopologyFilters:
    """Which part of the network to show. Empty means "any"; without ``states`` the live states.

    A connection matches ``metros``/``regions``/``providers`` when either of its ends does.
    """

    states: tuple[str, ...] = ()
    metros: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    def as_params(self) -> dict[str, str]:
        """Query parameters that select the same (comma-separated), for links and downloads."""
        pairs = {"state": self.states, "metro": self.metros, "provider": self.providers, "region": self.regions}
        return {name: ",".join(values) for name, values in pairs.items() if values}


def _values(params, name: str) -> list[str]:
    """``?state=A&state=B`` and ``?state=A,B`` alike; blanks dropped, order kept, no repeats."""
    raw = params.getlist(name) if hasattr(params, "getlist") else [params.get(name, "")]
    values = [part.strip() for value in raw for part in str(value or "").split(",") if part.strip()]
    if len(values) > MAX_FILTER_VALUES:
        raise DomainError(f"At most {MAX_FILTER_VALUES} values of {name!r}.", code="invalid_filter", field=name)
    return list(dict.fromkeys(values))


def _invalid(name: str, bad: list[str], allowed: str) -> DomainError:
    listed = ", ".join(repr(value) for value in bad)
    return DomainError(f"Unknown {name} {listed}: {allowed}.", code="invalid_filter", field=name)


def topology_filters(params) -> TopologyFilters:
    """Read and check the filters of a query string; a value that names nothing is a DomainError (400)."""
    states = [value.upper() for value in _values(params, "state")]
    if bad := [value for value in states if value not in ConnectionState.values]:
        raise _invalid("state", bad, "use one of " + ", ".join(ConnectionState.values))
    regions = [value.upper() for value in _values(params, "region")]
    if bad := [value for value in regions if value not in Region.values]:
        raise _invalid("region", bad, "use one of " + ", ".join(Region.values))
    metros = [value.upper() for value in _values(params, "metro")]
    if metros:
        known = set(Metro.objects.filter(code__in=metros).values_list("code", flat=True))
        if bad := [value for value in metros if value not in known]:
            raise _invalid("metro", bad, "use a metro code such as FR or NY (GET /api/v1/metros/)")
    providers = [value.lower() for value in _values(params, "provider")]
    if providers:
        if bad := [value for value in providers if not _SLUG.match(value)]:
            raise _invalid("provider", bad, "use a provider's slug")
        known = set(
            Organization.objects.filter(slug__in=providers, kind=OrganizationKind.PROVIDER).values_list(
                "slug", flat=True
            )
        )
        if bad := [value for value in providers if value not in known]:
            raise _invalid("provider", bad, "use a provider's slug (GET /api/v1/providers/)")
    return TopologyFilters(tuple(states), tuple(metros), tuple(providers), tuple(regions))


# --- The graph -------------------------------------------------------------------------------
@dataclass
class Topology:
    """Nodes and edges as plain dicts: the API's JSON."""

    nodes: list[dict] = field(default_factory=list)
    edges: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"nodes": self.nodes, "edges": self.edges}

    def nodes_of(self, kind: str) -> list[dict]:
        return [node for node in self.nodes if node["kind"] == kind]

    def node_index(self) -> dict[str, dict]:
        return {node["id"]: node for node in self.nodes}


_CONNECTION_FIELDS = (
    "pk",
    "public_id",
    "name",
    "state",
    "pending_on",
    "bandwidth_mbps",
    "priority",
    "organization_id",
)
_END_FIELDS = ("public_id", "name", "metro_id", "organization_id", "speed_mbps", "state", "committed_mbps")
_END_WIDTH = len(_END_FIELDS)


def _end_filter(filters: TopologyFilters) -> Q:
    """Connections with either end matching the metro, region and provider filters."""
    condition = Q()
    for values, lookup in (
        (filters.metros, "metro__code__in"),
        (filters.regions, "metro__region__in"),
        (filters.providers, "organization__slug__in"),
    ):
        if values:
            condition &= Q(**{f"a_port__{lookup}": values}) | Q(**{f"z_port__{lookup}": values})
    return condition


def _metro_id(code: str) -> str:
    return f"metro:{code}"


def _port_id(public_id) -> str:
    return f"port:{public_id}"


def _org_id(slug: str) -> str:
    return f"org:{slug}"


@functools.lru_cache(maxsize=16_384)
def _route_figures(a: tuple, z: tuple) -> tuple[float, float]:
    """(distance in km, estimated RTT in ms) between two metros given as (code, latitude, longitude):
    a pure function of those values (and the shipped latency model), so the cache is never stale."""
    estimate = metro_rtt(
        Metro(code=a[0], latitude=a[1], longitude=a[2]), Metro(code=z[0], latitude=z[1], longitude=z[2])
    )
    return round(estimate.km, 1), round(estimate.estimate_ms, 2)


def topology_graph(*, org, filters: TopologyFilters | None = None, now=None) -> Topology:
    """The graph of what ``org`` may see, narrowed by ``filters``. Five queries, however large."""
    filters = filters or TopologyFilters()
    now = now or timezone.now()

    my_ports = Port.objects.for_org(org).exclude(state=PortState.DECOMMISSIONED)
    if filters.metros:
        my_ports = my_ports.filter(metro__code__in=filters.metros)
    if filters.regions:
        my_ports = my_ports.filter(metro__region__in=filters.regions)
    port_rows = list(
        my_ports.order_by("name").values_list("public_id", "name", "metro_id", "speed_mbps", "state", "committed_mbps")
    )

    connections = (
        Connection.objects.for_org(org)
        .filter(state__in=filters.states or LIVE_CONNECTION_STATES)
        .filter(_end_filter(filters))
    )
    end_fields = [f"{end}__{name}" for end in ("a_port", "z_port") for name in _END_FIELDS]
    connection_rows = list(connections.order_by("name", "pk").values_list(*_CONNECTION_FIELDS, *end_fields))

    metros = {metro.pk: metro for metro in Metro.objects.all()}
    width = len(_CONNECTION_FIELDS)
    a_ends, z_ends = slice(width, width + _END_WIDTH), slice(width + _END_WIDTH, width + 2 * _END_WIDTH)
    org_ids = {org.pk} | {row[a_ends][3] for row in connection_rows} | {row[z_ends][3] for row in connection_rows}
    orgs = {o.pk: o for o in Organization.objects.filter(pk__in=org_ids).only("pk", "slug", "name", "kind")}
    # The same connections, as a subquery: a thousand ids would cost more to send than to select.
    in_service = connections.filter(state__in=CARRYING_STATES).values("pk")
    utilisation = utilisation_by_connection(in_service, since=now - UTILISATION_WINDOW, until=now)

    def port_node(public_id, name, metro_id, owner_id, speed, state, committed) -> dict:
        node = {
            "id": _port_id(public_id),
            "kind": "port",
            "label": name,
            "mine": owner_id == org.pk,
            "metro": _metro_id(metros[metro_id].code),
            "organization": _org_id(orgs[owner_id].slug),
        }
        if owner_id == org.pk:  # of another organization's port, only what the connection page shows
            node |= {"speed_mbps": speed, "committed_mbps": committed, "state": state}
        return node

    ports: dict[str, dict] = {}
    for public_id, name, metro_id, speed, state, committed in port_rows:
        ports[_port_id(public_id)] = port_node(public_id, name, metro_id, org.pk, speed, state, committed)

    edges = []
    places = {pk: (metro.code, metro.latitude, metro.longitude) for pk, metro in metros.items()}
    latency_cache: dict[tuple[int, int], tuple[float, float]] = {}
    node_ids = {}  # port UUID -> node id: a port ends many connections, str(UUID) is not free
    for row in connection_rows:
        (pk, public_id, name, state, pending_on, bandwidth, priority, requester_id) = row[:8]
        ends = []
        for end in (row[a_ends], row[z_ends]):
            node_id = node_ids.get(end[0])
            if node_id is None:
                node_id = node_ids[end[0]] = _port_id(end[0])
                if node_id not in ports:
                    ports[node_id] = port_node(*end)
            ends.append((node_id, end[2]))
        (a_node, a_metro), (z_node, z_metro) = ends
        if (a_metro, z_metro) not in latency_cache:
            latency_cache[(a_metro, z_metro)] = _route_figures(places[a_metro], places[z_metro])
        distance_km, rtt_ms = latency_cache[(a_metro, z_metro)]
        used = utilisation.get(pk)
        edges.append(
            {
                "id": str(public_id),
                "source": a_node,
                "target": z_node,
                "label": name,
                "state": state,
                "pending_on": pending_on,
                "bandwidth_mbps": bandwidth,
                "priority": priority,
                "direction": "outgoing" if requester_id == org.pk else "incoming",
                "distance_km": distance_km,
                "latency_ms": rtt_ms,
                "utilisation": None
                if used is None
                else {
                    "bps_in": round(used.bps_in),
                    "bps_out": round(used.bps_out),
                    "percent": None if used.percent is None else round(used.percent, 1),
                },
            }
        )

    ports_per_metro = Counter(port["metro"] for port in ports.values())
    metro_nodes = [
        {
            "id": _metro_id(metro.code),
            "kind": "metro",
            "label": metro.name,
            "code": metro.code,
            "country": metro.country,
            "region": metro.region,
            "latitude": metro.latitude,
            "longitude": metro.longitude,
            "ports": ports_per_metro[_metro_id(metro.code)],
        }
        for metro in sorted(metros.values(), key=lambda m: m.code)
        if ports_per_metro[_metro_id(metro.code)]
    ]
    used_orgs = {port["organization"] for port in ports.values()}
    org_nodes = [
        {
            "id": _org_id(o.slug),
            "kind": "provider" if o.kind == OrganizationKind.PROVIDER else "organization",
            "label": o.name,
            "mine": o.pk == org.pk,
        }
        for o in sorted(orgs.values(), key=lambda o: (o.pk != org.pk, o.name.lower()))
        if _org_id(o.slug) in used_orgs
    ]
    port_nodes = sorted(ports.values(), key=lambda p: (p["metro"], not p["mine"], p["label"]))
    return Topology(nodes=[*metro_nodes, *org_nodes, *port_nodes], edges=edges)


def filter_choices(*, org) -> dict[str, list[tuple[str, str]]]:
    """Choices for the filter form: states, regions, and the metros and providers of my network (two queries)."""
    mine = Connection.objects.for_org(org)
    provider_rows = (
        Organization.objects.filter(kind=OrganizationKind.PROVIDER)
        .filter(
            Q(pk__in=mine.values("z_port__organization_id")) | Q(pk__in=mine.values("organization_id")) | Q(pk=org.pk)
        )
        .order_by("name")
        .values_list("slug", "name")
    )
    metro_rows = (
        Metro.objects.filter(
            Q(pk__in=Port.objects.for_org(org).exclude(state=PortState.DECOMMISSIONED).values("metro_id"))
            | Q(pk__in=mine.values("a_port__metro_id"))
            | Q(pk__in=mine.values("z_port__metro_id"))
        )
        .order_by("code")
        .values_list("code", "name")
    )
    return {
        "state": list(ConnectionState.choices),
        "metro": [(code, f"{code} · {name}") for code, name in metro_rows],
        "provider": list(provider_rows),
        "region": list(Region.choices),
    }
