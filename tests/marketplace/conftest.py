"""Marketplace fixtures: a GPU cloud provider with a profile and 10 Gbps ports, a second provider,
and a customer with ports of its own (the root conftest keeps the simulated driver fast and deterministic)."""

from types import SimpleNamespace

import pytest

from fabric.choices import PortSpeed, PortState
from fabric.models import Metro
from fabric.services import metros_load
from hub.choices import OrganizationKind, Role
from marketplace import services
from marketplace.choices import ApprovalMode, Category, PriceUnit
from tests.fabric.factories import PortFactory
from tests.factories import OrganizationFactory

GPU_ATTRIBUTES = {"accelerator": "H100", "gpu_count": 8, "gpu_memory_gb": 80, "vcpus": 208, "ram_gb": 1800}


@pytest.fixture
def metros():
    metros_load()
    return {metro.code: metro for metro in Metro.objects.all()}


def _provider(member_factory, metros, slug):
    org = OrganizationFactory(name=slug.title(), slug=slug, kind=OrganizationKind.PROVIDER)
    member = member_factory(Role.OWNER, organization=org)
    services.provider_profile_upsert(membership=member, name=slug.title(), certifications=["SOC 2"], hq_country="US")
    return SimpleNamespace(
        org=org,
        member=member,
        profile=org.provider_profile,
        fra=PortFactory(organization=org, metro=metros["FR"], name=f"{slug}-fra", speed_mbps=PortSpeed.G10),
        dc=PortFactory(organization=org, metro=metros["DC"], name=f"{slug}-dc", speed_mbps=PortSpeed.G10),
        down=PortFactory(organization=org, metro=metros["AM"], name=f"{slug}-ams", state=PortState.PROVISIONING),
    )


@pytest.fixture
def gpu_cloud(member_factory, metros):
    return _provider(member_factory, metros, "lambda")


@pytest.fixture
def rival(member_factory, metros):
    return _provider(member_factory, metros, "runpod")


@pytest.fixture
def customer(owner, metros):
    org = owner.organization
    return SimpleNamespace(
        member=owner,
        org=org,
        fra=PortFactory(organization=org, metro=metros["FR"], name="acme-fra", speed_mbps=PortSpeed.G10),
    )


@pytest.fixture
def make_offering():
    """``make_offering(provider, published=True, approval_mode=...)`` -> (offering, access point)."""

    def make(provider, *, published=True, approval_mode=ApprovalMode.MANUAL, name="8x H100", **overrides):
        offering = services.offering_create(
            membership=provider.member,
            category=overrides.pop("category", Category.GPU_CLOUD),
            name=name,
            price_amount=overrides.pop("price_amount", "23.92"),
            price_unit=overrides.pop("price_unit", PriceUnit.HOUR),
            attributes=overrides.pop("attributes", GPU_ATTRIBUTES),
            **overrides,
        )
        access_point = services.access_point_create(
            membership=provider.member,
            offering=offering,
            port=provider.fra,
            allowed_bandwidths_mbps=[1000, 10000],
            approval_mode=approval_mode,
        )
        if published:
            offering = services.offering_publish(membership=provider.member, offering=offering)
        return offering, access_point

    return make
