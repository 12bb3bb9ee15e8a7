"""Placement advisor: where to run a workload, ranked by total monthly cost, with every exclusion explained.

Given a category and requirements (an accelerator, at least N GPUs per instance, the metro where the
data is, a latency budget, the sovereignty zones a policy allows, a bandwidth and a monthly budget),
``advise`` ranks PUBLISHED offerings by their list price normalised to a month for the required
quantity plus the interconnect quote (``fabric.pricing``) from the data metro to the offering's
cheapest usable access point, and says why each other offering of the category was left out.

It scales with metros, not offerings: latency, zone and distance band are computed in Python once
per metro (there are few) and joined as a VALUES list; one statement (``_judged_sql``) then reads
the category's offerings and their access points once, grouped by offering with conditional MIN/MAX,
and returns the counts per exclusion reason, the ranked page and the page of exclusions, sorted and
cut in SQL. Only those two pages are assembled in Python (``_placements``, ``_reason``). On PostgreSQL
the category's published offerings are read from the covering index ``offering_advisor_cover``
(migration 0004) alone: an offering column the statement starts reading belongs in that index too
(tests/marketplace/test_advisor_index.py checks it).
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from django.db import connection, transaction

from fabric import pricing
from fabric.latency import metro_rtt
from fabric.models import Metro
from hub.errors import DomainError
from marketplace.choices import Category, OfferingStatus, PriceUnit
from marketplace.models import AccessPoint, Offering

HOURS_PER_MONTH = 730
MAX_LIMIT = 100
MAX_EXCLUDED_LIMIT = 1000
WORK_MEM = "64MB"
_CENTS = Decimal("0.01")


class Exclusion(StrEnum):
    """Why an offering of the category is not ranked, checked in this order."""

    CURRENCY = "currency"
    WRONG_ACCELERATOR = "wrong_accelerator"
    TOO_FEW_GPUS = "too_few_gpus"
    NO_ACCESS_POINT = "no_access_point"
    ZONE_NOT_ALLOWED = "zone_not_allowed"
    OVER_LATENCY_BUDGET = "over_latency_budget"
    BANDWIDTH_NOT_OFFERED = "bandwidth_not_offered"
    OVER_BUDGET = "over_budget"


EXCLUSION_LABELS = {
    Exclusion.CURRENCY: "not priced in USD",
    Exclusion.WRONG_ACCELERATOR: "wrong accelerator",
    Exclusion.TOO_FEW_GPUS: "too few GPUs",
    Exclusion.NO_ACCESS_POINT: "no access point",
    Exclusion.ZONE_NOT_ALLOWED: "zone not allowed",
    Exclusion.OVER_LATENCY_BUDGET: "over the latency budget",
    Exclusion.BANDWIDTH_NOT_OFFERED: "bandwidth not offered",
    Exclusion.OVER_BUDGET: "over the monthly budget",
}


@dataclass(frozen=True)
class Requirements:
    category: str
    data_metro: Metro
    accelerator: str = ""
    min_gpus: int | None = None
    latency_budget_ms: float | None = None
    allowed_zones: frozenset[str] = frozenset()  # empty: every zone
    bandwidth_mbps: int = 1_000
    quantity: Decimal = Decimal("1")
    hours_per_month: int = HOURS_PER_MONTH
    max_monthly_cost: Decimal | None = None

    def usage(self, price_unit: str) -> Decimal:
        """How many price units a month the requirement uses: instances x hours for hourly prices,
        else ``quantity`` of the unit (subscriptions, million tokens, GB, Gbps, million requests)."""
        if price_unit == PriceUnit.HOUR:
            return self.quantity * self.hours_per_month
        return self.quantity


@dataclass(frozen=True)
class Leg:
    """From the data metro to one access-point metro."""

    metro: Metro
    latency_ms: float
    band: pricing.DistanceBand
    zone_allowed: bool
    within_latency: bool

    @property
    def eligible(self) -> bool:
        return self.zone_allowed and self.within_latency


@dataclass
class Placement:
    """A ranked offering at its cheapest usable access point, with the cost lines."""

    offering: Offering
    access_point: AccessPoint
    leg: Leg
    bandwidth_mbps: int
    offering_monthly: Decimal
    offering_line: str
    interconnect: pricing.Quote

    @property
    def total_monthly(self) -> Decimal:
        return self.offering_monthly + self.interconnect.monthly_total

    @property
    def one_off(self) -> Decimal:
        return self.interconnect.one_off_total


@dataclass(frozen=True)
class Excluded:
    offering: Offering
    code: Exclusion
    reason: str

    @property
    def label(self) -> str:
        return EXCLUSION_LABELS[self.code]


@dataclass
class Advice:
    requirements: Requirements
    placements: list[Placement] = field(default_factory=list)
    candidates: int = 0  # offerings that meet every requirement (placements is the first page of them)
    excluded: list[Excluded] = field(default_factory=list)
    excluded_total: int = 0
    excluded_counts: dict[str, int] = field(default_factory=dict)

    @property
    def excluded_summary(self) -> list[tuple[str, int]]:
        """(label, count) per exclusion code, in the order the checks run."""
        return [(EXCLUSION_LABELS[Exclusion(code)], n) for code, n in self.excluded_counts.items()]


# --- Validation ------------------------------------------------------------------------------
def sovereignty_zones() -> list[str]:
    return sorted(set(Metro.objects.values_list("sovereignty_zone", flat=True)))


def requirements(
    *,
    category: str,
    data_metro: str,
    accelerator: str = "",
    min_gpus: int | None = None,
    latency_budget_ms: float | None = None,
    allowed_zones=(),
    bandwidth_mbps: int = 1_000,
    quantity=Decimal("1"),
    hours_per_month: int = HOURS_PER_MONTH,
    max_monthly_cost=None,
) -> Requirements:
    """Check the requirements as a user typed them; a bad one is a ``DomainError`` naming its field."""
    if category not in Category.values:
        raise DomainError(f"Category must be one of {', '.join(Category.values)}.", field="category")
    code = (data_metro or "").strip().upper()
    metro = Metro.objects.filter(code=code).first()
    if metro is None:
        raise DomainError(f"There is no metro {code or '(empty)'}; use a metro code such as FR.", field="data_metro")
    accelerator = (accelerator or "").strip()
    if category != Category.GPU_CLOUD and (accelerator or min_gpus):
        field_name = "accelerator" if accelerator else "min_gpus"
        raise DomainError("Accelerator and GPU count apply to GPU clouds only.", field=field_name)
    if min_gpus is not None and min_gpus < 1:
        raise DomainError("At least 1 GPU.", field="min_gpus")
    if latency_budget_ms is not None and not latency_budget_ms > 0:
        raise DomainError("The latency budget is a number of milliseconds above 0.", field="latency_budget_ms")
    zones = frozenset(zone.strip().upper() for zone in allowed_zones or () if zone.strip())
    unknown = sorted(zones - set(sovereignty_zones()))
    if unknown:
        raise DomainError(
            f"Unknown sovereignty zone {', '.join(unknown)}; known zones: {', '.join(sovereignty_zones())}.",
            field="allowed_zones",
        )
    if not 1 <= bandwidth_mbps <= pricing.MAX_BANDWIDTH_MBPS:
        raise DomainError(f"Bandwidth is 1 to {pricing.MAX_BANDWIDTH_MBPS:,} Mbps.", field="bandwidth_mbps")
    quantity = Decimal(str(quantity))
    if not quantity.is_finite() or quantity <= 0 or quantity > 1_000_000:
        raise DomainError("The quantity is above 0 (and at most 1,000,000).", field="quantity")
    if not 1 <= hours_per_month <= 744:
        raise DomainError("Hours per month are 1 to 744.", field="hours_per_month")
    if max_monthly_cost is not None:
        max_monthly_cost = Decimal(str(max_monthly_cost))
        if not max_monthly_cost.is_finite() or max_monthly_cost < 0:
            raise DomainError("The monthly budget cannot be below zero.", field="max_monthly_cost")
    return Requirements(
        category=category,
        data_metro=metro,
        accelerator=accelerator,
        min_gpus=min_gpus,
        latency_budget_ms=latency_budget_ms,
        allowed_zones=zones,
        bandwidth_mbps=bandwidth_mbps,
        quantity=quantity,
        hours_per_month=hours_per_month,
        max_monthly_cost=max_monthly_cost,
    )


# --- The advice ------------------------------------------------------------------------------
def legs_from(req: Requirements) -> dict[int, Leg]:
    """One leg per metro (a few dozen): latency estimate, distance band, zone and budget checks."""
    legs = {}
    for metro in Metro.objects.all():
        latency = metro_rtt(req.data_metro, metro).estimate_ms
        legs[metro.pk] = Leg(
            metro=metro,
            latency_ms=latency,
            band=pricing.distance_band(req.data_metro, metro),
            zone_allowed=not req.allowed_zones or metro.sovereignty_zone in req.allowed_zones,
            within_latency=req.latency_budget_ms is None or latency <= req.latency_budget_ms,
        )
    return legs


def _chosen_bandwidth(allowed: list[int], wanted: int) -> int | None:
    """The smallest bandwidth an access point offers that is at least ``wanted``."""
    return min((b for b in allowed if isinstance(b, int) and b >= wanted), default=None)


def _tier_price_sql(vendor: str, wanted: int) -> str:
    """The same-metro monthly price of the bandwidth tier of ``_chosen_bandwidth`` for access point
    ``ap``, in SQL; NULL when it offers nothing large enough (or only more than the largest tier).

    The chosen bandwidth is in the first tier T (ascending) for which the access point offers a
    bandwidth between ``wanted`` and T. PostgreSQL checks that per tier with containment of T itself
    (the common case, the cheapest test) or else a jsonpath range test, both far cheaper than
    unnesting the list of every access point; SQLite unnests with ``json_each`` and
    takes the smallest tier price, which is the chosen bandwidth's since prices rise with tiers.
    """
    wanted = int(wanted)
    tiers = {tier: price for tier, price in pricing.BANDWIDTH_TIERS_MBPS.items() if tier >= wanted}
    if vendor == "postgresql":
        whens = " ".join(
            f"WHEN ap.allowed_bandwidths_mbps @> '[{tier}]' "
            f"OR ap.allowed_bandwidths_mbps @? 'strict $[*] ? (@ >= {wanted} && @ <= {tier})' "
            f"THEN CAST('{price}' AS NUMERIC)"
            for tier, price in tiers.items()
        )
        return f"CASE {whens} END" if whens else "NULL"
    prices = " ".join(f"WHEN e.value <= {tier} THEN CAST('{price}' AS NUMERIC)" for tier, price in tiers.items())
    return (
        "CASE WHEN json_type(ap.allowed_bandwidths_mbps) = 'array' THEN (SELECT MIN(CASE "  # noqa: S608 - constants
        f"{prices or 'WHEN 1 = 0 THEN NULL'} END) FROM json_each(ap.allowed_bandwidths_mbps) e"
        f" WHERE e.type = 'integer' AND e.value >= {wanted}) END"
    )


def _judged_sql(req: Requirements, legs: dict[int, Leg], *, limit: int, excluded_limit: int) -> tuple[str, list]:
    """One statement that judges every published offering of the category and returns, in this order:
    the number of offerings per exclusion code ('' for candidates), the page of ``limit`` cheapest
    candidates and the page of ``excluded_limit`` exclusions by code then name, the last two with the
    price of the cheapest usable interconnect.

    The access points of the category are read once, grouped by offering with conditional MIN/MAX:
    whether one is in an allowed zone, one is also within the latency budget, and the price of the
    cheapest usable one. The per-metro figures (zone, latency, distance band) are computed in Python
    beforehand and joined as a VALUES list (a few dozen rows); the price is the bandwidth tier's price times the band's
    multiplier (``fabric.pricing``), so it never leaves the database for offerings that are not shown.
    The joins are a chain of LEFT JOINs from the offerings so that PostgreSQL matches access points to
    the category's offerings (hashed) before looking up their ports: other categories' access points
    cost one hash probe each. ORDER BY/LIMIT cut both pages in SQL.
    """
    vendor = connection.vendor
    # Per metro: in an allowed zone (0/1), also within the latency budget (0/1), the band's multiplier.
    metros = ", ".join(
        f"({int(pk)}, {int(leg.zone_allowed)}, {int(leg.eligible)}, CAST('{pricing.BAND_MULTIPLIER[leg.band]}' AS NUMERIC))"
        for pk, leg in legs.items()
    )
    # The offering's monthly price for the required usage (three parameters).
    monthly = "g.price_amount * (CASE WHEN g.price_unit = %s THEN CAST(%s AS NUMERIC) ELSE CAST(%s AS NUMERIC) END)"
    usage = [PriceUnit.HOUR.value, str(req.usage(PriceUnit.HOUR)), str(req.quantity)]
    # Checks of the offering alone ({t}: the table alias), first in line: an offering failing one is
    # excluded for it whatever its access points, so those are not even joined.
    own_checks = [("{t}.currency <> %s", [pricing.CURRENCY], Exclusion.CURRENCY)]
    if req.accelerator:
        own_checks.append(("UPPER({t}.accelerator) <> UPPER(%s)", [req.accelerator], Exclusion.WRONG_ACCELERATOR))
    if req.min_gpus:
        own_checks.append(("({t}.gpu_count IS NULL OR {t}.gpu_count < %s)", [req.min_gpus], Exclusion.TOO_FEW_GPUS))
    exclusions, params = [], []
    for fails, values, code in own_checks:
        exclusions.append(f"WHEN {fails.format(t='g')} THEN %s")
        params += [*values, code.value]
    passes = " ".join(f"AND NOT {fails.format(t='o')}" for fails, _, _ in own_checks)
    passes_params = [value for _, values, _ in own_checks for value in values]
    exclusions.append("WHEN g.points = 0 THEN %s")
    params.append(Exclusion.NO_ACCESS_POINT.value)
    if req.allowed_zones:
        exclusions.append("WHEN g.in_zone = 0 THEN %s")
        params.append(Exclusion.ZONE_NOT_ALLOWED.value)
    if req.latency_budget_ms is not None:
        exclusions.append("WHEN g.near = 0 THEN %s")
        params.append(Exclusion.OVER_LATENCY_BUDGET.value)
    exclusions.append("WHEN g.interconnect IS NULL THEN %s")
    params.append(Exclusion.BANDWIDTH_NOT_OFFERED.value)
    if req.max_monthly_cost is not None:
        exclusions.append(f"WHEN {monthly} + g.interconnect > CAST(%s AS NUMERIC) THEN %s")
        params += [*usage, str(req.max_monthly_cost), Exclusion.OVER_BUDGET.value]
    params += [*usage, *passes_params, OfferingStatus.PUBLISHED.value, Category(req.category).value]
    params += [limit, excluded_limit]
    rank = " ".join(f"WHEN '{code.value}' THEN {i}" for i, code in enumerate(Exclusion))
    sql = f"""
WITH metros(id, zone_ok, eligible, multiplier) AS (VALUES {metros}),
judged AS (
    SELECT g.id, g.name, g.interconnect,
        CASE {" ".join(exclusions)} ELSE '' END AS exclusion,
        {monthly} + g.interconnect AS total
    FROM (
        SELECT o.id, o.name, o.currency, o.accelerator, o.gpu_count, o.price_amount, o.price_unit,
            COUNT(ap.id) AS points,
            MAX(m.zone_ok) AS in_zone,
            MAX(m.eligible) AS near,
            MIN(CASE WHEN m.eligible = 1 THEN m.multiplier * {_tier_price_sql(vendor, req.bandwidth_mbps)} END)
                AS interconnect
        FROM marketplace_offering o
        LEFT JOIN marketplace_accesspoint ap ON ap.offering_id = o.id {passes}
        LEFT JOIN fabric_port p ON p.id = ap.port_id
        LEFT JOIN metros m ON m.id = p.metro_id
        WHERE o.status = %s AND o.category = %s
        GROUP BY o.id
    ) g
)
SELECT * FROM (
    SELECT 0 AS part, exclusion, COUNT(*) AS n, CAST(NULL AS BIGINT) AS id, CAST(NULL AS NUMERIC) AS interconnect, 0 AS k, '' AS name
    FROM judged GROUP BY exclusion
) counts
UNION ALL
SELECT * FROM (
    SELECT 1, exclusion, 0, id, interconnect, total, name FROM judged
    WHERE exclusion = '' ORDER BY total, name, id LIMIT %s
) ranked
UNION ALL
SELECT * FROM (
    SELECT 2, exclusion, 0, id, interconnect, CASE exclusion {rank} END AS k, name FROM judged
    WHERE exclusion <> '' ORDER BY k, name, id LIMIT %s
) excluded
ORDER BY part, k, name, id
"""  # noqa: S608 - inlined: primary keys, enum values and constants; user input is a parameter
    return sql, params


def _mbps(value: int) -> str:
    return f"{value // 1000:,} Gbps" if value >= 1000 and value % 1000 == 0 else f"{value:,} Mbps"


def _offering_cost(req: Requirements, offering: Offering) -> tuple[Decimal, str]:
    usage = req.usage(offering.price_unit)
    monthly = (offering.price_amount * usage).quantize(_CENTS)
    listed = f"{offering.price_amount.normalize():f} {offering.currency} {offering.get_price_unit_display()}"
    if offering.price_unit == PriceUnit.HOUR:
        detail = f"{listed} x {req.hours_per_month} h x {req.quantity.normalize():f}"
    else:
        detail = f"{listed} x {req.quantity.normalize():f}"
    return monthly, detail


def _placements(
    req: Requirements, legs: dict[int, Leg], offerings: list[Offering], points: dict[int, list[AccessPoint]]
) -> list[Placement]:
    """Each ranked offering at its cheapest usable access point (then the lowest latency)."""
    placements = []
    for offering in offerings:
        monthly, line = _offering_cost(req, offering)
        options = []
        for point in points.get(offering.pk, []):
            leg = legs[point.port.metro_id]
            bandwidth = _chosen_bandwidth(point.allowed_bandwidths_mbps, req.bandwidth_mbps)
            if not leg.eligible or bandwidth is None or bandwidth > pricing.MAX_BANDWIDTH_MBPS:
                continue
            quote = pricing.connection_quote(a_metro=req.data_metro, z_metro=leg.metro, bandwidth_mbps=bandwidth)
            options.append(Placement(offering, point, leg, bandwidth, monthly, line, quote))
        if options:
            placements.append(min(options, key=lambda p: (p.total_monthly, p.leg.latency_ms)))
    return sorted(placements, key=lambda p: (p.total_monthly, p.leg.latency_ms, p.offering.name))


_REASONS_FROM_ACCESS_POINTS = {
    Exclusion.ZONE_NOT_ALLOWED,
    Exclusion.OVER_LATENCY_BUDGET,
    Exclusion.BANDWIDTH_NOT_OFFERED,
}


def _money(value) -> Decimal | None:
    """A price read back from SQL: exact on PostgreSQL, a float on SQLite (whose NUMERIC is floating)."""
    return None if value is None else Decimal(str(value)).quantize(_CENTS)


def _total(req: Requirements, offering: Offering, interconnect: Decimal | None) -> Decimal | None:
    """The unrounded monthly total, computed as the database does, for the over-budget reason."""
    if interconnect is None:
        return None
    return offering.price_amount * req.usage(offering.price_unit) + interconnect


def _reason(
    req: Requirements,
    legs: dict[int, Leg],
    offering: Offering,
    code: str,
    points: list[AccessPoint],
    total: Decimal | None = None,
) -> str:
    origin = req.data_metro.code
    if code == Exclusion.CURRENCY:
        return f"Priced in {offering.currency}; the advisor compares totals in {pricing.CURRENCY}."
    if code == Exclusion.WRONG_ACCELERATOR:
        return f"Offers {offering.accelerator or 'no GPU accelerator'}, not {req.accelerator}."
    if code == Exclusion.TOO_FEW_GPUS:
        return f"{offering.gpu_count or 0} GPU{'' if offering.gpu_count == 1 else 's'} per instance; at least {req.min_gpus} needed."
    if code == Exclusion.NO_ACCESS_POINT:
        return "Not reachable over the fabric: the provider has not added an access point."
    if code == Exclusion.ZONE_NOT_ALLOWED:
        zones = sorted({legs[p.port.metro_id].metro.sovereignty_zone for p in points})
        allowed = ", ".join(sorted(req.allowed_zones))
        return f"Reachable only in zone{'s' if len(zones) > 1 else ''} {', '.join(zones)}; allowed: {allowed}."
    if code == Exclusion.OVER_LATENCY_BUDGET:
        nearest = min(
            (legs[p.port.metro_id] for p in points if legs[p.port.metro_id].zone_allowed),
            key=lambda leg: leg.latency_ms,
        )
        return (
            f"Nearest access point {nearest.metro.code} ({nearest.metro.name}) is an estimated "
            f"{nearest.latency_ms:.1f} ms round trip from {origin}; the budget is {req.latency_budget_ms:g} ms."
        )
    if code == Exclusion.BANDWIDTH_NOT_OFFERED:
        offered = sorted({b for p in points if legs[p.port.metro_id].eligible for b in p.allowed_bandwidths_mbps})
        largest = _mbps(offered[-1]) if offered else "nothing"
        return f"No usable access point offers {_mbps(req.bandwidth_mbps)} or more (at most {largest})."
    total = Decimal(total or 0).quantize(_CENTS)
    return f"Costs {total:,.2f} {pricing.CURRENCY} a month with the interconnect; the budget is {req.max_monthly_cost:,.2f}."


@contextmanager
def _tuned():
    """For the judging statement on PostgreSQL: no JIT (compiling its many CASE expressions costs more
    than running them) and enough memory to group and sort the category's access points without
    spilling to disk (the default 4 MB does not hold 100,000 offerings' worth). Both for this
    transaction only."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('jit', 'off', true), set_config('work_mem', %s, true)", [WORK_MEM])
        yield


def advise(req: Requirements, *, limit: int = 20, excluded_limit: int = 200) -> Advice:
    """Rank the offerings that meet ``req`` by total monthly cost and explain the others.

    ``placements`` holds the ``limit`` cheapest (``candidates`` counts them all); ``excluded`` the
    first ``excluded_limit`` exclusions by reason and name (``excluded_counts`` counts every one).
    Four queries however large the catalog: the metros, the judgement (``_judged_sql``), then the
    offerings and access points of the two pages (on PostgreSQL, ``_tuned`` adds its transaction).
    """
    limit = max(1, min(limit, MAX_LIMIT))
    excluded_limit = max(0, min(excluded_limit, MAX_EXCLUDED_LIMIT))
    legs = legs_from(req)
    advice = Advice(requirements=req)
    sql, params = _judged_sql(req, legs, limit=limit, excluded_limit=excluded_limit)
    with _tuned(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    counts = {code: n for part, code, n, *_ in rows if part == 0}
    ranked = [pk for part, _, _, pk, *_ in rows if part == 1]
    page = [(pk, Exclusion(code), _money(price)) for part, code, _, pk, price, *_ in rows if part == 2]
    advice.candidates = counts.pop("", 0)
    advice.excluded_counts = {code.value: counts[code.value] for code in Exclusion if counts.get(code.value)}
    advice.excluded_total = sum(advice.excluded_counts.values())

    ids = ranked + [pk for pk, _, _ in page]
    offerings = Offering.objects.select_related("provider").in_bulk(ids) if ids else {}
    # Access points: where the ranked ones are placed, and the figures of the reasons that name them.
    located = ranked + [pk for pk, code, _ in page if code in _REASONS_FROM_ACCESS_POINTS]
    points: dict[int, list[AccessPoint]] = {}
    for point in AccessPoint.objects.filter(offering_id__in=located).select_related("port__metro") if located else ():
        points.setdefault(point.offering_id, []).append(point)
    advice.placements = _placements(req, legs, [offerings[pk] for pk in ranked], points)
    advice.excluded = [
        Excluded(
            offerings[pk],
            code,
            _reason(req, legs, offerings[pk], code, points.get(pk, []), _total(req, offerings[pk], interconnect)),
        )
        for pk, code, interconnect in page
    ]
    return advice
