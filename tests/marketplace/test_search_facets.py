"""Facet counts from the in-process catalog index (``marketplace.catalog_index``): checked against a plain
Python reference over a random catalog, and current at once after every kind of write."""

import random
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from fabric.models import Metro
from marketplace import catalog_index, search, services
from marketplace.choices import Category, OfferingStatus, PriceUnit
from marketplace.models import AccessPoint, CatalogVersion, Offering
from tests.fabric.factories import PortFactory
from tests.marketplace.conftest import GPU_ATTRIBUTES
from tests.marketplace.test_search import listing

pytestmark = pytest.mark.django_db

ACCELERATORS = ["H100", "A100", "L4", "h100", ""]
COMPLIANCE = ["SOC 2", "ISO 27001", "GDPR", "HIPAA"]
GPU_MEMORY = [None, 16, 24, 40, 47.5, 48, 80, 127.9, 128, 192]
PRICES = [("0.4", PriceUnit.HOUR), ("1", PriceUnit.HOUR), ("4.99", PriceUnit.HOUR), ("23.92", PriceUnit.HOUR)]
PRICES += [("60", PriceUnit.HOUR), ("0.88", PriceUnit.MTOK_INPUT), ("2", PriceUnit.MTOK_INPUT)]
PRICES += [("999", PriceUnit.MONTH), ("20000", PriceUnit.MONTH), ("0.03", PriceUnit.GB_MONTH)]
STATUSES = [OfferingStatus.PUBLISHED] * 6 + [OfferingStatus.DRAFT, OfferingStatus.RETIRED]


# --- A plain reference ---------------------------------------------------------------------------
def _band(bands, value, unit=None):
    for band in bands:
        if band.unit and band.unit != unit:
            continue
        if value is not None and (band.low is None or value >= band.low) and (band.high is None or value < band.high):
            return band.key
    return None


def _values(offering, name) -> set:
    """The offering's values of a facet, read from the rows themselves (not the denormalised columns)."""
    metros = {ap.port.metro for ap in offering.access_points.all()}
    if name == "category":
        return {offering.category}
    if name == "provider":
        return {offering.provider.slug}
    if name == "region":
        return {metro.region for metro in metros}
    if name == "metro":
        return {metro.code for metro in metros}
    if name == "accelerator":
        return {offering.accelerator} if offering.accelerator else set()
    if name == "gpu_memory":
        return {_band(search.GPU_MEMORY_BANDS, offering.gpu_memory_gb)} - {None}
    if name == "compliance":
        return set(offering.compliance)
    return {_band(search.PRICE_BANDS, offering.price_amount, offering.price_unit)} - {None}


def _passes(offering, name, selected) -> bool:
    if name == "accelerator":
        return offering.accelerator.upper() in {v.upper() for v in selected}
    return bool(_values(offering, name) & set(selected))


def reference(org, params) -> tuple[dict[str, Counter], int]:
    """Counts per facet (every filter but its own) and the total, by looking at every offering."""
    offerings = list(Offering.objects.select_related("provider").prefetch_related("access_points__port__metro"))
    text = None
    if params.get("q"):
        text = set(Offering.objects.filter(search._text_filter(params["q"])).values_list("pk", flat=True))
    selected = {name: params.get(name, []) for name in search.FACETS}

    def base(o):
        visible = o.status == OfferingStatus.PUBLISHED or (org is not None and o.organization_id == org.pk)
        return (
            visible
            and (text is None or o.pk in text)
            and (not params.get("status") or o.status == params["status"])
            and (not params.get("min_gpu_count") or (o.gpu_count or 0) >= params["min_gpu_count"])
        )

    def passes_all_but(o, skip):
        return all(not values or _passes(o, name, values) for name, values in selected.items() if name != skip)

    counts = {name: Counter() for name in search.FACETS}
    total = 0
    for offering in offerings:
        if not base(offering):
            continue
        total += passes_all_but(offering, None)
        for name in search.FACETS:
            if passes_all_but(offering, name):
                counts[name].update(_values(offering, name))
    return counts, total


def _counted(facets) -> dict[str, Counter]:
    return {
        name: Counter({row["value"]: row["count"] for row in rows if row["count"]}) for name, rows in facets.items()
    }


def _search_counts(org, params):
    query, vocabulary, _ = search.strict_query(params)
    facets, total = search.facet_counts(org, query, vocabulary)
    return _counted(facets), total


# --- A random catalog ------------------------------------------------------------------------------
@pytest.fixture
def random_catalog(gpu_cloud, rival, metros):
    rng = random.Random(20261127)
    providers = [gpu_cloud, rival]
    for provider in providers:
        provider.ports = [
            provider.fra,
            provider.dc,
            PortFactory(organization=provider.org, metro=metros["SG"], name=f"{provider.org.slug}-sg"),
            PortFactory(organization=provider.org, metro=metros["LD"], name=f"{provider.org.slug}-ld"),
        ]
    for i in range(60):
        provider = rng.choice(providers)
        price, unit = rng.choice(PRICES)
        accelerator = rng.choice(ACCELERATORS)
        offering = Offering.objects.create(
            organization=provider.org,
            provider=provider.profile,
            category=rng.choice(Category.values),
            name=f"{rng.choice(['node', 'instance', 'service'])} {accelerator} {i}",
            slug=f"offering-{i}",
            status=rng.choice(STATUSES),
            price_amount=Decimal(price),
            price_unit=unit,
            compliance=rng.sample(COMPLIANCE, rng.randint(0, 3)),
            accelerator=accelerator,
            gpu_count=rng.choice([None, 1, 2, 8]),
            gpu_memory_gb=rng.choice(GPU_MEMORY),
        )
        for port in rng.sample(provider.ports, rng.randint(0, 3)):  # some reachable nowhere
            AccessPoint.objects.create(offering=offering, port=port, allowed_bandwidths_mbps=[1000])
    return rng


def _random_params(rng) -> dict:
    params: dict = {}
    universe = {
        "category": Category.values,
        "provider": ["lambda", "runpod"],
        "region": ["AMER", "EMEA", "APAC"],
        "metro": ["FR", "DC", "SG", "LD", "AM"],
        "accelerator": ["H100", "a100", "L4", "TPU"],
        "gpu_memory": [b.key for b in search.GPU_MEMORY_BANDS],
        "compliance": COMPLIANCE,
        "price": [b.key for b in search.PRICE_BANDS if b.unit in (PriceUnit.HOUR, PriceUnit.MTOK_INPUT)],
    }
    for name in rng.sample(list(universe), rng.randint(0, 4)):
        params[name] = rng.sample(universe[name], rng.randint(1, 2))
    if rng.random() < 0.3:
        params["q"] = rng.choice(["node", "H100", "service -node", "8"])
    if rng.random() < 0.2:
        params["status"] = rng.choice(OfferingStatus.values)
    if rng.random() < 0.2:
        params["min_gpu_count"] = rng.choice([1, 2, 8])
    return params


def test_counts_match_a_plain_reference_on_a_random_catalog(random_catalog, gpu_cloud, customer):
    rng = random_catalog
    for i in range(60):
        params = _random_params(rng)
        org = [customer.org, gpu_cloud.org, None][i % 3]  # a buyer, a provider with drafts, anonymous
        expected, expected_total = reference(org, params)
        counts, total = _search_counts(org, params)
        assert total == expected_total, params
        assert counts == expected, params
        query, vocabulary, _ = search.strict_query(params)
        assert search.offering_search(org, query, vocabulary).count() == total, params


def test_a_rebuilt_index_answers_the_same(random_catalog, customer):
    params = {"region": ["EMEA"], "accelerator": ["H100"]}
    first = _search_counts(customer.org, params)
    catalog_index.forget()
    assert _search_counts(customer.org, params) == first


# --- Current at once after every write --------------------------------------------------------------
def _facets(client, **params):
    response = client.get("/api/v1/offerings/facets/", params)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def buyer(customer, token_client):
    return token_client(customer.member)


def test_a_provider_publishes_and_buyers_find_it_in_search_at_once(gpu_cloud, buyer, customer):
    assert _facets(buyer, q="Blackwell")["total"] == 0
    draft = services.offering_create(
        membership=gpu_cloud.member,
        category=Category.GPU_CLOUD,
        name="8x B200 Blackwell",
        price_amount="40",
        price_unit=PriceUnit.HOUR,
        attributes={"accelerator": "B200", "gpu_count": 8, "gpu_memory_gb": 192},
    )
    services.access_point_create(
        membership=gpu_cloud.member, offering=draft, port=gpu_cloud.fra, allowed_bandwidths_mbps=[1000]
    )
    # A draft: its provider sees it, nobody else does.
    assert _facets(buyer, q="Blackwell")["total"] == 0
    mine = search.catalog_page(gpu_cloud.org, {"q": "Blackwell"})
    assert mine.total == 1
    assert {r["value"]: r["count"] for r in mine.facets["accelerator"]} == {"B200": 1}
    services.offering_publish(membership=gpu_cloud.member, offering=draft)
    facets = _facets(buyer, q="Blackwell")
    assert facets["total"] == 1
    assert {r["value"]: r["count"] for r in facets["accelerator"]} == {"B200": 1}
    page = search.catalog_page(customer.org, {"q": "blackwell"})
    assert [o.name for o in page.offerings] == ["8x B200 Blackwell"]
    assert page.total == 1


def test_retire_edit_and_access_points_change_the_counts_at_once(gpu_cloud, buyer, metros):
    offering = listing(
        gpu_cloud,
        [gpu_cloud.fra],
        name="8x H100 SXM",
        price="23.92",
        attributes={"accelerator": "H100", "gpu_count": 8, "gpu_memory_gb": 80},
    )
    facets = _facets(buyer)
    assert facets["total"] == 1
    assert {r["value"]: r["count"] for r in facets["metro"]} == {"FR": 1}
    assert {r["value"]: r["count"] for r in facets["price"]} == {"hour-20-50": 1}

    services.offering_update(
        membership=gpu_cloud.member,
        offering=offering,
        price_amount="4.50",
        attributes={"accelerator": "A100", "gpu_count": 8, "gpu_memory_gb": 40},
    )
    facets = _facets(buyer)
    assert {r["value"]: r["count"] for r in facets["price"]} == {"hour-1-5": 1}
    assert {r["value"]: r["count"] for r in facets["accelerator"]} == {"A100": 1}
    assert {r["value"]: r["count"] for r in facets["gpu_memory"]} == {"24-47": 1}

    singapore = PortFactory(organization=gpu_cloud.org, metro=metros["SG"], name="lambda-sg")
    access_point = services.access_point_create(
        membership=gpu_cloud.member, offering=offering, port=singapore, allowed_bandwidths_mbps=[1000]
    )
    facets = _facets(buyer, region="APAC")
    assert facets["total"] == 1
    assert {r["value"]: r["count"] for r in facets["metro"]} == {"FR": 1, "SG": 1}

    services.access_point_delete(membership=gpu_cloud.member, access_point=access_point)
    assert _facets(buyer, region="APAC")["total"] == 0
    assert {r["value"]: r["count"] for r in _facets(buyer)["metro"]} == {"FR": 1}

    services.offering_retire(membership=gpu_cloud.member, offering=offering)
    assert _facets(buyer)["total"] == 0
    assert _facets(buyer)["metro"] == []


def test_writes_that_bypass_the_services_are_seen_too(gpu_cloud, buyer, customer):
    """The version is kept by database triggers: bulk updates and raw SQL invalidate the index as well."""
    offering = listing(gpu_cloud, [gpu_cloud.fra], name="8x H100 SXM", price="23.92", attributes=GPU_ATTRIBUTES)
    assert {r["value"]: r["count"] for r in _facets(buyer)["category"]} == {"GPU_CLOUD": 1}
    Offering.objects.filter(pk=offering.pk).update(category=Category.MODEL_VENDOR)
    assert {r["value"]: r["count"] for r in _facets(buyer)["category"]} == {"MODEL_VENDOR": 1}
    with connection.cursor() as cursor:
        cursor.execute("UPDATE marketplace_offering SET status = 'DRAFT' WHERE id = %s", [offering.pk])
    assert _facets(buyer)["total"] == 0
    assert search.catalog_page(gpu_cloud.org, {}).total == 1  # its own draft, for the provider


def test_every_write_gives_the_version_a_value_never_seen_before(gpu_cloud):
    seen = [catalog_index.catalog_version()]
    offering = listing(gpu_cloud, [gpu_cloud.fra], name="GPU", price="1", attributes=GPU_ATTRIBUTES)
    seen.append(catalog_index.catalog_version())
    Offering.objects.filter(pk=offering.pk).update(summary="changed")
    seen.append(catalog_index.catalog_version())
    AccessPoint.objects.filter(offering=offering).delete()
    seen.append(catalog_index.catalog_version())
    services.provider_profile_upsert(membership=gpu_cloud.member, name="Lambda Labs")
    seen.append(catalog_index.catalog_version())
    Metro.objects.filter(code="FR").update(name="Frankfurt am Main")  # metros are read with the index
    seen.append(catalog_index.catalog_version())
    # A bulk insert that ignores conflicts (INSERT OR IGNORE on SQLite) still moves the version.
    AccessPoint.objects.bulk_create(
        [AccessPoint(offering=offering, port=gpu_cloud.dc, allowed_bandwidths_mbps=[1000])], ignore_conflicts=True
    )
    seen.append(catalog_index.catalog_version())
    assert None not in seen
    assert len(set(seen)) == len(seen)
    assert CatalogVersion.objects.get().value == seen[-1]


def test_the_index_is_reused_until_the_catalog_changes(gpu_cloud, customer):
    listing(gpu_cloud, [gpu_cloud.fra], name="GPU", price="1", attributes=GPU_ATTRIBUTES)
    first = catalog_index.current()
    assert catalog_index.current() is first  # no write: the same copy
    services.offering_update(membership=gpu_cloud.member, offering=Offering.objects.get(), summary="x")
    second = catalog_index.current()
    assert second is not first
    assert second.version == catalog_index.catalog_version()


@pytest.mark.parametrize("sort", list(search.SORTS))
def test_pages_come_in_the_order_the_sql_search_gives(random_catalog, gpu_cloud, customer, sort):
    """The catalog page orders in the index; ``offering_search`` (the API's list) orders in SQL: the same."""
    rng = random_catalog
    for i in range(12):
        params = {**_random_params(rng), "sort": sort, "from_metro": rng.choice(["FR", "SG", "DC", "LD"])}
        org = [customer.org, gpu_cloud.org, None][i % 3]
        query, vocabulary, latencies = search.strict_query(params)
        expected = list(
            search.offering_search(org, query, vocabulary, latencies=latencies).values_list("pk", flat=True)
        )
        for page in (1, 2):
            shown = search.catalog_page(org, {**params, "page": page}, page_size=5)
            if shown.page == page:
                assert [o.pk for o in shown.offerings] == expected[(page - 1) * 5 : page * 5], params


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the narrow search table is PostgreSQL's")
def test_the_narrow_search_table_follows_every_write(gpu_cloud, buyer):
    """Text search reads its documents from a narrow copy (migration 0005) that triggers keep equal."""

    def documents(sql):
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()

    def assert_in_step():
        assert documents(
            "SELECT offering_id, search_vector::text FROM marketplace_offering_search ORDER BY 1"
        ) == documents(
            "SELECT id, search_vector::text FROM marketplace_offering WHERE search_vector IS NOT NULL ORDER BY 1"
        )

    offering = listing(gpu_cloud, [gpu_cloud.fra], name="8x H100 SXM", price="23.92", attributes=GPU_ATTRIBUTES)
    other = listing(gpu_cloud, [gpu_cloud.fra], name="1x A100", price="2", attributes=GPU_ATTRIBUTES)
    assert_in_step()
    assert [o.pk for o in search.catalog_page(None, {"q": "SXM"}).offerings] == [offering.pk]
    services.offering_update(membership=gpu_cloud.member, offering=offering, name="8x H200 NVL")
    assert_in_step()
    assert search.catalog_page(None, {"q": "SXM"}).total == 0
    assert [o.pk for o in search.catalog_page(None, {"q": "NVL"}).offerings] == [offering.pk]
    with connection.cursor() as cursor:  # raw SQL, a NULL document, a bulk update
        cursor.execute("UPDATE marketplace_offering SET search_vector = NULL WHERE id = %s", [offering.pk])
    assert_in_step()
    assert search.catalog_page(None, {"q": "NVL"}).total == 0
    search.refresh_search_documents(Offering.objects.all())
    assert_in_step()
    assert search.catalog_page(None, {"q": "NVL"}).total == 1
    AccessPoint.objects.filter(offering=other).delete()
    Offering.objects.filter(pk=other.pk).delete()
    assert_in_step()
    assert search.catalog_page(None, {"q": "A100"}).total == 0
