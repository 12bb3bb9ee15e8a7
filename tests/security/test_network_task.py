"""Network detection end to end: telemetry stored -> samples_ingested -> task -> alerts with evidence."""

from datetime import timedelta

import pytest
from django.utils import timezone

from fabric.telemetry import store_samples
from fabric.telemetry_simulation import Anomaly, anomaly_rows, simulated_rows
from hub.choices import Role
from security import services
from security.choices import AlertCategory, AlertSource, Severity
from security.models import Alert
from security.network import country_zone, metro_zones
from security.tasks import network_analyse, network_sweep
from tests.security.threatdash_helpers import make_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst(member_factory):
    return member_factory(Role.SECURITY_ANALYST)


def _ingest(connection, rows, capture):
    with capture(execute=True):
        store_samples(rows, organization_id=connection.organization_id)


def _normal(connection, now, hours=8):
    return simulated_rows(connection, start=now - timedelta(hours=hours), end=now, interval_seconds=60)


def test_an_egress_spike_in_new_telemetry_raises_one_exfiltration_alert_with_evidence(
    analyst, django_capture_on_commit_callbacks
):
    connection = make_connection(analyst.organization)
    now = timezone.now().replace(second=0, microsecond=0)
    _ingest(connection, _normal(connection, now), django_capture_on_commit_callbacks)
    assert not Alert.objects.filter(category=AlertCategory.EXFILTRATION).exists()  # an ordinary day

    spike = anomaly_rows(Anomaly(connection, minutes=10, egress_factor=8), end=now, interval_seconds=60)
    _ingest(connection, spike, django_capture_on_commit_callbacks)

    alert = Alert.objects.get(category=AlertCategory.EXFILTRATION)
    assert alert.organization == analyst.organization
    assert alert.connection == connection
    assert alert.source == AlertSource.NETWORK
    assert alert.severity in (Severity.HIGH, Severity.CRITICAL)
    assert "Egress spike on fr-to-ny" in alert.title
    evidence = alert.evidence
    assert evidence["kind"] == "spike"
    assert evidence["observed"] > 4 * evidence["baseline"]
    assert evidence["deviation"] >= evidence["threshold"]
    assert evidence["window_start"] < evidence["window_end"]

    # Analysing the same samples again (the beat sweep) does not count the same spike twice.
    network_analyse(connection.pk)
    assert network_sweep() == 1
    alert.refresh_from_db()
    assert alert.count == 1


def test_traffic_to_a_country_outside_the_policy_raises_a_sovereignty_alert(
    analyst, django_capture_on_commit_callbacks
):
    connection = make_connection(analyst.organization, z_metro="AM")
    services.policy_update(membership=analyst, allowed_zones=["EU"])
    now = timezone.now().replace(second=0, microsecond=0)
    rows = _normal(connection, now, hours=2) + anomaly_rows(
        Anomaly(connection, minutes=15, country="US", country_share=0.02), end=now, interval_seconds=60
    )
    _ingest(connection, rows, django_capture_on_commit_callbacks)

    [alert] = Alert.objects.filter(category=AlertCategory.SOVEREIGNTY)
    assert alert.evidence["country"] == "US"
    assert alert.evidence["zone"] == "US"
    assert alert.evidence["allowed_zones"] == ["EU"]
    assert alert.evidence["bytes_out"] > 0
    assert alert.severity == Severity.HIGH
    # Traffic to the Netherlands (the Z side) is inside the EU zone: no alert for it.
    assert not Alert.objects.filter(dedup_key__endswith=":NL").exists()
    network_analyse(connection.pk)
    alert.refresh_from_db()
    assert alert.count == 1  # nothing new was sent to the US since


def test_without_zones_in_the_policy_no_sovereignty_alert(analyst, django_capture_on_commit_callbacks):
    connection = make_connection(analyst.organization)
    now = timezone.now().replace(second=0, microsecond=0)
    rows = anomaly_rows(Anomaly(connection, minutes=15, country="CN"), end=now, interval_seconds=60)
    _ingest(connection, rows, django_capture_on_commit_callbacks)
    assert not Alert.objects.filter(category=AlertCategory.SOVEREIGNTY).exists()


def test_countries_map_to_the_fabric_zones(db):
    from fabric.services import metros_load

    metros_load()
    zones = metro_zones()
    assert country_zone("de", zones) == "EU"
    assert country_zone("BE", zones) == "EU"  # no metro, still in the EU
    assert country_zone("GB", zones) == "UK"
    assert country_zone("US", zones) == "US"
    assert country_zone("CH", zones) == "CH"
    assert country_zone("RU", zones) == "RU"
