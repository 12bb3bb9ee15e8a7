"""Telemetry ingest through the API: validation, partial failures, limits, roles, scopes and tenants."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from fabric import telemetry
from fabric.models import TelemetryDirtyBucket, TelemetrySample
from hub.choices import Role
from tests.fabric.test_telemetry_support import active_connection, aligned_hour_ago, sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def link(acme, cloud):
    return active_connection(org=acme.org, a_port=acme.fra, z_port=cloud.fra)


@pytest.fixture
def engineer(acme, member_factory, token_client):
    return token_client(member_factory(Role.NETWORK_ENGINEER), scopes=["read", "write"])


def url(connection):
    return f"/api/v1/connections/{connection.public_id}/telemetry/"


def test_valid_samples_are_stored_and_announced(link, engineer, django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    telemetry.samples_ingested.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = engineer.post(url(link), {"samples": [sample(), sample(country="de")]}, format="json")
    finally:
        telemetry.samples_ingested.disconnect(receiver)
    assert response.status_code == 201, response.content
    assert response.json() == {"accepted": 2, "rejected": 0, "errors": []}
    stored = list(TelemetrySample.objects.filter(connection=link).order_by("country"))
    assert [(s.bytes_in, s.bytes_out, s.country) for s in stored] == [
        (7_500_000, 1_500_000, ""),
        (7_500_000, 1_500_000, "DE"),
    ]
    assert TelemetryDirtyBucket.objects.filter(connection=link).count() == 1
    assert received
    assert received[0]["connection_ids"] == frozenset({link.pk})
    assert received[0]["organization_id"] == link.organization_id


def test_partial_failure_keeps_the_valid_samples_and_reports_each_bad_one(link, engineer):
    future = timezone.now() + timedelta(hours=2)
    too_old = timezone.now() - timedelta(days=30)
    samples = [
        sample(),
        sample(bytes_in=-5),
        sample(time=future),
        sample(time=too_old),
        sample(packets_out=1.5),
        sample(country="XX"),
        "not an object",
        sample(surprise=1),
        {**sample(), "time": "2026-01-01T00:00:00"},
        sample(),
    ]
    response = engineer.post(url(link), {"samples": samples}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 8)
    errors = {error["index"]: error["fields"] for error in body["errors"]}
    assert errors[1] == {"bytes_in": ["Must not be negative."]}
    assert errors[2] == {"time": ["This time is in the future."]}
    assert "retention" in errors[3]["time"][0]
    assert errors[4] == {"packets_out": ["Must be a whole number."]}
    assert errors[5] == {"country": ["Not an ISO 3166-1 alpha-2 country code."]}
    assert errors[6] == {"non_field_errors": ["A sample must be a JSON object."]}
    assert errors[7] == {"surprise": ["Unknown field."]}
    assert "time zone" in errors[8]["time"][0]
    assert TelemetrySample.objects.filter(connection=link).count() == 2


def test_nothing_valid_is_a_400_naming_each_sample(link, engineer):
    response = engineer.post(url(link), {"samples": [sample(bytes_out=-1), sample(time="yesterday")]}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"] == {
        "samples.0.bytes_out": ["Must not be negative."],
        "samples.1.time": ["Not an ISO 8601 date-time."],
    }
    assert not TelemetrySample.objects.exists()


def test_unix_seconds_are_accepted(link, engineer):
    when = timezone.now() - timedelta(minutes=10)
    response = engineer.post(url(link), {"samples": [sample(time=when.timestamp())]}, format="json")
    assert response.status_code == 201
    assert abs(TelemetrySample.objects.get().time - when) < timedelta(seconds=1)


def test_10001_samples_is_a_clear_400_and_nothing_is_stored(link, engineer):
    one = sample()
    response = engineer.post(url(link), {"samples": [one] * 10_001}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "too_many_samples"
    assert "10,000" in error["message"]
    assert not TelemetrySample.objects.exists()


def test_exactly_10000_samples_are_accepted(link, engineer):
    response = engineer.post(url(link), {"samples": [sample()] * 10_000}, format="json")
    assert response.status_code == 201
    assert TelemetrySample.objects.count() == 10_000


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"samples": [', "Malformed JSON"),
        (b'{"samples": [{"time": "\\u0000"}]}', "NUL"),
        (b"[1, 2]", "samples"),
        (b'{"samples": {}}', "list"),
        (b'{"samples": []}', "at least one"),
        (b"{}", "list"),
    ],
)
def test_malformed_bodies_are_clear_400s(link, engineer, body, needle):
    response = engineer.generic("POST", url(link), body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert needle in str(response.json()["error"])
    assert not TelemetrySample.objects.exists()


def test_another_orgs_connection_is_404(link, globex, token_client):
    outsider = token_client(globex.member, scopes=["read", "write"])
    response = outsider.post(url(link), {"samples": [sample()]}, format="json")
    assert response.status_code == 404
    assert not TelemetrySample.objects.exists()


def test_the_z_side_may_not_report_the_requesters_telemetry(link, cloud, token_client):
    provider = token_client(cloud.member, scopes=["read", "write"])
    response = provider.post(url(link), {"samples": [sample()]}, format="json")
    assert response.status_code == 403
    assert "ordered" in response.json()["error"]["message"]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.SECURITY_ANALYST])
def test_roles_without_fabric_manage_cannot_write(link, member_factory, token_client, role):
    client = token_client(member_factory(role), scopes=["read", "write"])
    assert client.post(url(link), {"samples": [sample()]}, format="json").status_code == 403
    assert (
        client.post(
            "/api/v1/telemetry/", {"samples": [sample(connection=str(link.public_id))]}, format="json"
        ).status_code
        == 403
    )
    assert not TelemetrySample.objects.exists()


def test_a_read_only_token_cannot_write(link, acme, token_client):
    reader = token_client(acme.member, scopes=["read"])
    response = reader.post(url(link), {"samples": [sample()]}, format="json")
    assert response.status_code == 403
    assert "write" in response.json()["error"]["message"]


def test_replay_with_idempotency_key_does_not_double_count(link, engineer):
    body = {"samples": [sample()]}
    first = engineer.post(url(link), body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    again = engineer.post(url(link), body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert TelemetrySample.objects.count() == 1


def test_bulk_ingest_for_many_connections_with_per_sample_errors(acme, cloud, globex, engineer):
    first = active_connection(org=acme.org, a_port=acme.fra, z_port=cloud.fra, name="one", vlan=101)
    second = active_connection(org=acme.org, a_port=acme.ams, z_port=cloud.fra, name="two", vlan=102)
    foreign = active_connection(org=globex.org, a_port=globex.fra, z_port=cloud.fra, name="theirs", vlan=103)
    provider_side = active_connection(org=cloud.org, a_port=cloud.fra, z_port=acme.fra10, name="inbound", vlan=104)
    samples = [
        sample(connection=str(first.public_id)),
        sample(connection=str(second.public_id), bytes_in=1),
        sample(connection=str(foreign.public_id)),
        sample(connection=str(provider_side.public_id)),
        sample(connection="not-a-uuid"),
        sample(),
        sample(connection=str(second.public_id), drops=-1),
        sample(connection=[str(first.public_id)]),
    ]
    response = engineer.post("/api/v1/telemetry/", {"samples": samples}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 6)
    errors = {error["index"]: error["fields"] for error in body["errors"]}
    assert errors[2] == errors[3] == {"connection": ["No connection of your organization has this id."]}
    assert errors[4] == {"connection": ["Not a valid UUID."]}
    assert errors[5] == {"connection": ["This field is required."]}
    assert errors[6] == {"drops": ["Must not be negative."]}
    assert errors[7] == {"connection": ["Give the connection's id (a UUID)."]}
    assert sorted(TelemetrySample.objects.values_list("connection__name", "bytes_in")) == [
        ("one", 7_500_000),
        ("two", 1),
    ]
    assert not TelemetrySample.objects.filter(connection=foreign).exists()


def test_bulk_ingest_of_only_foreign_samples_is_a_400(link, globex, token_client):
    outsider = token_client(globex.member, scopes=["read", "write"])
    response = outsider.post("/api/v1/telemetry/", {"samples": [sample(connection=str(link.public_id))]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "samples.0.connection": ["No connection of your organization has this id."]
    }
    assert not TelemetrySample.objects.exists()


def test_a_sample_naming_another_connection_on_the_single_endpoint_is_refused(acme, cloud, link, engineer):
    other = active_connection(org=acme.org, a_port=acme.ams, z_port=cloud.fra, name="other", vlan=120)
    response = engineer.post(url(link), {"samples": [sample(connection=str(other.public_id)), sample()]}, format="json")
    assert response.status_code == 201
    assert response.json()["errors"] == [
        {"index": 0, "fields": {"connection": ["Does not match the connection in the URL."]}}
    ]
    assert not TelemetrySample.objects.filter(connection=other).exists()


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        # Outside 64 bits: the fast parser would read a float; the report must not change.
        ("18446744073709551616", "Must be at most 9223372036854775807."),
        ("-9223372036854775809", "Must not be negative."),
        ("NaN", "Must be a whole number."),
        ("1e999", "Must be a whole number."),
        ("7.0", "Must be a whole number."),
    ],
)
def test_odd_numbers_are_reported_per_sample_and_the_valid_ones_kept(link, engineer, literal, message):
    odd = json.dumps(sample(bytes_in=123_456_789)).replace("123456789", literal)
    body = f'{{"samples": [{json.dumps(sample())}, {odd}]}}'
    response = engineer.generic("POST", url(link), body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["errors"] == [{"index": 1, "fields": {"bytes_in": [message]}}]
    assert TelemetrySample.objects.filter(connection=link).count() == 1


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        # A lone surrogate and a byte-order mark: orjson refuses them, the standard library reads them.
        (b'{"samples": [{"time": "\\ud800", "bytes_in": 1}]}', {"samples.0.time": ["Not an ISO 8601 date-time."]}),
        (b'\xef\xbb\xbf{"samples": [{"time": "x"}]}', {"samples.0.time": ["Not an ISO 8601 date-time."]}),
    ],
)
def test_bodies_only_the_standard_parser_reads_are_checked_per_sample(link, engineer, body, fields):
    response = engineer.generic("POST", url(link), body, content_type="application/json")
    assert response.status_code == 400, response.content
    reported = response.json()["error"]["fields"]
    assert {name: messages for name, messages in reported.items() if name in fields} == fields


def test_a_trailing_comma_is_malformed_json(link, engineer):
    response = engineer.generic("POST", url(link), b'{"samples": [1, 2,]}', content_type="application/json")
    assert response.status_code == 400
    assert "Malformed JSON" in response.json()["error"]["message"]


def test_deeply_nested_json_is_a_400_not_a_500(link, engineer):
    body = b'{"samples": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = engineer.generic("POST", url(link), body, content_type="application/json")
    assert response.status_code == 400
    assert "Malformed JSON" in response.json()["error"]["message"]


def test_markers_name_each_connection_and_bucket_once_and_a_second_ingest_renews_them(acme, cloud, engineer):
    first = active_connection(org=acme.org, a_port=acme.fra, z_port=cloud.fra, name="one", vlan=101)
    second = active_connection(org=acme.org, a_port=acme.ams, z_port=cloud.fra, name="two", vlan=102)
    start = aligned_hour_ago(2)
    samples = [
        sample(time=start + timedelta(seconds=10 * n), connection=str(link.public_id))
        for link in (first, second)
        for n in range(1, 61)  # 10 minutes: two buckets each
    ]
    response = engineer.post("/api/v1/telemetry/", {"samples": samples}, format="json")
    assert response.status_code == 201
    markers = set(TelemetryDirtyBucket.objects.values_list("connection_id", "bucket"))
    assert markers == {
        (link.pk, start + timedelta(minutes=minutes)) for link in (first, second) for minutes in (0, 5, 10)
    }
    marked = dict(TelemetryDirtyBucket.objects.values_list("bucket", "marked_at").filter(connection=first))
    again = engineer.post("/api/v1/telemetry/", {"samples": samples[:1]}, format="json")
    assert again.status_code == 201
    assert TelemetryDirtyBucket.objects.count() == 6
    renewed = dict(TelemetryDirtyBucket.objects.values_list("bucket", "marked_at").filter(connection=first))
    bucket = start  # samples[0] is 10 s into the first bucket
    assert renewed[bucket] > marked[bucket]
    assert {b: t for b, t in renewed.items() if b != bucket} == {b: t for b, t in marked.items() if b != bucket}


def test_the_announced_window_covers_the_stored_samples_only(link, engineer, django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    start = aligned_hour_ago(2)
    samples = [
        sample(time=start - timedelta(minutes=30), bytes_in=-1),  # refused: its time must not count
        sample(time=start),
        sample(time=start + timedelta(minutes=7)),
        sample(time=(start + timedelta(minutes=20)).timestamp()),  # Unix seconds: the detailed check
        sample(time=start + timedelta(minutes=40), country="XX"),  # refused
    ]
    telemetry.samples_ingested.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = engineer.post(url(link), {"samples": samples}, format="json")
    finally:
        telemetry.samples_ingested.disconnect(receiver)
    assert response.json()["accepted"] == 3
    assert len(received) == 1
    assert received[0]["time_from"] == start
    assert received[0]["time_to"] == start + timedelta(minutes=20)
    assert set(TelemetryDirtyBucket.objects.values_list("bucket", flat=True)) == {
        start,
        start + timedelta(minutes=5),
        start + timedelta(minutes=20),
    }


def test_an_unknown_field_named_with_a_lone_surrogate_is_reported_not_a_500(link, engineer):
    body = f'{{"samples": [{json.dumps(sample())}, {{"\\ud800": 1}}]}}'
    response = engineer.generic("POST", url(link), body, content_type="application/json")
    assert response.status_code == 201, response.content
    errors = response.json()["errors"]
    assert errors[0]["index"] == 1
    assert errors[0]["fields"]["\\ud800"] == ["Unknown field."]
    assert TelemetrySample.objects.filter(connection=link).count() == 1


def test_a_country_that_is_not_a_code_is_refused_and_a_missing_one_is_no_country(link, engineer):
    samples = [sample(country=0), sample(country=False), sample(country=[]), sample(country=None), sample(country="")]
    body = engineer.post(url(link), {"samples": samples}, format="json").json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    assert {error["index"] for error in body["errors"]} == {0, 1, 2}
    assert all(error["fields"] == {"country": ["Not an ISO 3166-1 alpha-2 country code."]} for error in body["errors"])
    assert set(TelemetrySample.objects.filter(connection=link).values_list("country", flat=True)) == {""}
