"""The demo marketplace seeded by ``seed_demo`` from ``marketplace/data/``."""

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings

import marketplace
from fabric.choices import PortState, Region
from fabric.models import Port
from hub.choices import OrganizationKind, Role
from hub.management.commands.seed_demo import DEMO_PASSWORD
from hub.models import AuditEvent, Membership
from marketplace.attributes import validate_attributes
from marketplace.choices import ApprovalMode, Category, OfferingStatus, PriceUnit
from marketplace.demo import PRICE_UNVERIFIED, gpu_specs
from marketplace.models import AccessPoint, Offering, ProviderProfile

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # as the root conftest sets per test
DATA = Path(marketplace.__file__).resolve().parent / "data"


def _counts() -> dict:
    return {
        "providers": ProviderProfile.objects.count(),
        "offerings": Offering.objects.count(),
        "access_points": AccessPoint.objects.count(),
        "ports": Port.objects.count(),
        "published": Offering.objects.published().count(),
        "audit_events": AuditEvent.objects.count(),
    }


@pytest.fixture(scope="module")
def _seeded_once(django_db_setup, django_db_blocker):
    """Seed once for the module (seeding takes seconds) inside a transaction rolled back at the end;
    each test's own transaction nests in it as a savepoint."""
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=FAST_HASHERS):
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            out = StringIO()
            call_command("seed_demo", stdout=out)
            yield out.getvalue()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture
def seeded(_seeded_once, db):
    return _seeded_once


def test_seeding_twice_creates_nothing_new(seeded):
    first = _counts()
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert _counts() == first
    assert "0 offerings and 0 access points created" in out.getvalue()
    assert "admin@<provider>.example" in seeded
    # 4 GPU clouds + 13 model vendors (Amazon and Google list under AWS and GCP) + demo-provider
    assert first["providers"] == 18
    assert first["offerings"] == first["published"] > 400


def test_every_provider_has_an_admin_with_the_demo_password(seeded):
    for profile in ProviderProfile.objects.select_related("organization"):
        assert profile.organization.kind == OrganizationKind.PROVIDER
        membership = Membership.objects.select_related("user").get(
            organization=profile.organization, user__email=f"admin@{profile.organization.slug}.example"
        )
        assert membership.role == Role.ADMIN
        assert membership.user.check_password(DEMO_PASSWORD)


def test_h100_offerings_are_published_and_reachable_in_emea(seeded):
    h100 = Offering.objects.filter(category=Category.GPU_CLOUD, accelerator="H100")
    assert h100.count() >= 10
    for offering in h100:
        assert offering.status == OfferingStatus.PUBLISHED
        assert offering.access_points.exists()
    emea = AccessPoint.objects.filter(offering__in=h100, port__metro__region=Region.EMEA)
    assert {ap.offering.provider.slug for ap in emea} >= {"lambda", "runpod", "gcp"}
    assert all(
        ap.port.state == PortState.ACTIVE and ap.port.organization_id == ap.offering.organization_id for ap in emea
    )


def test_gcp_caveat_rows_are_left_out_of_the_median_and_tagged(seeded):
    offering = Offering.objects.get(provider__slug="gcp", slug="a3-highgpu-8g")
    assert PRICE_UNVERIFIED in offering.tags
    assert "us-central1" in offering.description
    assert "left out of the median" in offering.description
    # median of us-east4, europe-west1/3/4/9 and us-east5; the ~$43-44 regions are left out
    assert offering.price_amount == Decimal("100.4057")
    assert PRICE_UNVERIFIED not in Offering.objects.get(provider__slug="gcp", slug="tpu-v6e-8").tags
    flagged = {o.provider.slug for o in Offering.objects.select_related("provider") if PRICE_UNVERIFIED in o.tags}
    assert flagged == {"gcp"}


def test_gcp_caveat_rule_flags_only_a_region_far_below_the_others():
    row = {
        "provider": "GCP",
        "instance_type": "a3-test",
        "accelerator": "H100",
        "accelerator_count": "8",
        "gpu_memory_gb": "80",
        "vcpus": "208",
        "memory_gb": "1872",
        "spot_price_per_hour_usd": "",
        "metro_code": "FR",
    }
    prices = {"cheap": "43.00", "a": "88.00", "b": "96.00", "c": "100.00"}
    (spec,) = gpu_specs([{**row, "region": region, "price_per_hour_usd": p} for region, p in prices.items()])
    assert spec.price == Decimal("96.00")
    assert PRICE_UNVERIFIED in spec.tags
    (plain,) = gpu_specs(
        [{**row, "provider": "Lambda", "region": r, "price_per_hour_usd": p} for r, p in prices.items()]
    )
    assert PRICE_UNVERIFIED not in plain.tags
    assert plain.price == Decimal("92.00")


def test_every_offering_has_valid_attributes_and_a_decimal_price(seeded):
    offerings = list(Offering.objects.all())
    assert {o.category for o in offerings} == set(Category.values)
    for offering in offerings:
        assert validate_attributes(offering.category, offering.attributes) == offering.attributes, offering.slug
        assert isinstance(offering.price_amount, Decimal)
        assert offering.price_amount >= 0
    models = [o for o in offerings if o.category == Category.MODEL_VENDOR]
    assert len(models) == 331
    assert {o.price_unit for o in models} == {PriceUnit.MTOK_INPUT}
    embeddings = [o for o in models if o.attributes["modality"] == "embedding"]
    assert embeddings
    assert all("output_price_per_mtok" not in o.attributes for o in embeddings)
    hand_written = [o for o in offerings if o.provider.slug == "demo-provider"]
    assert len(hand_written) == 8


def test_both_approval_modes_are_in_the_demo(seeded):
    modes = set(AccessPoint.objects.values_list("approval_mode", flat=True))
    assert modes == {ApprovalMode.MANUAL, ApprovalMode.AUTOMATIC}


def test_the_provenance_readme_sits_next_to_the_data():
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert (DATA / "gpu_offerings.csv").is_file()
    assert (DATA / "model_offerings.csv").is_file()
    for needle in ("skypilot-org/skypilot-catalog", "BerriAI/litellm", "MIT", "list prices", "demo assumption"):
        assert needle in readme
    assert "006059e0f18acb1341e22a27751e9f80df6ba92f" in readme  # the GCP catalog commit
