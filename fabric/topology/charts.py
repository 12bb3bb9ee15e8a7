"""The plotly figures of the topology (a geographic map and a logical view) and their table
alternatives, built from a :class:`~fabric.topology.graph.Topology`.

Figures are plain dicts (``{"data": [...], "layout": {...}}``) that the pages put in a JSON data
island for ``static/js/topology.js`` to draw. Every connection is a line plus a marker in its
middle: the marker carries the hover text and the connection's id, which the page turns into the
link to the connection.
"""

from __future__ import annotations

import functools
import math
from collections import Counter, defaultdict
from dataclasses import dataclass

import orjson
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from fabric.choices import ConnectionState, Region
from fabric.latency import EARTH_RADIUS_KM
from fabric.topology.graph import Topology


@dataclass(frozen=True)
class StateStyle:
    color: str
    dash: str
    group: str  # what a user reads in the legend next to the state


_IN_PROGRESS = StateStyle("#d97706", "dot", "in progress")
STATE_STYLES: dict[str, StateStyle] = {
    ConnectionState.ACTIVE: StateStyle("#15803d", "solid", "in service"),
    ConnectionState.MODIFYING: StateStyle("#0e7490", "dashdot", "in service, changing"),
    ConnectionState.PENDING_APPROVAL: StateStyle("#7c3aed", "dot", "waiting for approval"),
    ConnectionState.APPROVED: _IN_PROGRESS,
    ConnectionState.PROVISIONING: _IN_PROGRESS,
    ConnectionState.FAILED: StateStyle("#dc2626", "dash", "needs attention"),
    ConnectionState.DEPROVISIONING: StateStyle("#6b7280", "dashdot", "going away"),
    ConnectionState.DEPROVISIONED: StateStyle("#9ca3af", "dot", "ended"),
    ConnectionState.REJECTED: StateStyle("#9ca3af", "dot", "ended"),
    ConnectionState.CANCELLED: StateStyle("#9ca3af", "dot", "ended"),
}
# Drawing order: quiet states first, so failed and pending lie on top.
STATE_ORDER = [
    ConnectionState.DEPROVISIONED,
    ConnectionState.REJECTED,
    ConnectionState.CANCELLED,
    ConnectionState.DEPROVISIONING,
    ConnectionState.ACTIVE,
    ConnectionState.MODIFYING,
    ConnectionState.APPROVED,
    ConnectionState.PROVISIONING,
    ConnectionState.PENDING_APPROVAL,
    ConnectionState.FAILED,
]
# Line width by bandwidth: (upper bound in Mbps, width in px); the pages' key says the same.
BANDWIDTH_BANDS = ((1_000, 1.5), (10_000, 3.0), (math.inf, 5.0))
GREAT_CIRCLE_STEP_KM = 700
GREAT_CIRCLE_MAX_POINTS = 16


def line_width(mbps: int) -> float:
    return next(width for upper, width in BANDWIDTH_BANDS if mbps <= upper)


def bandwidth_label(mbps: int) -> str:
    return f"{mbps / 1000:g} Gbps" if mbps >= 1000 else f"{mbps} Mbps"


def rate_label(bps: float) -> str:
    for unit, size in (("Gbps", 1e9), ("Mbps", 1e6), ("kbps", 1e3)):
        if bps >= size:
            return f"{bps / size:.1f} {unit}"
    return f"{bps:.0f} bps"


def utilisation_label(edge: dict) -> str:
    used = edge["utilisation"]
    if used is None:
        return "no data"
    rates = f"in {rate_label(used['bps_in'])}, out {rate_label(used['bps_out'])}"
    return f"{used['percent']:.1f} % ({rates})" if used["percent"] is not None else rates


@functools.lru_cache(maxsize=8192)
def great_circle_path(lat1: float, lon1: float, lat2: float, lon2: float) -> tuple[tuple, tuple]:
    """Points along the great circle from (lat1, lon1) to (lat2, lon2), about every 700 km.

    Spherical linear interpolation of the two unit vectors; the ends are the given points, the
    points between are rounded to 0.1 degree (about 11 km: finer than a world map shows, and it
    keeps the page small). Longitudes stay within [-180, 180]: plotly draws each segment as a
    great-circle arc and cuts it at the antimeridian itself. Cached: metro pairs repeat.
    """
    phi1, lam1, phi2, lam2 = map(math.radians, (lat1, lon1, lat2, lon2))
    a = (math.cos(phi1) * math.cos(lam1), math.cos(phi1) * math.sin(lam1), math.sin(phi1))
    b = (math.cos(phi2) * math.cos(lam2), math.cos(phi2) * math.sin(lam2), math.sin(phi2))
    omega = math.acos(max(-1.0, min(1.0, sum(x * y for x, y in zip(a, b, strict=True)))))
    steps = max(1, min(GREAT_CIRCLE_MAX_POINTS - 1, math.ceil(omega * EARTH_RADIUS_KM / GREAT_CIRCLE_STEP_KM)))
    lats, lons = [lat1], [lon1]
    for i in range(1, steps):
        t = i / steps
        wa, wb = math.sin((1 - t) * omega) / math.sin(omega), math.sin(t * omega) / math.sin(omega)
        p = tuple(wa * x + wb * y for x, y in zip(a, b, strict=True))
        lats.append(round(math.degrees(math.atan2(p[2], math.hypot(p[0], p[1]))), 1))
        lons.append(round(math.degrees(math.atan2(p[1], p[0])), 1))
    lats.append(lat2)
    lons.append(lon2)
    return tuple(lats), tuple(lons)


def _port_label(port: dict, index: dict[str, dict]) -> str:
    """``FR · fr-core-1`` for my port, ``FR · GPU Cloud · cloud-fra`` for another organization's."""
    owner = "" if port["mine"] else f"{index[port['organization']]['label']} · "
    return f"{port['metro'][6:]} · {owner}{port['label']}"


def _edge_texts(edge: dict, port_labels: dict[str, str]) -> tuple[str, str, str]:
    """What a user reads about a connection: its route, its status and its traffic."""
    waiting = "" if edge["pending_on"] == "NONE" else f" · waiting on {edge['pending_on'].lower()}"
    route = f"{port_labels[edge['source']]} → {port_labels[edge['target']]}"
    status = f"{_STATE_LABELS[edge['state']]}{waiting} · {bandwidth_label(edge['bandwidth_mbps'])}"
    metrics = f"utilisation {utilisation_label(edge)} · RTT {edge['latency_ms']:.1f} ms ({edge['distance_km']:,.0f} km)"
    return route, status, metrics


_STATE_LABELS = {state.value: state.label for state in ConnectionState}


# customdata of a connection's marker: [connection id, name, route, status, metrics]. The page turns
# the id into the link (static/js/topology.js), so the figure does not carry 1,000 URLs.
EDGE_HOVER = (
    "<b>%{customdata[1]}</b><br>%{customdata[2]}<br>%{customdata[3]}<br>%{customdata[4]}"
    "<br><i>click to open</i><extra></extra>"
)


def _edges_by_state(topology: Topology) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for edge in topology.edges:
        grouped[edge["state"]].append(edge)
    return {state: grouped[state] for state in STATE_ORDER if grouped.get(state)}


SPOKE_DEGREES = 4.0
GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))


def _spoke_slots(topology: Topology, index: dict[str, dict]) -> dict[str, int]:
    """Connections within one metro have no line to draw: each gets a short spoke out of its metro
    (the n-th of that metro at the n-th golden angle) so it can be seen, hovered and clicked."""
    slots: dict[str, int] = {}
    per_metro: Counter = Counter()
    for edge in topology.edges:
        metro = index[edge["source"]]["metro"]
        if metro == index[edge["target"]]["metro"]:
            slots[edge["id"]] = per_metro[metro]
            per_metro[metro] += 1
    return slots


def _geo_path(edge: dict, index: dict[str, dict], spokes: dict[str, int]):
    """Longitudes, latitudes and the marker position of an edge on the map."""
    a = index[index[edge["source"]]["metro"]]
    z = index[index[edge["target"]]["metro"]]
    if edge["id"] in spokes:
        angle = spokes[edge["id"]] * GOLDEN_ANGLE
        lat = round(a["latitude"] + SPOKE_DEGREES * math.sin(angle), 2)
        lon = round(a["longitude"] + SPOKE_DEGREES * math.cos(angle) / max(math.cos(math.radians(lat)), 0.2), 2)
        return (a["longitude"], lon), (a["latitude"], lat), (lon, lat)
    lats, lons = great_circle_path(a["latitude"], a["longitude"], z["latitude"], z["longitude"])
    middle = len(lons) // 2
    return lons, lats, (lons[middle], lats[middle])


def _logical_path(edge: dict, positions: dict[str, tuple[float, float]]):
    (x1, y1), (x2, y2) = positions[edge["source"]], positions[edge["target"]]
    return (x1, x2), (y1, y2), (round((x1 + x2) / 2, 4), round((y1 + y2) / 2, 4))


def _edge_traces(topology: Topology, *, geo: bool, positions: dict[str, tuple[float, float]]) -> list[dict]:
    """Per state: one line trace per bandwidth band (legend entry on the first) and one trace of
    midpoint markers that carry the hover text and the click-through link."""
    index = topology.node_index()
    spokes = _spoke_slots(topology, index) if geo else {}
    port_labels = {node["id"]: _port_label(node, index) for node in topology.nodes if node["kind"] == "port"}
    traces = []
    for state, edges in _edges_by_state(topology).items():
        style = STATE_STYLES[state]
        name = f"{ConnectionState(state).label} ({style.group})"
        by_width: dict[float, tuple[list, list]] = {}
        mid_x, mid_y, custom = [], [], []
        drawn: set[tuple] = set()
        for edge in edges:
            xs, ys, (marker_x, marker_y) = _geo_path(edge, index, spokes) if geo else _logical_path(edge, positions)
            width = line_width(edge["bandwidth_mbps"])
            line = (width, xs[0], ys[0], xs[-1], ys[-1])
            if line not in drawn:  # connections between the same places share one line of a width
                drawn.add(line)
                line_x, line_y = by_width.setdefault(width, ([], []))
                line_x.extend([*xs, None])
                line_y.extend([*ys, None])
            mid_x.append(marker_x)
            mid_y.append(marker_y)
            custom.append([edge["id"], edge["label"], *_edge_texts(edge, port_labels)])
        for i, (width, (xs, ys)) in enumerate(sorted(by_width.items())):
            line = {
                "mode": "lines",
                "name": name,
                "legendgroup": state,
                "showlegend": i == 0,
                "hoverinfo": "skip",
                "line": {"color": style.color, "width": width, "dash": style.dash},
                "meta": {"role": "connections", "state": state},
            }
            traces.append(
                line | ({"type": "scattergeo", "lat": ys, "lon": xs} if geo else {"type": "scatter", "x": xs, "y": ys})
            )
        symbol = "x" if state == ConnectionState.FAILED else ("diamond-open" if style.dash == "dot" else "circle")
        markers = {
            "mode": "markers",
            "name": name,
            "legendgroup": state,
            "showlegend": False,
            "marker": {"color": style.color, "size": 9 if state == ConnectionState.FAILED else 7, "symbol": symbol},
            "customdata": custom,
            "hovertemplate": EDGE_HOVER,
            "meta": {"role": "connection-links", "state": state},
        }
        geo_or_xy = (
            {"type": "scattergeo", "lat": mid_y, "lon": mid_x} if geo else {"type": "scatter", "x": mid_x, "y": mid_y}
        )
        traces.append(markers | geo_or_xy)
    return traces


def map_figure(topology: Topology) -> dict:
    """The geographic map: metros sized by their ports, connections as great-circle lines."""
    metros = topology.nodes_of("metro")
    traces = _edge_traces(topology, geo=True, positions={})
    traces.append(
        {
            "type": "scattergeo",
            "mode": "markers+text",
            "name": "Metros (size: ports)",
            "lat": [m["latitude"] for m in metros],
            "lon": [m["longitude"] for m in metros],
            "text": [m["code"] for m in metros],
            "textposition": "top center",
            "customdata": [[m["label"], m["ports"], m["region"]] for m in metros],
            "hovertemplate": "<b>%{text} · %{customdata[0]}</b><br>%{customdata[1]} port(s) · %{customdata[2]}<extra></extra>",
            "marker": {
                "size": [8 + 6 * math.sqrt(m["ports"]) for m in metros],
                "color": "#1d4ed8",
                "opacity": 0.8,
                "line": {"color": "#ffffff", "width": 1},
            },
            "meta": {"role": "metros"},
        }
    )
    layout = {
        "geo": {
            "fitbounds": False,  # the whole world (plotly.js would zoom to a lone metro)
            "projection": {"type": "natural earth"},
            "showland": True,
            "landcolor": "#eef2f7",
            "showcountries": True,
            "countrycolor": "#cbd5e1",
            "coastlinecolor": "#94a3b8",
            "showocean": True,
            "oceancolor": "#f8fafc",
            "resolution": 110,
        },
        "margin": {"l": 0, "r": 0, "t": 10, "b": 0},
        "height": 560,
        "legend": {"orientation": "h", "y": -0.02, "title": {"text": "Connections by state"}},
        "hoverlabel": {"align": "left"},
    }
    return {"data": traces, "layout": layout}


REGION_ORDER = {Region.AMER: 0, Region.EMEA: 1, Region.APAC: 2}


def group_radius(metro_count: int) -> float:
    """Radius of a metro's group in the logical view: groups on the unit circle never overlap."""
    if metro_count <= 1:
        return 0.5
    return min(0.4 * 2 * math.sin(math.pi / metro_count), 0.35)


def logical_positions(topology: Topology) -> dict[str, tuple[float, float]]:
    """Where each metro and port sits in the logical view.

    Metros go round a circle (networkx's circular layout) in the order of the world, Americas,
    then Europe and Africa, then Asia-Pacific, west to east, so neighbours on the map are
    neighbours here. Each metro's ports sit on a smaller circle inside its group, mine first: a
    metro reads as one group, and a connection between metros is a line across the ring.
    """
    import networkx as nx

    metros = sorted(topology.nodes_of("metro"), key=lambda m: (REGION_ORDER[m["region"]], m["longitude"]))
    order = [metro["id"] for metro in metros]
    if len(order) == 1:
        centres = {order[0]: (0.0, 0.0)}
    else:
        # Start at the left (west) and go clockwise over the top.
        layout = nx.circular_layout(order, scale=1.0)
        centres = {node: (-float(x), float(y)) for node, (x, y) in layout.items()}
    positions = {metro: (round(x, 4), round(y, 4)) for metro, (x, y) in centres.items()}
    ports_by_metro: dict[str, list[dict]] = defaultdict(list)
    for port in topology.nodes_of("port"):
        ports_by_metro[port["metro"]].append(port)
    ring = group_radius(len(order)) * 0.65
    for metro, ports in ports_by_metro.items():
        cx, cy = centres[metro]
        ports = sorted(ports, key=lambda p: (not p["mine"], p["label"]))
        if len(ports) == 1:
            placed = {ports[0]["id"]: (cx, cy)}
        else:
            placed = nx.circular_layout([port["id"] for port in ports], scale=ring, center=(cx, cy))
        for node, (x, y) in placed.items():
            positions[node] = (round(float(x), 4), round(float(y), 4))
    return positions


def logical_figure(topology: Topology) -> dict:
    """The logical view: ports grouped around their metro, connections between them."""
    positions = logical_positions(topology)
    traces = _edge_traces(topology, geo=False, positions=positions)
    index = topology.node_index()
    kinds = (
        ("My ports", lambda p: p["mine"], "circle", "#1d4ed8"),
        (
            "Provider endpoints",
            lambda p: not p["mine"] and index[p["organization"]]["kind"] == "provider",
            "diamond",
            "#7c3aed",
        ),
        (
            "Other organizations' ports",
            lambda p: not p["mine"] and index[p["organization"]]["kind"] != "provider",
            "square",
            "#475569",
        ),
    )
    ports = topology.nodes_of("port")
    for label, selected, symbol, color in kinds:
        chosen = [p for p in ports if selected(p)]
        if not chosen:
            continue
        traces.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": label,
                "x": [positions[p["id"]][0] for p in chosen],
                "y": [positions[p["id"]][1] for p in chosen],
                "text": [p["label"] for p in chosen],
                "textposition": "bottom center",
                "textfont": {"size": 10},
                "customdata": [[index[p["organization"]]["label"], p["metro"][6:]] for p in chosen],
                "hovertemplate": "<b>%{text}</b><br>%{customdata[0]} · %{customdata[1]}<extra></extra>",
                "marker": {"symbol": symbol, "size": 12, "color": color, "line": {"color": "#ffffff", "width": 1}},
                "meta": {"role": "ports"},
            }
        )
    radius = group_radius(len(topology.nodes_of("metro")))
    shapes, annotations = [], []
    for metro in topology.nodes_of("metro"):
        x, y = positions[metro["id"]]
        shapes.append(
            {
                "type": "circle",
                "xref": "x",
                "yref": "y",
                "x0": x - radius,
                "x1": x + radius,
                "y0": y - radius,
                "y1": y + radius,
                "line": {"color": "#cbd5e1"},
                "fillcolor": "rgba(226,232,240,0.35)",
                "layer": "below",
            }
        )
        annotations.append(
            {
                "x": x,
                "y": y + radius,
                "text": f"<b>{metro['code']}</b> {metro['label']}",
                "showarrow": False,
                "yshift": 10,
            }
        )
    hidden = {"visible": False, "showgrid": False, "zeroline": False}
    layout = {
        "xaxis": hidden,
        "yaxis": hidden | {"scaleanchor": "x"},
        "shapes": shapes,
        "annotations": annotations,
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "height": 600,
        "legend": {"orientation": "h", "y": -0.02},
        "hoverlabel": {"align": "left"},
        "plot_bgcolor": "#ffffff",
    }
    return {"data": traces, "layout": layout}


# --- Table alternatives ----------------------------------------------------------------------
def connection_table(topology: Topology) -> list[dict]:
    """One row per edge with what the charts' hover shows, in the charts' drawing order reversed
    (failed and pending first): the table alternative of both figures."""
    index = topology.node_index()
    rank = {state: i for i, state in enumerate(reversed(STATE_ORDER))}
    rows = []
    for edge in sorted(topology.edges, key=lambda e: (rank[e["state"]], e["label"])):
        a, z = index[edge["source"]], index[edge["target"]]
        waiting = "" if edge["pending_on"] == "NONE" else f" · waiting on {edge['pending_on'].lower()}"
        rows.append(
            {
                "id": edge["id"],
                "name": edge["label"],
                "a_end": f"{a['metro'][6:]} · {index[a['organization']]['label']} · {a['label']}",
                "z_end": f"{z['metro'][6:]} · {index[z['organization']]['label']} · {z['label']}",
                "state": edge["state"],
                "state_label": ConnectionState(edge["state"]).label + waiting,
                "bandwidth": bandwidth_label(edge["bandwidth_mbps"]),
                "utilisation": utilisation_label(edge),
                "latency": f"{edge['latency_ms']:.1f} ms ({edge['distance_km']:,.0f} km)",
            }
        )
    return rows


def port_table(topology: Topology) -> list[dict]:
    """Ports grouped by metro (the logical view's groups): metro, port, organization, whose."""
    index = topology.node_index()
    return [
        {
            "metro": f"{port['metro'][6:]} · {index[port['metro']]['label']}",
            "name": port["label"],
            "organization": index[port["organization"]]["label"],
            "kind": "mine" if port["mine"] else index[port["organization"]]["kind"],
        }
        for port in topology.nodes_of("port")
    ]


# --- The page's data island ------------------------------------------------------------------
# What Django's json_script escapes, so the JSON cannot close the <script> element or open a comment.
_SCRIPT_ESCAPES = (("&", "\\u0026"), ("<", "\\u003C"), (">", "\\u003E"))


def figure_script(figure: dict, element_id: str) -> SafeString:
    """``{{ figure|json_script:element_id }}``, serialised with orjson: the figure of 1,000
    connections is some 350 KB, which the standard library's encoder and ``str.translate`` take
    tens of milliseconds to write and escape."""
    text = orjson.dumps(figure).decode()
    for character, escape in _SCRIPT_ESCAPES:
        text = text.replace(character, escape)
    return format_html('<script id="{}" type="application/json">{}</script>', element_id, mark_safe(text))  # noqa: S308 - escaped above
