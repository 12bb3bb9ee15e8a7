import csv
import io

import pytest
from django.urls import reverse

from hub.choices import Role
from hub.models import AuditEvent
from hub.services import api_token_create, audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(owner, other_org):
    api_token_create(membership=owner, name="ci-token", scopes=["read"])
    audit_record(org=owner.organization, actor=owner.user, action="connection.create", after={"bandwidth_mbps": 1000})
    audit_record(org=other_org, actor=None, action="token.create")  # another org's: never shown


def test_audit_page_filters_by_action(owner, logged_in, events):
    client = logged_in(owner)
    body = client.get(reverse("audit-log")).content.decode()
    assert "token.create" in body
    assert "connection.create" in body
    filtered = client.get(reverse("audit-log"), {"action": "connection."}).content.decode()
    assert "connection.create" in filtered
    assert "token.create" not in filtered


def test_audit_filter_with_htmx_returns_just_the_table(owner, logged_in, events):
    response = logged_in(owner).get(reverse("audit-log"), {"action": "token."}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="audit-table">')
    assert "<html" not in body


def test_csv_export_has_only_my_orgs_filtered_events(owner, logged_in, events):
    response = logged_in(owner).get(reverse("audit-export"), {"action": "token."})
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["token.create"]
    assert rows[0]["actor"] == owner.user.email


def test_audit_page_shows_changes_readably(owner, logged_in, events):
    body = logged_in(owner).get(reverse("audit-log")).content.decode()
    assert "bandwidth_mbps: 1000" in body
    assert "{&#x27;" not in body


def test_audit_api_filters(owner, token_client, events):
    client = token_client(owner)
    results = client.get("/api/v1/audit-events/", {"action": "connection."}).json()["results"]
    assert [r["action"] for r in results] == ["connection.create"]
    assert results[0]["after"] == {"bandwidth_mbps": 1000}
    # The token used for the request is recorded on events it causes.
    created = client.post("/api/v1/tokens/", {"name": "via-api", "scopes": ["read"]}, format="json")
    event = AuditEvent.objects.get(action="token.create", object_id=created.json()["id"])
    assert event.token is not None
    assert event.request_id == created["X-Request-ID"]


def test_bad_filter_values_are_a_clear_400(owner, token_client):
    response = token_client(owner).get("/api/v1/audit-events/", {"since": "yesterday-ish"})
    assert response.status_code == 400
    assert "since" in response.json()["error"]["fields"]


def test_audit_events_are_append_only(owner, events):
    event = AuditEvent.objects.first()
    event.action = "tampered"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.update(action="x")


def test_security_analysts_read_the_audit_log_but_viewers_do_not(owner, member_factory, logged_in, events):
    assert logged_in(member_factory(Role.SECURITY_ANALYST)).get(reverse("audit-log")).status_code == 200
    assert logged_in(member_factory(Role.VIEWER)).get(reverse("audit-log")).status_code == 403


def test_extreme_time_zone_offsets_are_compared_in_utc(owner, token_client, events):
    # +17:27 is a valid ISO 8601 offset for Python but out of range for PostgreSQL.
    response = token_client(owner).get("/api/v1/audit-events/", {"since": "2000-10-20T16:19:48+17:27"})
    assert response.status_code == 200
    assert {e["action"] for e in response.json()["results"]} >= {"token.create", "connection.create"}
    future = token_client(owner).get("/api/v1/audit-events/", {"since": "4186-10-20T16:19:48+17:27"})
    assert future.status_code == 200
    assert future.json()["results"] == []
