"""The benchmark catalog generator: realistic, valid, repeatable."""

from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from fabric.services import metros_load
from marketplace import search
from marketplace.attributes import validate_attributes
from marketplace.models import AccessPoint, Offering

pytestmark = pytest.mark.django_db


def _generate(**options):
    call_command("generate_catalog", stdout=open("/dev/null", "w"), **options)  # noqa: SIM115


def _snapshot():
    return list(Offering.objects.order_by("slug").values_list("slug", "price_amount", "status", "regions"))


def test_generates_valid_listings_at_real_metros_with_realistic_shares(owner):
    metros_load()
    _generate(offerings=600, seed=7)
    offerings = list(Offering.objects.all())
    assert len(offerings) == 600
    categories = Counter(o.category for o in offerings)
    assert set(categories) == {"GPU_CLOUD", "MODEL_VENDOR", "DATA_PLATFORM", "NETWORK_SERVICE", "SECURITY_SERVICE"}
    assert categories.most_common(1)[0][0] == "GPU_CLOUD"
    assert 0.85 < sum(o.status == "PUBLISHED" for o in offerings) / 600 < 0.97
    for offering in offerings:
        assert validate_attributes(offering.category, offering.attributes) == offering.attributes
        assert offering.price_amount >= 0
    gpu = [o for o in offerings if o.category == "GPU_CLOUD"]
    assert {"H100", "A100"} <= {o.accelerator for o in gpu}
    assert all(o.gpu_count and o.gpu_memory_gb for o in gpu)
    access_points = AccessPoint.objects.select_related("port__metro", "offering")
    assert all(ap.port.organization_id == ap.offering.organization_id for ap in access_points)
    assert all(1 <= o.access_points.count() <= 4 for o in offerings[:50])
    # The catalog search finds them, with facets.
    page = search.catalog_page(owner.organization, {"q": "H100"})
    assert page.total > 0
    assert page.facets["accelerator"][0]["value"] == "H100"


def test_the_same_seed_gives_the_same_catalog_and_a_second_run_needs_replace():
    metros_load()
    _generate(offerings=200, seed=11)
    first = _snapshot()
    with pytest.raises(CommandError, match="use --replace or another --seed"):
        _generate(offerings=200, seed=11)
    _generate(offerings=200, seed=11, replace=True)
    assert _snapshot() == first
    _generate(offerings=200, seed=12)
    assert Offering.objects.count() == 400


def test_bad_counts_are_refused():
    with pytest.raises(CommandError, match="between 1 and"):
        _generate(offerings=0)
