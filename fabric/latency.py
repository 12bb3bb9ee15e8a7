"""Round-trip latency between two places: great-circle distance, the physics floor and a calibrated estimate.

The estimate routes a pair over a coarse map of the long-haul fibre corridors (submarine cable systems
and their landing hubs) and prices each part of the route with parameters fitted to measured
round-trip times (``fabric/data/latency_model.json``, written by ``manage.py fit_latency``):

* Inside one *area* (a continent-sized landmass with its regional cables, see :func:`backbone_area`)
  the route is the great circle. Fibre there follows roads, rails and coasts, so it is inflated by a
  factor that shrinks with distance (short paths detour relatively more).
* Between areas the route has to use a corridor: there is no fibre across the Arctic, through
  Russia for western carriers, or across open ocean where no cable lies. Europe to Japan is
  therefore routed through Suez or across North America, not over Siberia, and each corridor
  crossed adds a fixed cost (landing stations, backhaul to the interconnection hubs).

Everything is a function of the two coordinates, so it applies to any metro, not only to the sites
the parameters were fitted on.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fabric.models import Metro

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
FIBRE_KM_PER_MS = 204.19  # light in silica fibre: c / 1.468 (group index of G.652 fibre at 1550 nm)
MODEL_PATH = Path(__file__).resolve().parent / "data" / "latency_model.json"

# Inflation of regional routes is flat up to this distance and falls with log-distance beyond it.
REGIONAL_KNOT_KM = 1000.0
# A metro spans at most ~100 km of fibre (2 * 100 / 204.19 = 0.98 ms round trip); cloud providers quote
# under 2 ms between the availability zones of one region. Not fitted: the measured data has no
# same-metro pairs, only separate regions (the closest is two Canberra regions, 5-7 ms at P95).
INTRA_METRO_MS = 1.0


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (haversine on a sphere of the mean Earth radius)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    h = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def floor_rtt_ms(km: float) -> float:
    """The physics floor: a round trip over ``km`` of perfectly straight fibre, in ms."""
    if km < 0:
        raise ValueError(f"Distance must not be negative, got {km}.")
    return 2 * km / FIBRE_KM_PER_MS


# --- The backbone map -------------------------------------------------------------------------
def backbone_area(lat: float, lon: float) -> str:
    """The area a point belongs to: a landmass whose points reach each other without a long-haul corridor.

    Boxes on latitude and longitude, drawn around where the landmasses and their regional cable
    systems are, not along borders:

    * ``NAM`` North and Central America (and Hawaii), ``SAM`` South America;
    * ``EUR`` Europe and the Mediterranean basin north of 29°N and west of 36.5°E, which takes in
      the Levant and North Africa: their international fibre lands on Mediterranean cables to Europe;
    * ``MEA`` the Arabian Peninsula and the Gulf, ``AFR`` Africa south of the Mediterranean basin;
    * ``SAS`` the Indian subcontinent, ``EAS`` East and South-East Asia, ``OCE`` Australia and New Zealand.
    """
    if lon < -30:
        return "NAM" if lat > 12 else "SAM"
    if lon < 60:
        if lat >= 35 or (lat >= 29 and lon < 36.5):
            return "EUR"
        if lat >= 12 and lon >= 36.5:
            return "MEA"
        return "AFR"
    if lon < 92 and lat > -10:
        return "SAS"
    if lat < -10:
        return "OCE"
    return "EAS"


@dataclass(frozen=True)
class Hub:
    """A place where long-haul corridors land. ``area`` is None for a waypoint only corridors pass through."""

    code: str
    name: str
    lat: float
    lon: float
    area: str | None


HUBS: tuple[Hub, ...] = (
    Hub("NYC", "New York", 40.71, -74.01, "NAM"),
    Hub("MIA", "Miami", 25.76, -80.19, "NAM"),
    Hub("LAX", "Los Angeles", 34.05, -118.24, "NAM"),
    Hub("SEA", "Seattle / Oregon", 47.61, -122.33, "NAM"),
    Hub("FOR", "Fortaleza", -3.73, -38.52, "SAM"),
    Hub("BAQ", "Barranquilla", 10.96, -74.80, "SAM"),
    Hub("LON", "London / Cornwall", 51.51, -0.13, "EUR"),
    Hub("MRS", "Marseille", 43.30, 5.37, "EUR"),
    Hub("LIS", "Lisbon / Sesimbra", 38.72, -9.14, "EUR"),
    Hub("JED", "Jeddah", 21.49, 39.19, "MEA"),
    Hub("FUJ", "Fujairah", 25.13, 56.33, "MEA"),
    Hub("DJI", "Djibouti", 11.59, 43.15, "AFR"),
    Hub("LOS", "Lagos", 6.45, 3.39, "AFR"),
    Hub("CPT", "Cape Town", -33.92, 18.42, "AFR"),
    Hub("MUM", "Mumbai", 19.08, 72.88, "SAS"),
    Hub("CHE", "Chennai", 13.08, 80.27, "SAS"),
    Hub("SIN", "Singapore", 1.29, 103.85, "EAS"),
    Hub("HKG", "Hong Kong", 22.32, 114.17, "EAS"),
    Hub("TYO", "Tokyo", 35.68, 139.69, "EAS"),
    Hub("SYD", "Sydney", -33.87, 151.21, "OCE"),
    Hub("PER", "Perth", -31.95, 115.86, "OCE"),
    Hub("AKL", "Auckland", -36.85, 174.76, "OCE"),
    # Waypoints: the cables cross Egypt from the Mediterranean to the Red Sea, and the Pacific
    # systems stop at Hawaii and Guam; networks do not hand traffic over there.
    Hub("EGY", "Suez crossing", 30.00, 32.55, None),
    Hub("HNL", "Hawaii", 21.31, -157.86, None),
    Hub("GUM", "Guam", 13.44, 144.79, None),
)

# Long-haul corridors between hubs, each with systems that run along it. Left out on purpose: the
# South Atlantic (SACS, SAIL) and Europe-Brazil (EllaLink) systems, because the measured Brazil-Europe
# (~184 ms) and Brazil-South Africa (~320 ms) round trips show traffic going through North America
# and Europe instead; and any route across Russia or the Arctic.
CORRIDORS: tuple[tuple[str, str, str], ...] = (
    ("NYC", "LON", "transatlantic: Grace Hopper, Amitie, MAREA"),
    ("MIA", "FOR", "USA-Brazil: Monet, GlobeNet"),
    ("MIA", "BAQ", "USA-Caribbean-Colombia: Maya-1, ARCOS-1"),
    ("LIS", "LOS", "Europe-West Africa: MainOne, Equiano"),
    ("LIS", "CPT", "Europe-South Africa west coast: WACS, SAT-3, Equiano"),
    ("MRS", "EGY", "Europe-Asia, Mediterranean leg: SEA-ME-WE 5, AAE-1, PEACE, 2Africa"),
    ("EGY", "JED", "Europe-Asia, Red Sea"),
    ("JED", "DJI", "Europe-Asia, Red Sea; East Africa: EASSy, SEACOM"),
    ("DJI", "MUM", "Arabian Sea: SEA-ME-WE, AAE-1, SEACOM"),
    ("FUJ", "MUM", "Gulf-India: SEA-ME-WE 4, FALCON"),
    ("CHE", "SIN", "Bay of Bengal: i2i, SEA-ME-WE"),
    ("SIN", "PER", "Singapore-Australia: Indigo West, ASC"),
    ("GUM", "SYD", "Guam-Australia: AJC, JGA-S"),
    ("GUM", "TYO", "Guam-Japan: AJC, JGA-N"),
    ("GUM", "HKG", "Guam-Hong Kong: AAG"),
    ("HNL", "GUM", "transpacific via Guam: AAG, SEA-US"),
    ("HNL", "LAX", "Hawaii-California: AAG, SEA-US"),
    ("HNL", "SEA", "Hawaii-Oregon: Hawaiki, Southern Cross"),
    ("HNL", "SYD", "Hawaii-Australia: Southern Cross, Hawaiki"),
    ("HNL", "AKL", "Hawaii-New Zealand: Hawaiki, Southern Cross"),
    ("TYO", "SEA", "transpacific north: FASTER"),
    ("TYO", "LAX", "transpacific: Unity, JUPITER"),
)


@dataclass(frozen=True)
class Route:
    """A route along the backbone map: great-circle legs inside areas and long-haul corridor legs."""

    regional_km: float
    corridor_km: float = 0.0
    corridors: int = 0

    @property
    def km(self) -> float:
        return self.regional_km + self.corridor_km

    def __add__(self, other: Route) -> Route:
        return Route(
            self.regional_km + other.regional_km, self.corridor_km + other.corridor_km, self.corridors + other.corridors
        )


@functools.cache
def _hub_routes() -> dict[tuple[str, str], Route]:
    """Shortest route between every two hubs (Floyd-Warshall over ~25 hubs; computed once)."""
    by_code = {hub.code: hub for hub in HUBS}
    best: dict[tuple[str, str], Route] = {}

    def offer(a: str, b: str, route: Route) -> None:
        if (a, b) not in best or route.km < best[(a, b)].km:
            best[(a, b)] = best[(b, a)] = route

    for hub in HUBS:
        best[(hub.code, hub.code)] = Route(0.0)
    for a in HUBS:
        for b in HUBS:
            if a.code < b.code and a.area is not None and a.area == b.area:
                offer(a.code, b.code, Route(great_circle_km(a.lat, a.lon, b.lat, b.lon)))
    for a, b, _ in CORRIDORS:
        km = great_circle_km(by_code[a].lat, by_code[a].lon, by_code[b].lat, by_code[b].lon)
        offer(a, b, Route(0.0, km, 1))
    codes = [hub.code for hub in HUBS]
    for via in codes:
        for a in codes:
            if (a, via) not in best:
                continue
            for b in codes:
                if (via, b) in best:
                    route = best[(a, via)] + best[(via, b)]
                    if (a, b) not in best or route.km < best[(a, b)].km - 1e-9:
                        best[(a, b)] = route
    return best


def backbone_route(lat1: float, lon1: float, lat2: float, lon2: float) -> Route:
    """The shortest route between two points along the backbone map.

    Two points in one area are joined by the great circle. Otherwise the route runs from the first
    point to a hub of its area, along hubs and corridors, and from a hub of the second point's area
    to the second point.
    """
    area1, area2 = backbone_area(lat1, lon1), backbone_area(lat2, lon2)
    if area1 == area2:
        return Route(great_circle_km(lat1, lon1, lat2, lon2))
    hub_routes = _hub_routes()
    starts = [(hub.code, great_circle_km(lat1, lon1, hub.lat, hub.lon)) for hub in _area_hubs()[area1]]
    ends = [(hub.code, great_circle_km(hub.lat, hub.lon, lat2, lon2)) for hub in _area_hubs()[area2]]
    best_km, best = math.inf, None
    for start, first_km in starts:
        for end, last_km in ends:
            middle = hub_routes.get((start, end))
            if middle is not None and first_km + middle.km + last_km < best_km:
                best_km, best = first_km + middle.km + last_km, (first_km, middle, last_km)
    if best is None:
        raise ValueError(f"No backbone route between areas {area1} and {area2}.")
    first_km, middle, last_km = best
    return Route(first_km + middle.regional_km + last_km, middle.corridor_km, middle.corridors)


@functools.cache
def _area_hubs() -> dict[str, tuple[Hub, ...]]:
    areas: dict[str, list[Hub]] = {}
    for hub in HUBS:
        if hub.area is not None:
            areas.setdefault(hub.area, []).append(hub)
    return {area: tuple(hubs) for area, hubs in areas.items()}


# --- The calibrated estimate ------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyParams:
    """Parameters of :func:`estimate_rtt_ms` (see ``formula`` in ``latency_model.json``)."""

    fixed_ms: float
    regional_inflation: float
    regional_inflation_log_slope: float
    corridor_inflation: float
    corridor_ms: float
    regional_knot_km: float = REGIONAL_KNOT_KM
    intra_metro_ms: float = INTRA_METRO_MS

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> LatencyParams:
        return cls(**{name: float(values[name]) for name in cls.__dataclass_fields__ if name in values})

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@functools.cache
def shipped_params() -> LatencyParams:
    """The parameters in ``fabric/data/latency_model.json``, read once per process."""
    document = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    return LatencyParams.from_dict(document["params"])


def estimate_rtt_ms(km: float, params: LatencyParams | None = None, *, route: Route | None = None) -> float:
    """Calibrated P95 round-trip estimate in ms for two points ``km`` apart (great circle); never below the floor.

    ``route`` is the pair's :func:`backbone_route`; without it the pair is taken to be in one area
    (a direct regional route of ``km``). ``params`` defaults to the shipped fit.
    """
    floor = floor_rtt_ms(km)
    p = params or shipped_params()
    route = route or Route(km)
    regional = route.regional_km
    inflation = p.regional_inflation + p.regional_inflation_log_slope * math.log(
        max(regional, p.regional_knot_km) / p.regional_knot_km
    )
    estimate = (
        p.fixed_ms
        + floor_rtt_ms(regional) * inflation
        + floor_rtt_ms(route.corridor_km) * p.corridor_inflation
        + p.corridor_ms * route.corridors
    )
    return max(floor, estimate)


@dataclass(frozen=True)
class LatencyEstimate:
    """Distance and round-trip figures for a pair of places. ``route_km`` is the length of the backbone route."""

    km: float
    floor_ms: float
    estimate_ms: float
    route_km: float


def rtt_between(
    lat1: float, lon1: float, lat2: float, lon2: float, params: LatencyParams | None = None
) -> LatencyEstimate:
    """Great-circle distance, floor and calibrated estimate between two coordinates."""
    km = great_circle_km(lat1, lon1, lat2, lon2)
    route = backbone_route(lat1, lon1, lat2, lon2)
    return LatencyEstimate(km, floor_rtt_ms(km), estimate_rtt_ms(km, params, route=route), route.km)


def metro_rtt(a: Metro, b: Metro, params: LatencyParams | None = None) -> LatencyEstimate:
    """Round trip between two metros; within one metro it is the intra-metro constant (never below the floor)."""
    if a.code == b.code:
        p = params or shipped_params()
        return LatencyEstimate(0.0, 0.0, max(floor_rtt_ms(0.0), p.intra_metro_ms), 0.0)
    return rtt_between(a.latitude, a.longitude, b.latitude, b.longitude, params)
