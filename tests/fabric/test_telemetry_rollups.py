"""Rollups against the raw samples, incremental runs, late samples, retention and the Python interface."""

import random
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from fabric import tasks, telemetry
from fabric.models import Connection, TelemetryDirtyBucket, TelemetryRollup, TelemetrySample
from fabric.telemetry import rollups
from fabric.telemetry_simulation import seed_demo_telemetry
from tests.fabric.factories import PortFactory
from tests.fabric.test_telemetry_support import active_connection, aligned_hour_ago
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def link(acme, cloud):
    return active_connection(org=acme.org, a_port=acme.fra, z_port=cloud.fra, bandwidth_mbps=1000)


def store(connection, rows):
    """rows: (time, bytes_in, bytes_out[, country]) with 10-second intervals."""
    telemetry.store_samples(
        [
            (connection.pk, time, 10, bytes_in, bytes_out, bytes_in // 1000, bytes_out // 1000, 1, country)
            for time, bytes_in, bytes_out, *rest in rows
            for country in [rest[0] if rest else ""]
        ],
        organization_id=connection.organization_id,
    )


def test_rollups_match_the_raw_samples(link):
    start = aligned_hour_ago(3)
    rng = random.Random(7)
    rows = [
        (start + timedelta(seconds=10 * i), rng.randrange(10**6, 10**8), rng.randrange(10**5, 10**7))
        for i in range(1080)
    ]
    store(link, rows)

    tasks.telemetry_rollup()

    five = TelemetryRollup.objects.filter(connection=link, resolution_seconds=300).order_by("bucket")
    hourly = TelemetryRollup.objects.filter(connection=link, resolution_seconds=3600).order_by("bucket")
    assert five.count() == 36
    assert hourly.count() == 3
    for rollup in five:
        inside = [r for r in rows if rollup.bucket <= r[0] < rollup.bucket + timedelta(minutes=5)]
        assert rollup.samples == len(inside) == 30
        assert rollup.bytes_in == sum(r[1] for r in inside)
        assert rollup.bytes_out == sum(r[2] for r in inside)
        assert rollup.packets_in == sum(r[1] // 1000 for r in inside)
        assert rollup.drops == 30
        assert rollup.max_bps_in == pytest.approx(max(r[1] for r in inside) * 8 / 10)
        assert rollup.max_bps_out == pytest.approx(max(r[2] for r in inside) * 8 / 10)
    for rollup in hourly:
        inside = [r for r in rows if rollup.bucket <= r[0] < rollup.bucket + timedelta(hours=1)]
        assert (rollup.samples, rollup.bytes_in, rollup.bytes_out) == (
            360,
            sum(r[1] for r in inside),
            sum(r[2] for r in inside),
        )
        assert rollup.max_bps_in == pytest.approx(max(r[1] for r in inside) * 8 / 10)
    assert not TelemetryDirtyBucket.objects.exists()


def test_rollup_is_incremental_and_late_samples_are_added(link):
    start = aligned_hour_ago(2)
    store(link, [(start + timedelta(minutes=m), 1000, 100) for m in range(60)])
    assert tasks.telemetry_rollup() == 12
    assert tasks.telemetry_rollup() == 0  # nothing new: nothing recomputed
    before = {r.bucket: r.bytes_in for r in TelemetryRollup.objects.filter(resolution_seconds=300)}

    # A late sample for the first bucket and a new one an hour later: only those buckets are redone.
    store(link, [(start + timedelta(seconds=30), 5000, 0), (start + timedelta(minutes=61), 7, 0)])
    assert tasks.telemetry_rollup() == 2
    after = {r.bucket: r.bytes_in for r in TelemetryRollup.objects.filter(resolution_seconds=300)}
    assert after[start] == before[start] + 5000
    assert after[start + timedelta(minutes=60)] == 7
    assert {k: v for k, v in after.items() if k not in (start, start + timedelta(minutes=60))} == {
        k: v for k, v in before.items() if k != start
    }
    hours = dict(TelemetryRollup.objects.filter(resolution_seconds=3600).values_list("bucket", "bytes_in"))
    assert hours == {start: 60 * 1000 + 5000, start + timedelta(hours=1): 7}


def test_a_marker_renewed_during_a_rollup_survives_it(link, monkeypatch):
    start = aligned_hour_ago(2)
    store(link, [(start, 1000, 100)])
    real_upsert = rollups._upsert_rollups

    def upsert_while_ingesting(aggregates, resolution):
        if resolution == 300:  # an ingest lands in the same bucket while the rollup runs
            TelemetryDirtyBucket.objects.update(marked_at=timezone.now() + timedelta(seconds=1))
        return real_upsert(aggregates, resolution)

    monkeypatch.setattr(rollups, "_upsert_rollups", upsert_while_ingesting)
    telemetry.rollup_pending()
    assert TelemetryDirtyBucket.objects.count() == 1


def test_retention_deletes_old_raw_samples_and_keeps_rollups_longer(link, settings):
    settings.FABRIC_TELEMETRY_RETENTION_DAYS = 7
    settings.FABRIC_TELEMETRY_ROLLUP_5M_RETENTION_DAYS = 90
    settings.FABRIC_TELEMETRY_ROLLUP_1H_RETENTION_DAYS = 730
    now = timezone.now()
    old = now - timedelta(days=10)
    ancient = now - timedelta(days=100)
    TelemetrySample.objects.create(connection=link, time=old, bytes_in=1, bytes_out=1, packets_in=1, packets_out=1)
    TelemetrySample.objects.create(connection=link, time=now, bytes_in=2, bytes_out=2, packets_in=1, packets_out=1)
    common = {
        "bytes_in": 1,
        "bytes_out": 1,
        "packets_in": 1,
        "packets_out": 1,
        "drops": 0,
        "max_bps_in": 1,
        "max_bps_out": 1,
        "samples": 1,
    }
    TelemetryRollup.objects.create(
        connection=link, resolution_seconds=300, bucket=telemetry.floor_time(old, 300), **common
    )
    TelemetryRollup.objects.create(
        connection=link, resolution_seconds=300, bucket=telemetry.floor_time(ancient, 300), **common
    )
    TelemetryRollup.objects.create(
        connection=link, resolution_seconds=3600, bucket=telemetry.floor_time(ancient, 3600), **common
    )

    assert tasks.telemetry_retention() == {"raw": 1, "five_minutes": 1, "hourly": 0}
    assert list(TelemetrySample.objects.values_list("bytes_in", flat=True)) == [2]
    assert TelemetryRollup.objects.filter(resolution_seconds=300).get().bucket == telemetry.floor_time(old, 300)
    assert TelemetryRollup.objects.filter(resolution_seconds=3600).exists()


def test_utilisation_by_connection_averages_the_window(acme, cloud, link):
    other = active_connection(
        org=acme.org, a_port=acme.ams, z_port=cloud.fra, name="quiet", vlan=101, bandwidth_mbps=100
    )
    idle = active_connection(org=acme.org, a_port=acme.fra10, z_port=cloud.fra, name="idle", vlan=102)
    start = aligned_hour_ago(2)
    # 125 MB in and 12.5 MB out every 10 s for an hour: 100 Mbps in, 10 Mbps out.
    store(link, [(start + timedelta(seconds=10 * i), 125_000_000, 12_500_000) for i in range(360)])
    store(other, [(start + timedelta(seconds=10 * i), 1_250_000, 2_500_000) for i in range(360)])
    tasks.telemetry_rollup()

    result = telemetry.utilisation_by_connection(
        [link.pk, other.pk, idle.pk], since=start, until=start + timedelta(hours=1)
    )
    assert set(result) == {link.pk, other.pk}
    assert result[link.pk].bps_in == pytest.approx(100e6)
    assert result[link.pk].bps_out == pytest.approx(10e6)
    assert result[link.pk].percent == pytest.approx(10.0)
    assert result[other.pk].percent == pytest.approx(2.0)  # out (2 Mbps) dominates on a 100 Mbps link
    assert isinstance(result[link.pk], telemetry.Utilisation)
    # Over two hours the same traffic averages half as much.
    two_hours = telemetry.utilisation_by_connection([link.pk], since=start, until=start + timedelta(hours=2))
    assert two_hours[link.pk].bps_in == pytest.approx(50e6)
    # A week-long window reads the hourly rollups and gives the same total.
    week = telemetry.utilisation_by_connection(
        [link.pk], since=start - timedelta(days=6), until=start + timedelta(days=1)
    )
    assert week[link.pk].bps_in == pytest.approx(125_000_000 * 360 * 8 / (7 * 86400))
    assert telemetry.utilisation_by_connection([], since=start) == {}
    # A queryset of primary keys is a subquery with the same answer.
    window = {"since": start, "until": start + timedelta(hours=1)}
    subquery = Connection.objects.filter(name__in=["link", "quiet", "idle"]).values("pk")
    assert telemetry.utilisation_by_connection(subquery, **window) == result
    only_quiet = Connection.objects.filter(name="quiet").values("pk")
    assert telemetry.utilisation_by_connection(only_quiet, **window) == {other.pk: result[other.pk]}
    assert telemetry.utilisation_by_connection(Connection.objects.none().values("pk"), **window) == {}


def test_utilisation_for_a_thousand_connections_takes_one_query(link, django_assert_num_queries):
    start = aligned_hour_ago(2)
    store(link, [(start, 1000, 1000)])
    tasks.telemetry_rollup()
    with django_assert_num_queries(1):
        result = telemetry.utilisation_by_connection([link.pk, *range(10**6, 10**6 + 999)], since=start)
    assert list(result) == [link.pk]
    assert result[link.pk].percent is not None


def test_series_from_raw_and_from_rollups_agree(link):
    start = aligned_hour_ago(3)
    rows = [(start + timedelta(seconds=10 * i), 1000 + i, 10 * i) for i in range(720)]
    store(link, rows)
    tasks.telemetry_rollup()
    end = start + timedelta(hours=2)

    raw = telemetry.series(link, since=start, until=end, step_seconds=600 + 10)  # not a 5-minute multiple: raw
    five = telemetry.series(link, since=start, until=end, step_seconds=600)
    hourly = telemetry.series(link, since=start, until=end, step_seconds=3600)
    assert sum(p.bytes_in for p in raw) == sum(p.bytes_in for p in five) == sum(p.bytes_in for p in hourly)
    assert [p.time for p in hourly] == [start, start + timedelta(hours=1)]
    first_hour = [r for r in rows if r[0] < start + timedelta(hours=1)]
    assert hourly[0].bytes_out == sum(r[2] for r in first_hour)
    assert hourly[0].bps_in == pytest.approx(sum(r[1] for r in first_hour) * 8 / 3600)
    assert five[0].time == start
    assert five[0].packets_in == sum(r[1] // 1000 for r in rows[:60])
    assert all(isinstance(p, telemetry.Point) for p in five)


def test_countries_seen_sums_egress_by_destination(link):
    start = aligned_hour_ago(2)
    store(
        link,
        [(start, 0, 500, "DE"), (start, 0, 300, "US"), (start + timedelta(minutes=1), 0, 700, "US"), (start, 0, 9, "")],
    )
    store(link, [(start - timedelta(days=2), 0, 10**9, "CN")])
    assert telemetry.countries_seen(link, since=start - timedelta(minutes=1)) == {"US": 1000, "DE": 500}


def test_simulate_telemetry_command_with_anomalies(acme, cloud, link, metros):
    pending = active_connection(
        org=acme.org, a_port=acme.ams, z_port=cloud.fra, name="pending", vlan=130, state="PENDING_APPROVAL"
    )
    call_command("simulate_telemetry", days=1, interval=300, verbosity=0)
    assert TelemetrySample.objects.filter(connection=link).count() == 288
    assert not TelemetrySample.objects.filter(connection=pending).exists()
    assert TelemetryRollup.objects.filter(connection=link, resolution_seconds=300).count() >= 288
    # The traffic follows the day: the afternoon is busier than the night.
    by_hour = {
        p.time.hour: p.bps_in
        for p in telemetry.series(
            link, since=timezone.now() - timedelta(days=1), until=timezone.now(), step_seconds=3600
        )
    }
    assert by_hour[15] > by_hour[3]
    assert set(telemetry.countries_seen(link, since=timezone.now() - timedelta(days=1))) == {"DE"}

    # Running again adds only what is new; a spike and traffic to another country stand out.
    call_command(
        "simulate_telemetry",
        days=1,
        interval=300,
        spike="link",
        spike_minutes=60,
        spike_factor=8,
        country="kp",
        verbosity=0,
    )
    assert TelemetrySample.objects.filter(connection=link, bytes_in__gt=0).count() in (288, 289)
    recent = telemetry.utilisation_by_connection([link.pk], since=timezone.now() - timedelta(minutes=55))
    day = telemetry.utilisation_by_connection([link.pk], since=timezone.now() - timedelta(days=1))
    assert recent[link.pk].bps_out > 3 * day[link.pk].bps_out
    assert "KP" in telemetry.countries_seen(link, since=timezone.now() - timedelta(hours=2))


def test_simulate_telemetry_refuses_bad_options(link):
    with pytest.raises(CommandError, match="country code"):
        call_command("simulate_telemetry", country="XX", verbosity=0)
    with pytest.raises(CommandError, match="No single ACTIVE connection"):
        call_command("simulate_telemetry", spike="nope", verbosity=0)
    assert not TelemetrySample.objects.exists()


def test_simulate_beat_task_runs_only_when_switched_on(link, settings):
    settings.FABRIC_TELEMETRY_SIMULATE = False
    assert tasks.telemetry_simulate() == 0
    settings.FABRIC_TELEMETRY_SIMULATE = True
    settings.FABRIC_TELEMETRY_SIMULATE_INTERVAL_SECONDS = 600
    assert tasks.telemetry_simulate() == 144
    assert tasks.telemetry_simulate() == 0  # already up to date


def test_seed_demo_telemetry_gives_history_and_anomalies_once(metros):
    demo = OrganizationFactory(slug="acme")
    a, z = (PortFactory(organization=demo, metro=metros[code], name=f"demo-{code}") for code in ("NY", "DC"))
    spiky = active_connection(org=demo, a_port=a, z_port=z, name="acme-dc-gpu-inference", vlan=300)
    pending = active_connection(org=demo, a_port=a, z_port=z, name="later", vlan=301, state="PENDING_APPROVAL")

    added = seed_demo_telemetry(days=1, interval_seconds=600)
    assert added == TelemetrySample.objects.count()
    assert not TelemetrySample.objects.filter(connection=pending).exists()
    recent = telemetry.utilisation_by_connection([spiky.pk], since=timezone.now() - timedelta(minutes=80))
    day = telemetry.utilisation_by_connection([spiky.pk], since=timezone.now() - timedelta(days=1))
    assert recent[spiky.pk].bps_out > 2 * day[spiky.pk].bps_out  # the injected egress spike
    assert seed_demo_telemetry(days=1, interval_seconds=600) == 0  # a second seed adds nothing
