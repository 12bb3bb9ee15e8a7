"""Home dashboard tiles of the fabric (listed in ``HUB_DASHBOARD_TILES``)."""

from datetime import timedelta

from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from fabric.choices import LIVE_CONNECTION_STATES, ConnectionState, PendingOn
from fabric.models import Connection, ConnectionEvent, Metro
from fabric.telemetry import utilisation_by_connection
from fabric.topology import bandwidth_label, rate_label
from hub.dashboard import Tile

BUSIEST_WINDOW = timedelta(hours=24)
BUSIEST_COUNT = 5
RECENT_EVENTS = 5


def metros_tile(request) -> Tile:
    by_region = dict(Metro.objects.values_list("region").annotate(n=Count("id")).order_by("region"))
    return Tile(
        title="Metros",
        template="fabric/partials/metros_tile.html",
        context={"total": sum(by_region.values()), "by_region": by_region},
        link=reverse("fabric:metro-list"),
    )


def connections_by_state_tile(request) -> Tile:
    """How many connections are in each state; how many wait on this organization."""
    visible = Connection.objects.for_org(request.org)
    counts = dict(visible.values_list("state").annotate(n=Count("id")).order_by())
    rows = [
        {"state": state, "label": label, "count": counts[state]}
        for state, label in ConnectionState.choices
        if counts.get(state)
    ]
    waiting_on_me = (
        visible.filter(state=ConnectionState.PENDING_APPROVAL, z_port__organization=request.org)
        .exclude(organization=request.org)
        .count()
        + visible.filter(organization=request.org, pending_on=PendingOn.REQUESTER).count()
    )
    return Tile(
        title="Connections by state",
        template="hub/partials/tile_connections_by_state.html",
        context={
            "rows": rows,
            "live": sum(counts.get(state, 0) for state in LIVE_CONNECTION_STATES),
            "waiting_on_me": waiting_on_me,
        },
        link=reverse("fabric:topology"),
    )


def busiest_connections_tile(request) -> Tile:
    """The most utilised connections over the last 24 hours (telemetry rollups)."""
    live = dict(
        (pk, (public_id, name, mbps))
        for pk, public_id, name, mbps in Connection.objects.for_org(request.org)
        .filter(state__in=[ConnectionState.ACTIVE, ConnectionState.MODIFYING])
        .values_list("pk", "public_id", "name", "bandwidth_mbps")
    )
    now = timezone.now()
    used = utilisation_by_connection(live, since=now - BUSIEST_WINDOW, until=now)
    ranked = sorted(
        used.items(), key=lambda item: (item[1].percent or 0, max(item[1].bps_in, item[1].bps_out)), reverse=True
    )
    rows = [
        {
            "url": reverse("fabric:connection-detail", args=[live[pk][0]]),
            "name": live[pk][1],
            "bandwidth": bandwidth_label(live[pk][2]),
            "percent": None if u.percent is None else round(u.percent, 1),
            "peak_direction": "in" if u.bps_in >= u.bps_out else "out",
            "rate": rate_label(max(u.bps_in, u.bps_out)),
        }
        for pk, u in ranked[:BUSIEST_COUNT]
    ]
    return Tile(
        title="Most utilised connections",
        template="hub/partials/tile_busiest_connections.html",
        context={"rows": rows, "in_service": len(live)},
        link=reverse("fabric:topology"),
    )


def connection_events_tile(request) -> Tile:
    """The latest state changes of the organization's connections (either end)."""
    events = (
        ConnectionEvent.objects.filter(connection__in=Connection.objects.for_org(request.org))
        .select_related("connection")
        .order_by("-created_at", "-id")[:RECENT_EVENTS]
    )
    rows = [
        {
            "url": reverse("fabric:connection-detail", args=[event.connection.public_id]),
            "name": event.connection.name,
            "to_state": event.to_state,
            "to_label": ConnectionState(event.to_state).label,
            "at": event.created_at,
        }
        for event in events
    ]
    return Tile(
        title="Recent connection events",
        template="hub/partials/tile_connection_events.html",
        context={"rows": rows},
        link=reverse("fabric:connection-list"),
    )
