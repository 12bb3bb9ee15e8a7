"""Fabric fixtures: a fast, deterministic simulated driver, the real metro list, and the three
parties of most stories (a requester, a cloud provider and an unrelated enterprise) with ports."""

from types import SimpleNamespace

import pytest

from fabric.choices import PortSpeed
from fabric.drivers.simulated import reset_scripted_failures
from fabric.models import Metro
from fabric.services import metros_load
from hub.choices import Role
from tests.fabric.factories import PortFactory


@pytest.fixture(autouse=True)
def _fast_simulated_driver(settings):
    """No step latency and no random failures: the demo's defaults (1 s, 5 %) would make tests slow
    and flaky. Tests script the failures they want with ``fail_steps``."""
    settings.FABRIC_SIMULATED = {"step_delay_seconds": 0, "failure_rate": 0, "seed": 0, "fail_steps": {}}
    reset_scripted_failures()
    yield
    reset_scripted_failures()


@pytest.fixture
def fail_steps(settings):
    """``fail_steps({"configure_z_side": "permanent"})`` scripts simulated driver failures."""

    def script(steps: dict[str, str]) -> None:
        settings.FABRIC_SIMULATED = {**settings.FABRIC_SIMULATED, "fail_steps": dict(steps)}

    return script


@pytest.fixture
def metros():
    """The project's metro list, by code (FR and AM are both EMEA; DC is AMER)."""
    metros_load()
    return {metro.code: metro for metro in Metro.objects.all()}


@pytest.fixture
def acme(owner, metros):
    """The requester: an enterprise with 1 Gbps ports in Frankfurt and Amsterdam and 10 Gbps in Frankfurt."""
    org = owner.organization
    return SimpleNamespace(
        member=owner,
        org=org,
        fra=PortFactory(organization=org, metro=metros["FR"], name="acme-fra"),
        ams=PortFactory(organization=org, metro=metros["AM"], name="acme-ams"),
        fra10=PortFactory(organization=org, metro=metros["FR"], name="acme-fra-10g", speed_mbps=PortSpeed.G10),
    )


@pytest.fixture
def cloud(provider_org, member_factory, metros):
    """A provider with 10 Gbps ports in Frankfurt and Washington DC that need approval."""
    return SimpleNamespace(
        member=member_factory(Role.OWNER, organization=provider_org),
        org=provider_org,
        fra=PortFactory(organization=provider_org, metro=metros["FR"], name="cloud-fra", speed_mbps=PortSpeed.G10),
        dc=PortFactory(organization=provider_org, metro=metros["DC"], name="cloud-dc", speed_mbps=PortSpeed.G10),
    )


@pytest.fixture
def globex(other_org, member_factory, metros):
    """An unrelated enterprise with a port of its own in Frankfurt."""
    return SimpleNamespace(
        member=member_factory(Role.OWNER, organization=other_org),
        org=other_org,
        fra=PortFactory(organization=other_org, metro=metros["FR"], name="globex-fra"),
    )
