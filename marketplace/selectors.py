"""Reads of the marketplace: the catalog as an organization sees it, facets, orders."""

import re
from decimal import Decimal

from django.db.models import Case, Count, DecimalField, ExpressionWrapper, F, Max, Min, Prefetch, Q, QuerySet, Sum, When

from fabric.choices import PortState
from fabric.latency import metro_rtt
from fabric.selectors import port_list
from marketplace import search
from marketplace.attributes import SCHEMAS
from marketplace.choices import OfferingStatus, PriceUnit
from marketplace.demo import PRICE_UNVERIFIED
from marketplace.models import AccessPoint, Offering, Order, ProviderProfile


def provider_list() -> QuerySet[ProviderProfile]:
    return ProviderProfile.objects.annotate(
        published_offerings=Count("offerings", filter=Q(offerings__status="PUBLISHED"))
    )


def offering_list(*, org, params=None) -> QuerySet[Offering]:
    """Published offerings plus ``org``'s own listings, searched, filtered and sorted as on the catalog
    page (``marketplace.search``). Raises ``CatalogQueryError`` for parameters it does not understand."""
    query, vocabulary, latencies = search.strict_query(params or {})
    return search.offering_search(org, query, vocabulary, latencies=latencies)


def offering_facets(*, org, params=None) -> dict:
    """Counts per facet value under the same parameters as ``offering_list`` (each facet ignoring its
    own selection), and the number of offerings that match them all."""
    query, vocabulary, _ = search.strict_query(params or {})
    facets, total = search.facet_counts(org, query, vocabulary)
    return {"total": total, **facets}


def order_list(*, org) -> QuerySet[Order]:
    return Order.objects.for_org(org).select_related(
        "offering__provider", "access_point__port__metro", "connection", "connection__a_port__metro"
    )


# --- Offering page and compare ------------------------------------------------------------------
MAX_COMPARED = 4
HOURS_IN_A_MONTH = 730
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Attribute name -> (label, unit, which value is best when comparing: "max", "min" or "").
SPECS: dict[str, tuple[str, str, str]] = {
    "accelerator": ("Accelerator", "", ""),
    "gpu_count": ("GPUs", "", "max"),
    "gpu_memory_gb": ("GPU memory", "GB each", "max"),
    "vcpus": ("vCPUs", "", "max"),
    "ram_gb": ("RAM", "GB", "max"),
    "spot_price_per_hour": ("Spot price", "USD per hour", "min"),
    "region": ("Provider's regions", "", ""),
    "context_window": ("Context window", "tokens", "max"),
    "input_price_per_mtok": ("Input price", "USD per million tokens", "min"),
    "output_price_per_mtok": ("Output price", "USD per million tokens", "min"),
    "modality": ("Modality", "", ""),
    "storage_type": ("Storage type", "", ""),
    "egress_price_per_gb": ("Egress price", "USD per GB", "min"),
    "max_throughput_gbps": ("Maximum throughput", "Gbps", "max"),
    "durability": ("Durability", "", ""),
    "service_type": ("Service type", "", ""),
    "max_bandwidth_mbps": ("Maximum bandwidth", "Mbps", "max"),
    "sla_availability_pct": ("Availability SLA", "%", "max"),
    "inspection_gbps": ("Inspection capacity", "Gbps", "max"),
}


def _number_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}" if isinstance(value, float) else str(value)


def _money_text(value) -> str:
    """Two decimals, or up to four for amounts under one (token and GB prices)."""
    value = float(value)
    if value >= 1 or value == 0:
        return f"{value:,.2f}"
    text = f"{value:.4f}".rstrip("0")
    return text if len(text.split(".")[1]) >= 2 else f"{value:.2f}"


def offering_specs(offering: Offering) -> list[dict]:
    """The offering's category attributes as labelled rows, in the category schema's order."""
    rows = []
    for name in SCHEMAS.get(offering.category, {}):
        if name in offering.attributes:
            label, unit, _ = SPECS.get(name, (name.replace("_", " ").capitalize(), "", ""))
            text = _number_text(offering.attributes[name])
            rows.append({"name": name, "label": label, "value": f"{text} {unit}".strip()})
    return rows


def _my_active_ports(org):
    return list(port_list(org=org).filter(state=PortState.ACTIVE).order_by("metro__code", "name"))


def offering_page(*, org, offering: Offering) -> dict:
    """An offering's specifications, where it is reachable (map data) and the latency from each of my ports."""
    access_points = list(offering.access_points.select_related("port__metro").order_by("port__metro__code"))
    my_ports = _my_active_ports(org)
    latency_rows = []
    for port in my_ports:
        legs = sorted(
            (
                {"access_point": ap, "ms": round(metro_rtt(port.metro, ap.port.metro).estimate_ms, 1)}
                for ap in access_points
            ),
            key=lambda leg: leg["ms"],
        )
        latency_rows.append({"port": port, "legs": legs, "nearest": legs[0] if legs else None})
    map_data = {
        "access_points": [
            {
                "code": ap.port.metro.code,
                "name": ap.port.metro.name,
                "lat": ap.port.metro.latitude,
                "lon": ap.port.metro.longitude,
            }
            for ap in access_points
        ],
        "mine": [
            {"code": m.code, "name": m.name, "lat": m.latitude, "lon": m.longitude}
            for m in {p.metro.code: p.metro for p in my_ports}.values()
        ],
    }
    return {
        "offering": offering,
        "map_figure": reach_map_figure(map_data),
        "specs": offering_specs(offering),
        "access_points": access_points,
        "latency_rows": latency_rows,
        "map_data": map_data,
        "monthly_estimate": offering.price_amount * HOURS_IN_A_MONTH if offering.price_unit == PriceUnit.HOUR else None,
    }


def reach_map_figure(map_data: dict) -> dict:
    """A small plotly geo figure: the offering's access-point metros and my port metros."""

    def trace(points, name, color, symbol):
        return {
            "type": "scattergeo",
            "name": name,
            "lat": [p["lat"] for p in points],
            "lon": [p["lon"] for p in points],
            "text": [p["code"] for p in points],
            "hovertext": [f"{p['code']} · {p['name']}" for p in points],
            "hoverinfo": "text",
            "mode": "markers+text",
            "textposition": "top center",
            "marker": {"size": 11, "color": color, "symbol": symbol, "line": {"width": 1, "color": "#fff"}},
        }

    return {
        "data": [
            trace(map_data["access_points"], "Where it is reachable", "#0172ad", "circle"),
            trace(map_data["mine"], "My ports", "#1b7f3a", "square"),
        ],
        "layout": {
            "height": 320,
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "legend": {"orientation": "h", "y": 0},
            "geo": {
                "fitbounds": False,  # the whole world (plotly.js would zoom to a lone metro)
                "resolution": 110,
                "projection": {"type": "natural earth"},
                "showcountries": True,
                "countrycolor": "#c8ccd2",
                "showland": True,
                "landcolor": "#eef1f4",
                "showframe": False,
            },
        },
    }


def compare_ids(data) -> list[str]:
    """The offerings picked for comparison: ``ids`` (comma-separated or repeated), well-formed UUIDs only,
    in the order given, without repeats."""
    raw = data.getlist("ids") if hasattr(data, "getlist") else [data.get("ids", "")]
    ids = []
    for item in raw:
        for part in str(item).split(","):
            part = part.strip().lower()
            if _UUID.match(part) and part not in ids:
                ids.append(part)
    return ids


def _best(cells: list[dict], direction: str) -> None:
    """Mark the best numeric cells of a row (only when at least two differ)."""
    values = [c["number"] for c in cells if c.get("number") is not None]
    if not direction or len(values) < 2 or len(set(values)) < 2:
        return
    best = max(values) if direction == "max" else min(values)
    for cell in cells:
        cell["best"] = cell.get("number") == best


def offering_comparison(*, org, public_ids: list[str]) -> dict:
    """Side-by-side rows for the visible offerings among ``public_ids`` (in that order): prices normalised
    per unit, specifications, compliance and latency from each of my metros, with the best values marked."""
    found = {
        str(o.public_id): o
        for o in Offering.objects.visible_to(org)
        .filter(public_id__in=public_ids)
        .select_related("provider")
        .prefetch_related(Prefetch("access_points", AccessPoint.objects.select_related("port__metro")))
    }
    offerings = [found[i] for i in public_ids if i in found]
    my_metros = list({p.metro.code: p.metro for p in _my_active_ports(org)}.values())
    rows: list[dict] = []

    def row(label, values, direction="", unit="", group=""):
        cells = []
        for value in values:
            if value is None:
                cells.append({"text": "-", "number": None})
            elif isinstance(value, int | float | Decimal):
                text = _money_text(value) if unit == "USD" else _number_text(value)
                cells.append({"text": f"{text} {unit}".strip(), "number": float(value)})
            else:
                cells.append({"text": str(value), "number": None})
        _best(cells, direction)
        rows.append({"label": label, "cells": cells, "group": group})

    row("Provider", [o.provider.name for o in offerings])
    row("Category", [o.get_category_display() for o in offerings])
    for unit, unit_label in PriceUnit.choices:
        if any(o.price_unit == unit for o in offerings):
            prices = [round(o.price_amount, 4) if o.price_unit == unit else None for o in offerings]
            row(f"Price {unit_label}", prices, "min", "USD", "price")
    if any(o.price_unit == PriceUnit.HOUR and o.gpu_count for o in offerings):
        row(
            "Price per GPU-hour",
            [
                round(o.price_amount / o.gpu_count, 4) if o.price_unit == PriceUnit.HOUR and o.gpu_count else None
                for o in offerings
            ],
            "min",
            "USD",
            "price",
        )
    if any(o.price_unit in (PriceUnit.HOUR, PriceUnit.MONTH) for o in offerings):
        monthly = []
        for o in offerings:
            factor = (
                HOURS_IN_A_MONTH if o.price_unit == PriceUnit.HOUR else 1 if o.price_unit == PriceUnit.MONTH else None
            )
            monthly.append(round(o.price_amount * factor, 2) if factor else None)
        row("Price per month (730 hours)", monthly, "min", "USD", "price")
    names = [n for n in SPECS if any(n in o.attributes for o in offerings)]
    for name in names:
        label, unit, direction = SPECS[name]
        row(label, [o.attributes.get(name) for o in offerings], direction, unit, "spec")
    row("Compliance", [", ".join(o.compliance) or "none listed" for o in offerings], group="spec")
    row("Reachable in", [", ".join(sorted({ap.port.metro.code for ap in o.access_points.all()})) for o in offerings])
    for metro in my_metros:
        latencies = []
        for o in offerings:
            legs = [metro_rtt(metro, ap.port.metro).estimate_ms for ap in o.access_points.all()]
            latencies.append(round(min(legs), 1) if legs else None)
        row(f"Latency from {metro.code} ({metro.name})", latencies, "min", "ms", "latency")
    columns = [{"offering": o, "unverified": PRICE_UNVERIFIED in o.tags} for o in offerings]
    missing = len(public_ids) - len(offerings)
    return {"columns": columns, "rows": rows, "missing": missing, "my_metros": my_metros}


# --- Provider console: a provider organization's own listings, requests and customers ---------
# (added with the provider console; reads of the provider's side of orders)
HOURS_PER_MONTH = 730
LIVE_ORDER_STATES = ("ACTIVE", "MODIFYING")
_ESTIMATED_UNITS = (PriceUnit.HOUR, PriceUnit.MONTH, PriceUnit.GBPS_MONTH)


def order_monthly_list_price() -> Case:
    """An order's offering price for a month at today's list price: per hour x 730 hours, per month,
    or per Gbps-month x the connection's bandwidth. Usage prices (tokens, GB, requests) give NULL:
    the provider bills them on use, so they cannot be estimated here."""
    price = F("offering__price_amount")
    money = DecimalField(max_digits=18, decimal_places=4)
    return Case(
        When(offering__price_unit=PriceUnit.HOUR, then=ExpressionWrapper(price * HOURS_PER_MONTH, output_field=money)),
        When(offering__price_unit=PriceUnit.MONTH, then=price),
        When(
            offering__price_unit=PriceUnit.GBPS_MONTH,
            then=ExpressionWrapper(price * F("connection__bandwidth_mbps") / 1000, output_field=money),
        ),
        default=None,
        output_field=money,
    )


def provider_orders(*, org) -> QuerySet[Order]:
    """Orders other organizations placed for ``org``'s offerings (the provider's side of them)."""
    return Order.objects.filter(offering__organization=org).select_related(
        "organization", "offering", "connection", "access_point__port__metro"
    )


def console_offerings(*, org, status: str = "") -> QuerySet[Offering]:
    """The provider's own listings in every state, with their access point and order counts."""
    qs = Offering.objects.for_org(org).select_related("provider")
    if status:
        qs = qs.filter(status=status)
    return qs.annotate(
        access_point_count=Count("access_points", distinct=True), order_count=Count("orders", distinct=True)
    ).order_by("status", "name", "id")


def console_dashboard(*, org) -> dict:
    """The console's tiles: listings by status, requests waiting, active customers, monthly revenue."""
    from fabric.selectors import incoming_requests

    by_status = dict(Offering.objects.for_org(org).order_by().values_list("status").annotate(n=Count("pk")))
    live = provider_orders(org=org).filter(connection__state__in=LIVE_ORDER_STATES).order_by()
    totals = live.aggregate(
        customers=Count("organization", distinct=True),
        orders=Count("pk"),
        revenue=Sum(order_monthly_list_price()),
        usage_billed=Count("pk", filter=~Q(offering__price_unit__in=_ESTIMATED_UNITS)),
    )
    return {
        "listings": [
            {"status": value, "label": label, "count": by_status.get(value, 0)}
            for value, label in OfferingStatus.choices
        ],
        "incoming": incoming_requests(org=org).count(),
        "active_customers": totals["customers"],
        "active_orders": totals["orders"],
        "monthly_revenue": totals["revenue"] or Decimal("0"),
        "usage_billed_orders": totals["usage_billed"],
    }


def console_customers(*, org) -> list[dict]:
    """One row per customer organization: its orders, live connections and monthly revenue, largest first."""
    live = Q(connection__state__in=LIVE_ORDER_STATES)
    rows = (
        provider_orders(org=org)
        .order_by()
        .values("organization__name", "organization__slug")
        .annotate(
            orders=Count("pk"),
            active_connections=Count("pk", filter=live),
            monthly_revenue=Sum(order_monthly_list_price(), filter=live),
            first_order=Min("created_at"),
            last_order=Max("created_at"),
        )
    )
    return sorted(
        (
            {
                "name": row["organization__name"],
                "slug": row["organization__slug"],
                "orders": row["orders"],
                "active_connections": row["active_connections"],
                "monthly_revenue": row["monthly_revenue"] or Decimal("0"),
                "first_order": row["first_order"],
                "last_order": row["last_order"],
            }
            for row in rows
        ),
        key=lambda row: (-row["monthly_revenue"], -row["active_connections"], row["name"]),
    )


def console_incoming_requests(*, org) -> QuerySet:
    """Connection requests waiting for ``org`` on its ports, with the offering ordered (if any)."""
    from fabric.selectors import incoming_requests

    return incoming_requests(org=org).select_related("order__offering").order_by("created_at", "id")


def suggested_vlans(*, ports) -> dict[int, int | None]:
    """The lowest free VLAN of the automatic range on each port (None when the range is full)."""
    from django.conf import settings

    from fabric.models import VlanAssignment

    port_ids = {port.pk for port in ports}
    used: dict[int, set[int]] = {pk: set() for pk in port_ids}
    for port_id, vlan in VlanAssignment.objects.filter(port_id__in=port_ids).values_list("port_id", "vlan"):
        used[port_id].add(vlan)
    low, high = settings.FABRIC_VLAN_AUTO_RANGE
    return {pk: next((tag for tag in range(low, high + 1) if tag not in tags), None) for pk, tags in used.items()}
