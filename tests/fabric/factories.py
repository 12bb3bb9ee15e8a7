"""Fabric factories: metros and ports that are already in service.

``PortFactory`` writes an ACTIVE port straight through the ORM (no provisioning workflow), with its
capacity equal to its speed, so connection tests start from a known, idle port.
"""

import factory

from fabric.choices import PortSpeed, PortState, Region
from fabric.models import Metro, Port
from tests.factories import OrganizationFactory


class MetroFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Metro
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"X{n:03d}")
    name = factory.LazyAttribute(lambda metro: f"Metro {metro.code}")
    country = "DE"
    region = Region.EMEA
    sovereignty_zone = "EU"
    latitude = 50.11
    longitude = 8.68


class PortFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Port

    organization = factory.SubFactory(OrganizationFactory)
    metro = factory.SubFactory(MetroFactory)
    name = factory.Sequence(lambda n: f"port-{n}")
    speed_mbps = PortSpeed.G1
    capacity_mbps = factory.LazyAttribute(lambda port: port.speed_mbps)
    committed_mbps = 0
    state = PortState.ACTIVE
    auto_approve = False
