"""Catalog search: what the catalog page and ``GET /api/v1/offerings/`` (+ ``facets/``) both run.

* Text: on PostgreSQL a stored ``search_vector`` (name A; provider, accelerator and tags B; summary C;
  description D; the ``simple`` configuration, so model and instance names are not stemmed) matched
  with ``websearch_to_tsquery`` through a GIN index and ranked with ``ts_rank``. Elsewhere (SQLite) a
  case-insensitive match over name, summary, tags, accelerator and provider, names first.
* Facets (category, provider, region, metro, accelerator, GPU memory band, compliance, price band):
  each facet's counts are computed with every filter except its own, so a user can widen a choice as
  well as narrow it. They are counted in the catalog index (``marketplace.catalog_index``): an
  in-process columnar copy of every offering's facet dimensions, rebuilt when the catalog version
  (kept by database triggers) changes, so a write is seen by the next search. The text search stays in
  the database and gives the matching ids (and ranks); visibility, status, GPU count and the facet
  filters are masks over the index.
* Sorting: relevance, price, name, or estimated round-trip latency from one of my metros (the latency
  from that metro to every metro is computed once in Python). The catalog page orders the matching
  positions in the index (positions follow the database's ``name, id`` order) and reads only the page's
  rows; ``offering_search`` (the API's list) orders the same way in SQL, with the latency as a CASE.

Bad input never reaches the database as an error: the text is cleaned and capped, unknown facet values
and sorts are reported in ``errors`` (the API answers 400, the page ignores them with a message).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.db.models import (
    Case,
    Exists,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce

from fabric.choices import PortState, Region
from fabric.latency import metro_rtt
from fabric.models import Metro, Port
from hub.errors import DomainError
from marketplace import catalog_index
from marketplace.choices import Category, OfferingStatus, PriceUnit
from marketplace.models import AccessPoint, Offering, ProviderProfile

MAX_QUERY_LENGTH = 200
MAX_VALUE_LENGTH = 60
MAX_VALUES_PER_FACET = 20
PAGE_SIZE = 24
SEARCH_CONFIG = "simple"

FACETS = ("category", "provider", "region", "metro", "accelerator", "gpu_memory", "compliance", "price")
FACET_LABELS = {
    "category": "Category",
    "provider": "Provider",
    "region": "Region",
    "metro": "Metro",
    "accelerator": "Accelerator",
    "gpu_memory": "GPU memory",
    "compliance": "Compliance",
    "price": "Price",
}
SORTS = {
    "relevance": "Relevance",
    "price": "Price: low to high",
    "-price": "Price: high to low",
    "name": "Name",
    "latency": "Latency from my metro",
}


# --- Bands -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Band:
    key: str
    label: str
    low: Decimal | None
    high: Decimal | None  # exclusive
    unit: str = ""


GPU_MEMORY_BANDS = (
    Band("lt24", "under 24 GB", None, Decimal(24)),
    Band("24-47", "24-47 GB", Decimal(24), Decimal(48)),
    Band("48-79", "48-79 GB", Decimal(48), Decimal(80)),
    Band("80-127", "80-127 GB", Decimal(80), Decimal(128)),
    Band("128up", "128 GB and more", Decimal(128), None),
)

# Price bands are per price unit: a per-hour price and a per-token price are not comparable.
_PRICE_EDGES = {
    PriceUnit.HOUR: ("1", "5", "20", "50"),
    PriceUnit.MONTH: ("100", "1000", "10000"),
    PriceUnit.MTOK_INPUT: ("0.5", "2", "10"),
    PriceUnit.GB_MONTH: ("0.02", "0.1", "1"),
    PriceUnit.GB: ("0.01", "0.05"),
    PriceUnit.GBPS_MONTH: ("100", "500"),
    PriceUnit.REQUEST_MILLION: ("1", "10"),
}


def _money(value: Decimal) -> str:
    return f"${value.normalize():f}" if value < 1 else f"${value:,.0f}"


def _price_bands() -> tuple[Band, ...]:
    bands = []
    for unit, edges in _PRICE_EDGES.items():
        per = PriceUnit(unit).label
        points = [None, *(Decimal(e) for e in edges), None]
        for low, high in itertools.pairwise(points):
            low_text = f"{low.normalize():f}" if low is not None else "0"
            high_text = f"{high.normalize():f}" if high is not None else "up"
            if low is None:
                label = f"under {_money(high)} {per}"
            elif high is None:
                label = f"{_money(low)} and more {per}"
            else:
                label = f"{_money(low)}-{_money(high)[1:]} {per}"
            bands.append(Band(f"{unit.lower()}-{low_text}-{high_text}", label, low, high, unit))
    return tuple(bands)


PRICE_BANDS = _price_bands()


def _band_q(field_name: str, band: Band) -> Q:
    q = Q(**{f"{field_name}__isnull": False})
    if band.low is not None:
        q &= Q(**{f"{field_name}__gte": band.low})
    if band.high is not None:
        q &= Q(**{f"{field_name}__lt": band.high})
    if band.unit:
        q &= Q(price_unit=band.unit)
    return q


# --- The query ---------------------------------------------------------------------------------
@dataclass
class CatalogQuery:
    """A cleaned catalog request. Facet selections are lists (OR within a facet, AND across)."""

    q: str = ""
    selected: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in FACETS})
    sort: str = "relevance"
    from_metro: str = ""
    status: str = ""
    min_gpu_count: int | None = None
    page: int = 1

    def params(self, **changes) -> list[tuple[str, str]]:
        """The query as URL parameters (for links that change one thing), in a stable order."""
        state = {"q": self.q, "sort": self.sort, "from_metro": self.from_metro, **changes}
        pairs = [(k, str(v)) for k, v in state.items() if k in ("q", "sort", "from_metro") and v]
        selected = changes.get("selected", self.selected)
        for name in FACETS:
            pairs += [(name, value) for value in selected.get(name, [])]
        if changes.get("page", 1) != 1:
            pairs.append(("page", str(changes["page"])))
        return pairs


class Vocabulary:
    """The metros and providers facet values are checked against, and the catalog index: all read with
    the index, which is rebuilt when the catalog version changes (writes to metros and providers change it)."""

    @functools.cached_property
    def index(self) -> catalog_index.CatalogIndex:
        return catalog_index.current()

    @property
    def metros(self) -> dict[str, Metro]:
        return self.index.metros

    @property
    def metros_by_id(self) -> dict[int, Metro]:
        return self.index.metros_by_id

    @property
    def providers(self) -> dict[str, tuple[int, str]]:
        """slug -> (id, name)"""
        return self.index.providers


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clean_text(value: str) -> str:
    """Control characters (NUL included) become spaces; runs of spaces collapse."""
    return " ".join(_CONTROL.sub(" ", value).split())


def _values(data, key: str) -> list[str]:
    if hasattr(data, "getlist"):
        raw = data.getlist(key)
    else:
        raw = data.get(key, [])
        raw = raw if isinstance(raw, list | tuple) else [raw]
    values = []
    for item in raw:
        for part in str(item).split(","):
            part = clean_text(part)[:MAX_VALUE_LENGTH]
            if part and part not in values:
                values.append(part)
    return values


def parse_query(data, vocabulary: Vocabulary) -> tuple[CatalogQuery, dict[str, str]]:
    """A CatalogQuery from request parameters, and a message per parameter that was not understood.

    Facet values may repeat the parameter (``region=EMEA&region=APAC``) or be comma-separated.
    """
    errors: dict[str, str] = {}
    query = CatalogQuery()
    q = clean_text(str(data.get("q") or ""))
    if len(q) > MAX_QUERY_LENGTH:
        errors["q"] = f"The search text was cut to {MAX_QUERY_LENGTH} characters."
        q = q[:MAX_QUERY_LENGTH].rstrip()
    query.q = q
    known = {
        "category": {v.lower(): v for v in Category.values},
        "region": {v.lower(): v for v in Region.values},
        "gpu_memory": {b.key: b.key for b in GPU_MEMORY_BANDS},
        "price": {b.key: b.key for b in PRICE_BANDS},
    }
    for name in FACETS:
        values = _values(data, name)[:MAX_VALUES_PER_FACET]
        if not values:
            continue
        if name in known:
            good = [known[name][v.lower()] for v in values if v.lower() in known[name]]
            bad = [v for v in values if v.lower() not in known[name]]
        elif name == "metro":
            good = [v.upper() for v in values if v.upper() in vocabulary.metros]
            bad = [v for v in values if v.upper() not in vocabulary.metros]
        elif name == "provider":
            good = [v for v in values if v in vocabulary.providers]
            bad = [v for v in values if v not in vocabulary.providers]
        else:  # accelerator and compliance are open vocabularies: an absent value just matches nothing
            good, bad = values, []
        if bad:
            errors[name] = f"Unknown {FACET_LABELS[name].lower()}: {', '.join(repr(v) for v in bad)}."
        query.selected[name] = list(dict.fromkeys(good))
    sort = str(data.get("sort") or "").strip()
    if sort and sort not in SORTS:
        errors["sort"] = f"Unknown sort {sort[:40]!r}; use one of {', '.join(SORTS)}."
        sort = ""
    query.sort = sort or ("relevance" if q else "name")
    from_metro = clean_text(str(data.get("from_metro") or "")).upper()
    if from_metro and from_metro not in vocabulary.metros:
        errors["from_metro"] = f"Unknown metro {from_metro[:10]!r}."
        from_metro = ""
    query.from_metro = from_metro
    status = str(data.get("status") or "").strip().upper()
    if status and status not in OfferingStatus.values:
        errors["status"] = f"Unknown status; use one of {', '.join(OfferingStatus.values)}."
        status = ""
    query.status = status
    min_gpu_count = str(data.get("min_gpu_count") or "").strip()
    if min_gpu_count and not (min_gpu_count.isdigit() and 1 <= int(min_gpu_count) <= 10_000):
        errors["min_gpu_count"] = "The minimum GPU count is a whole number from 1."
        min_gpu_count = ""
    query.min_gpu_count = int(min_gpu_count) if min_gpu_count else None
    page = str(data.get("page") or "1").strip()
    if not page.isdigit() or int(page) < 1:
        errors["page"] = "The page is a whole number from 1."
        page = "1"
    query.page = min(int(page), 10**9)
    return query, errors


class CatalogQueryError(DomainError):
    """Parameters the catalog did not understand, one message per parameter (the API's field errors)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(" ".join(errors.values()), code="invalid_query")
        self.errors = errors


def strict_query(data) -> tuple[CatalogQuery, Vocabulary, dict[int, float] | None]:
    """The query, its vocabulary and (to sort by latency) the latency map; any error raises
    ``CatalogQueryError`` (what the API wants: a clear 400 rather than a silently different answer)."""
    vocabulary = Vocabulary()
    query, errors = parse_query(data, vocabulary)
    latencies = None
    if query.sort == "latency":
        if not query.from_metro:
            errors["from_metro"] = "Sorting by latency needs the metro to measure from (from_metro=FR, for example)."
        else:
            latencies = latency_map(vocabulary.metros[query.from_metro], vocabulary.metros.values())
    if errors:
        raise CatalogQueryError(errors)
    return query, vocabulary, latencies


# --- Predicates --------------------------------------------------------------------------------
def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _json_list_has(field_name: str, value: str) -> Q:
    if _is_postgres():
        return Q(**{f"{field_name}__contains": [value]})
    return Q(**{f"{field_name}__icontains": json.dumps(value)})  # SQLite stores the list as JSON text


def _any(qs: list[Q]) -> Q:
    combined = Q(pk__in=[])
    for q in qs:
        combined |= q
    return combined


def _text_query(q: str) -> SearchQuery:
    return SearchQuery(q, config=SEARCH_CONFIG, search_type="websearch")


def _text_filter(q: str) -> Q:
    if _is_postgres():
        return Q(search_vector=_text_query(q))
    # The plain fallback: every word somewhere in the searched fields; "-word" leaves out what has it.
    combined = Q()
    for word in re.findall(r"[^\s\"']+", q):
        negate = word.startswith("-") and len(word) > 1
        word = word[1:] if negate else word
        match = (
            Q(name__icontains=word)
            | Q(summary__icontains=word)
            | Q(tags__icontains=word)
            | Q(accelerator__icontains=word)
            | Q(provider__name__icontains=word)
        )
        combined &= ~match if negate else match
    return combined


def _facet_filter(name: str, values: list[str], vocabulary: Vocabulary) -> Q:
    if name == "category":
        return Q(category__in=values)
    if name == "provider":
        return Q(provider_id__in=[vocabulary.providers[v][0] for v in values])
    if name == "region":
        return _any([Q(regions__contains=v) for v in values])
    if name == "metro":
        ids = [vocabulary.metros[v].pk for v in values]
        return Q(Exists(AccessPoint.objects.filter(offering=OuterRef("pk"), port__metro_id__in=ids)))
    if name == "accelerator":
        return _any([Q(accelerator__iexact=v) for v in values])
    if name == "gpu_memory":
        return _any([_band_q("gpu_memory_gb", b) for b in GPU_MEMORY_BANDS if b.key in values])
    if name == "compliance":
        return _any([_json_list_has("compliance", v) for v in values])
    if name == "price":
        return _any([_band_q("price_amount", b) for b in PRICE_BANDS if b.key in values])
    raise ValueError(name)


def _filtered(org, query: CatalogQuery, vocabulary: Vocabulary, *, skip=()) -> QuerySet:
    """The visible offerings matching the text, status, GPU count and every facet filter not in ``skip``."""
    qs = Offering.objects.visible_to(org)
    if query.q:
        qs = qs.filter(_text_filter(query.q))
    if query.status:
        qs = qs.filter(status=query.status)
    if query.min_gpu_count:
        qs = qs.filter(gpu_count__gte=query.min_gpu_count)
    for name in FACETS:
        if name not in skip and query.selected[name]:
            qs = qs.filter(_facet_filter(name, query.selected[name], vocabulary))
    return qs


# --- Latency -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _rtt_ms(a: tuple, b: tuple) -> float:
    return round(metro_rtt(_MetroPoint(*a), _MetroPoint(*b)).estimate_ms, 1)


@dataclass(frozen=True)
class _MetroPoint:
    code: str
    latitude: float
    longitude: float


def latency_map(from_metro: Metro, metros) -> dict[int, float]:
    """Estimated round trip in ms from ``from_metro`` to each metro, by metro id (computed once per pair)."""
    origin = (from_metro.code, from_metro.latitude, from_metro.longitude)
    return {m.pk: _rtt_ms(origin, (m.code, m.latitude, m.longitude)) for m in metros}


def _latency_case(latencies: dict[int, float], path: str) -> Case:
    return Case(
        *(When(**{path: metro_id}, then=Value(ms)) for metro_id, ms in latencies.items()),
        default=Value(None),
        output_field=FloatField(),
    )


def _ordered(qs: QuerySet, query: CatalogQuery, latencies: dict[int, float] | None) -> QuerySet:
    if query.sort == "latency" and latencies:
        nearest = (
            AccessPoint.objects.filter(offering=OuterRef("pk"))
            .annotate(ms=_latency_case(latencies, "port__metro_id"))
            .order_by("ms")
            .values("ms")[:1]
        )
        return qs.annotate(latency_ms=Subquery(nearest, output_field=FloatField())).order_by(
            F("latency_ms").asc(nulls_last=True), "price_amount", "id"
        )
    if query.sort == "price":
        return qs.order_by("price_amount", "name", "id")
    if query.sort == "-price":
        return qs.order_by("-price_amount", "name", "id")
    if query.sort == "relevance" and query.q:
        if _is_postgres():
            rank = SearchRank(F("search_vector"), _text_query(query.q))
        else:
            rank = Case(When(name__icontains=query.q, then=Value(1)), default=Value(0), output_field=IntegerField())
        return qs.annotate(rank=rank).order_by("-rank", "name", "id")
    return qs.order_by("name", "id")


# --- Facets ------------------------------------------------------------------------------------
def _wanted(name: str, values: list[str], vocabulary: Vocabulary):
    """Which of a facet's index values a selection means: the same test as ``_facet_filter`` in SQL."""
    if name == "provider":
        ids = {vocabulary.providers[v][0] for v in values}
        return ids.__contains__
    if name == "metro":
        ids = {vocabulary.metros[v].pk for v in values}
        return ids.__contains__
    if name == "accelerator":  # iexact
        upper = {v.upper() for v in values}
        return lambda value: value.upper() in upper
    if name == "compliance" and not _is_postgres():  # SQLite: a case-insensitive match in the JSON text
        lower = {v.lower() for v in values}
        return lambda value: value.lower() in lower
    chosen = set(values)
    return chosen.__contains__


@dataclass
class _Matches:
    """A query evaluated on the catalog index: the offerings it may show (``base``: visible, text, status,
    GPU count), each facet filter's mask, and the text rank per position (relevance sort only)."""

    index: catalog_index.CatalogIndex
    base: np.ndarray
    filters: dict[str, np.ndarray]
    rank: np.ndarray | None = None

    def but(self, name: str | None) -> np.ndarray:
        """The offerings passing every filter except facet ``name``'s (None: every filter)."""
        mask = self.base
        for other, matched in self.filters.items():
            if other != name:
                mask = mask & matched
        return mask

    @functools.cached_property
    def matching(self) -> np.ndarray:
        return self.but(None)


def _rank(q: str):
    if _is_postgres():
        return SearchRank(F("search_vector"), _text_query(q))
    return Case(When(name__icontains=q, then=Value(1)), default=Value(0), output_field=IntegerField())


# The narrow copy of the search documents (migration 0005), each matching id as 8 bytes and each rank
# (``ts_rank``: a float4, as ``SearchRank`` computes it) as 4, aggregated in one row: thousands of
# matches cross as two strings that numpy reads in place, instead of a Python tuple per match.
_TEXT_SQL = """
SELECT string_agg(int8send(offering_id), ''){rank} FROM marketplace_offering_search
WHERE search_vector @@ websearch_to_tsquery(%s::regconfig, %s)
"""
_RANK_SQL = ", string_agg(float4send(ts_rank(search_vector, websearch_to_tsquery(%s::regconfig, %s))), '')"


def _text_matches(org, q: str, *, ranked: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The ids of the offerings matching ``q`` and, if ``ranked``, their ranks (aligned with the ids).

    On PostgreSQL every matching offering, whatever its status: visibility is a mask of the catalog index.
    """
    if _is_postgres():
        params = [SEARCH_CONFIG, q, SEARCH_CONFIG, q] if ranked else [SEARCH_CONFIG, q]
        with connection.cursor() as cursor:
            cursor.execute(_TEXT_SQL.format(rank=_RANK_SQL if ranked else ""), params)
            row = cursor.fetchone()
        ids = np.frombuffer(row[0] or b"", dtype=">i8").astype(np.int64)
        return ids, np.frombuffer(row[1] or b"", dtype=">f4").astype(np.float64) if ranked else None
    texts = Offering.objects.visible_to(org).filter(_text_filter(q)).order_by()
    texts = texts.annotate(rank=_rank(q)).values_list("pk", "rank") if ranked else texts.values_list("pk")
    sql, params = texts.query.sql_with_params()  # plain numbers: no converter call per value
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = np.array(cursor.fetchall(), dtype=np.float64).reshape(-1, 2 if ranked else 1)
    return rows[:, 0].astype(np.int64), rows[:, 1] if ranked else None


def _matches(org, query: CatalogQuery, vocabulary: Vocabulary, *, ranked: bool = False) -> _Matches:
    """The one database question a search asks besides reading rows to show: the ids matching the text
    (through the GIN index on PostgreSQL), with their rank when the page is sorted by relevance."""
    index = vocabulary.index
    base = index.published if org is None else index.published | (index.organization == org.pk)
    if query.status:
        base = base & (index.status == OfferingStatus.values.index(query.status))
    if query.min_gpu_count:
        base = base & (index.gpu_count >= query.min_gpu_count)
    rank = None
    if query.q:
        ids, ranks = _text_matches(org, query.q, ranked=ranked)
        positions, known = index.locate(ids)
        base = base & index.mask_of(positions)
        if ranked:
            rank = np.zeros(index.size)
            rank[positions] = ranks[known]
    filters = {
        name: index.dimensions[name].mask(_wanted(name, values, vocabulary), index.size)
        for name in FACETS
        if (values := query.selected[name])
    }
    return _Matches(index, base, filters, rank)


def _counts(matches: _Matches, query: CatalogQuery, vocabulary: Vocabulary) -> dict[str, list[dict]]:
    dimensions = matches.index.dimensions
    counts = {name: Counter(dimensions[name].counts(matches.but(name))) for name in FACETS}
    return _facet_lists(counts, query, vocabulary)


def facet_counts(org, query: CatalogQuery, vocabulary: Vocabulary) -> tuple[dict[str, list[dict]], int]:
    """Counts per facet value (each with every filter but its own) and the number of matching offerings."""
    matches = _matches(org, query, vocabulary)
    return _counts(matches, query, vocabulary), int(np.count_nonzero(matches.matching))


def _page_ids(matches: _Matches, query: CatalogQuery, latencies, start: int, size: int) -> list[int]:
    """The ids of one page of the matching offerings in the order ``_ordered`` gives in SQL."""
    index, matching = matches.index, matches.matching
    if query.sort == "latency" and latencies:  # nearest first (reachable nowhere last), then price, id
        positions = np.flatnonzero(matching)
        nearest = index.nearest(matching, latencies)[positions]
        order = positions[np.lexsort((index.ids[positions], index.prices[positions], nearest))]
    elif query.sort == "price":
        order = index.by_price[matching[index.by_price]]
    elif query.sort == "-price":
        order = index.by_price_desc[matching[index.by_price_desc]]
    elif query.sort == "relevance" and query.q:  # best rank first, then name, id (= position)
        positions = np.flatnonzero(matching)
        order = positions[np.argsort(-matches.rank[positions], kind="stable")]
    else:
        order = np.flatnonzero(matching)
    return [int(pk) for pk in index.ids[order[start : start + size]]]


def _facet_lists(counts: dict[str, Counter], query: CatalogQuery, vocabulary: Vocabulary) -> dict[str, list[dict]]:
    """Each facet's values in display order; a selected value is listed even when its count is 0."""
    providers_by_id = (
        {pk: (slug, name) for slug, (pk, name) in vocabulary.providers.items()} if counts["provider"] else {}
    )
    facets: dict[str, list[dict]] = {}
    facets["category"] = [
        {"value": v, "label": label, "count": counts["category"][v]}
        for v, label in Category.choices
        if counts["category"][v] or v in query.selected["category"]
    ]
    provider_rows = [
        {"value": providers_by_id[pk][0], "label": providers_by_id[pk][1], "count": n}
        for pk, n in counts["provider"].items()
        if pk in providers_by_id
    ]
    facets["provider"] = sorted(provider_rows, key=lambda r: (-r["count"], r["label"]))
    facets["region"] = [
        {"value": v, "label": label, "count": counts["region"][v]}
        for v, label in Region.choices
        if counts["region"][v] or v in query.selected["region"]
    ]
    metro_rows = []
    for metro_id, n in counts["metro"].items():
        metro = vocabulary.metros_by_id.get(metro_id)
        if metro is not None:
            metro_rows.append({"value": metro.code, "label": f"{metro.code} · {metro.name}", "count": n})
    facets["metro"] = sorted(metro_rows, key=lambda r: (-r["count"], r["value"]))
    facets["accelerator"] = [
        {"value": v, "count": n} for v, n in sorted(counts["accelerator"].items(), key=lambda i: (-i[1], i[0]))
    ]
    facets["gpu_memory"] = [
        {"value": b.key, "label": b.label, "count": counts["gpu_memory"][b.key]}
        for b in GPU_MEMORY_BANDS
        if counts["gpu_memory"][b.key] or b.key in query.selected["gpu_memory"]
    ]
    facets["compliance"] = [
        {"value": v, "count": n} for v, n in sorted(counts["compliance"].items(), key=lambda i: (-i[1], i[0]))
    ]
    facets["price"] = [
        {"value": b.key, "label": b.label, "count": counts["price"][b.key]}
        for b in PRICE_BANDS
        if counts["price"][b.key] or b.key in query.selected["price"]
    ]
    # Selected values of the other facets that matched nothing stay visible, so they can be cleared.
    for name in ("provider", "metro", "accelerator", "compliance"):
        listed = {row["value"].lower() for row in facets[name]}
        for value in query.selected[name]:
            if value.lower() not in listed:
                row = {"value": value, "count": 0}
                if name == "provider":
                    row["label"] = vocabulary.providers[value][1]
                elif name == "metro":
                    row["label"] = f"{value} · {vocabulary.metros[value].name}"
                facets[name].append(row)
    return facets


# --- Entry points ------------------------------------------------------------------------------
def offering_search(org, query: CatalogQuery, vocabulary: Vocabulary, *, latencies: dict[int, float] | None = None):
    """The matching offerings in the requested order (provider joined)."""
    qs = _filtered(org, query, vocabulary).select_related("provider")
    return _ordered(qs, query, latencies)


@dataclass
class CatalogPage:
    query: CatalogQuery
    errors: dict[str, str]
    offerings: list
    facets: dict[str, list[dict]]
    total: int
    page: int
    num_pages: int
    my_metros: list[Metro]
    from_metro: Metro | None

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.num_pages


def my_metros(org, vocabulary: Vocabulary) -> list[Metro]:
    """The metros of the organization's active ports, in code order (latency is measured from these),
    as the catalog index holds them: one narrow query, no Metro instances made."""
    metros = vocabulary.metros_by_id
    ports = Port.objects.for_org(org).filter(state=PortState.ACTIVE).values_list("metro_id", flat=True)
    return sorted({metros[pk] for pk in ports if pk in metros}, key=lambda metro: metro.code)


# The fields of an offering that the catalog's result list shows (templates/marketplace/catalog.html).
PAGE_FIELDS = (
    "public_id", "organization", "provider__name", "category", "name", "summary", "status", "price_amount",
    "price_unit", "currency", "tags",
)  # fmt: skip


def catalog_page(org, data, *, page_size: int = PAGE_SIZE) -> CatalogPage:
    """Everything the catalog page shows, in a fixed number of queries whatever the catalog's size."""
    vocabulary = Vocabulary()
    query, errors = parse_query(data, vocabulary)
    mine = my_metros(org, vocabulary)
    from_metro = vocabulary.metros.get(query.from_metro) if query.from_metro else (mine[0] if mine else None)
    if from_metro is not None:
        query.from_metro = from_metro.code
    elif query.sort == "latency":
        errors["sort"] = "Latency needs a metro to measure from: order a port first, or choose a metro."
        query.sort = "relevance" if query.q else "name"
    latencies = latency_map(from_metro, vocabulary.metros.values()) if from_metro else None
    matches = _matches(org, query, vocabulary, ranked=query.sort == "relevance" and bool(query.q))
    facets, total = _counts(matches, query, vocabulary), int(np.count_nonzero(matches.matching))
    num_pages = max(1, math.ceil(total / page_size))
    if query.page > num_pages:
        pages = "is only 1 page" if num_pages == 1 else f"are only {num_pages} pages"
        errors.setdefault("page", f"There {pages}; showing the last.")
        query.page = num_pages
    ids = _page_ids(matches, query, latencies, (query.page - 1) * page_size, page_size) if total else []
    # Visibility is checked again on the rows read: one retired since the index was read is left out.
    rows = (
        Offering.objects.visible_to(org)
        .filter(pk__in=ids)
        .only(*PAGE_FIELDS)  # what the page shows: no description, attributes or search document
        .select_related("provider")
        if ids
        else []
    )
    by_id = {offering.pk: offering for offering in rows}
    offerings = [by_id[pk] for pk in ids if pk in by_id]
    # Where each is reachable, as plain values: the page shows metro codes and the nearest latency, and
    # an access point, its port and its metro as model instances cost more CPU than the rest of the page.
    reach: dict[int, list[tuple[int, str]]] = {pk: [] for pk in by_id}
    if by_id:
        points = AccessPoint.objects.filter(offering_id__in=by_id).order_by()
        for offering_id, metro_id, code in points.values_list("offering_id", "port__metro_id", "port__metro__code"):
            reach[offering_id].append((metro_id, code))
    for offering in offerings:
        offering.metro_codes = sorted({code for _, code in reach[offering.pk]})
        ms = [latencies[metro_id] for metro_id, _ in reach[offering.pk]] if latencies else []
        offering.nearest_ms = min(ms) if ms else None
    return CatalogPage(query, errors, offerings, facets, total, query.page, num_pages, mine, from_metro)


# --- Search documents --------------------------------------------------------------------------
def search_document():
    """The weighted tsvector expression of an offering (PostgreSQL)."""
    provider_name = Subquery(ProviderProfile.objects.filter(pk=OuterRef("provider_id")).values("name")[:1])
    return (
        SearchVector("name", weight="A", config=SEARCH_CONFIG)
        + SearchVector(
            Coalesce(provider_name, Value("")),
            "accelerator",
            Cast("tags", TextField()),
            weight="B",
            config=SEARCH_CONFIG,
        )
        + SearchVector("summary", weight="C", config=SEARCH_CONFIG)
        + SearchVector("description", weight="D", config=SEARCH_CONFIG)
    )


def refresh_search_documents(offerings: QuerySet) -> int:
    """Recompute the stored search vector of ``offerings`` (one UPDATE); a no-op off PostgreSQL."""
    if not _is_postgres():
        return 0
    return offerings.update(search_vector=search_document())


__all__ = [
    "FACETS",
    "GPU_MEMORY_BANDS",
    "PRICE_BANDS",
    "SORTS",
    "CatalogPage",
    "CatalogQuery",
    "CatalogQueryError",
    "Vocabulary",
    "catalog_page",
    "facet_counts",
    "latency_map",
    "my_metros",
    "offering_search",
    "parse_query",
    "refresh_search_documents",
    "strict_query",
]
