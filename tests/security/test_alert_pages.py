"""Alert list (filters, bulk actions) and alert detail (evidence, triage, notes, incident)."""

import pytest
from django.urls import reverse

from hub.choices import Role
from hub.models import AuditEvent
from security.choices import AlertCategory, AlertSource, AlertStatus, Severity
from security.models import Alert, AlertNote
from tests.security.threatdash_helpers import make_connection, raise_alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst(member_factory):
    return member_factory(Role.SECURITY_ANALYST, email="sam@acme.example")


def test_the_list_filters_by_severity_status_and_text(analyst, logged_in):
    org = analyst.organization
    raise_alert(org, key="1", title="Egress spike on fra", severity=Severity.CRITICAL)
    raise_alert(org, key="2", title="Account locked", severity=Severity.MEDIUM, category=AlertCategory.LOGIN_LOCKOUT)
    client = logged_in(analyst)
    url = reverse("security:alert-list")
    page = client.get(url).content.decode()
    assert "Egress spike on fra" in page
    assert "Account locked" in page
    page = client.get(url, {"severity": "CRITICAL"}).content.decode()
    assert "Egress spike on fra" in page
    assert "Account locked" not in page
    page = client.get(url, {"q": "locked"}).content.decode()
    assert "Egress spike on fra" not in page
    assert "Account locked" in page
    page = client.get(url, {"status": "RESOLVED"}).content.decode()
    assert "No alerts match" in page


def test_bulk_acknowledge_and_resolve_are_audited_and_skip_what_does_not_apply(analyst, logged_in):
    org = analyst.organization
    first, second = raise_alert(org, key="1"), raise_alert(org, key="2")
    client = logged_in(analyst)
    bulk = reverse("security:alert-bulk")
    response = client.post(bulk, {"alerts": [first.public_id, second.public_id], "action": "acknowledge"}, follow=True)
    assert "2 alerts updated (acknowledge)" in response.content.decode()
    assert set(Alert.objects.values_list("status", flat=True)) == {AlertStatus.ACKNOWLEDGED}
    client.post(bulk, {"alerts": [first.public_id], "action": "resolve", "note": "false positive"})
    response = client.post(bulk, {"alerts": [first.public_id, second.public_id], "action": "suppress"}, follow=True)
    assert "1 alert updated (suppress)" in response.content.decode()
    assert "1 skipped" in response.content.decode()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (AlertStatus.RESOLVED, AlertStatus.SUPPRESSED)
    assert AlertNote.objects.get(alert=first).body == "false positive"
    assert AuditEvent.objects.filter(action="alert.resolved", organization=org).count() == 1


def test_bulk_assign_to_a_member(analyst, logged_in, member_factory):
    colleague = member_factory(Role.SECURITY_ANALYST, email="kim@acme.example")
    alert = raise_alert(analyst.organization, key="1")
    logged_in(analyst).post(
        reverse("security:alert-bulk"),
        {"alerts": [alert.public_id], "action": "assign", "assignee": colleague.user.public_id},
    )
    alert.refresh_from_db()
    assert alert.assignee == colleague.user


def test_bulk_naming_another_organizations_alert_changes_nothing(analyst, logged_in, other_org):
    mine, theirs = raise_alert(analyst.organization, key="1"), raise_alert(other_org, key="1")
    response = logged_in(analyst).post(
        reverse("security:alert-bulk"), {"alerts": [mine.public_id, theirs.public_id], "action": "resolve"}
    )
    assert response.status_code == 404
    assert set(Alert.objects.values_list("status", flat=True)) == {AlertStatus.OPEN}


def test_bulk_with_nothing_ticked_or_garbage_is_explained(analyst, logged_in):
    client = logged_in(analyst)
    response = client.post(reverse("security:alert-bulk"), {"action": "resolve"}, follow=True)
    assert "Tick at least one alert" in response.content.decode()
    assert (
        client.post(reverse("security:alert-bulk"), {"alerts": ["not-a-uuid"], "action": "resolve"}).status_code == 404
    )
    alert = raise_alert(analyst.organization, key="1")
    response = client.post(
        reverse("security:alert-bulk"), {"alerts": [alert.public_id], "action": "explode"}, follow=True
    )
    assert "Unknown action" in response.content.decode()


def test_the_detail_shows_evidence_and_triage_acknowledge_then_resolve(analyst, logged_in):
    connection = make_connection(analyst.organization, name="fra-gpu-link")
    alert = raise_alert(
        analyst.organization,
        key="spike",
        title="Egress spike on fra-gpu-link",
        connection=connection,
        evidence={
            "baseline": 41200000.0,
            "observed": 333000000.0,
            "deviation": 17.2,
            "window_start": "2026-11-27T10:00",
        },
    )
    client = logged_in(analyst)
    url = reverse("security:alert-detail", args=[alert.public_id])
    page = client.get(url).content.decode()
    for text in ("Egress spike on fra-gpu-link", "baseline", "41200000.0", "deviation", "17.2", "fra-gpu-link"):
        assert text in page
    client.post(reverse("security:alert-action", args=[alert.public_id, "acknowledge"]))
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED
    client.post(reverse("security:alert-action", args=[alert.public_id, "note"]), {"body": "Blocked at the firewall."})
    response = client.post(reverse("security:alert-action", args=[alert.public_id, "resolve"]), follow=True)
    page = response.content.decode()
    assert "Alert resolved." in page
    assert "Blocked at the firewall." in page
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED
    # A resolved alert offers no more transitions.
    assert ">Acknowledge</button>" not in page
    assert ">Resolve</button>" not in page


def test_an_empty_note_is_a_form_error(analyst, logged_in):
    alert = raise_alert(analyst.organization, key="1")
    response = logged_in(analyst).post(reverse("security:alert-action", args=[alert.public_id, "note"]), {"body": ""})
    assert response.status_code == 400
    assert not AlertNote.objects.exists()


def test_an_unknown_verb_is_a_404(analyst, logged_in):
    alert = raise_alert(analyst.organization, key="1")
    assert (
        logged_in(analyst).post(reverse("security:alert-action", args=[alert.public_id, "explode"])).status_code == 404
    )


def test_the_incident_shows_both_the_content_finding_and_the_network_anomaly(analyst, logged_in):
    org = analyst.organization
    connection = make_connection(org, name="fra-gpu-link")
    network = raise_alert(org, key="net", title="Egress spike on fra-gpu-link", connection=connection)
    content = raise_alert(
        org,
        key="scan",
        title="Secrets in prompt of helpdesk",
        category="secrets",
        source=AlertSource.SCAN,
        connection=connection,
    )
    network.refresh_from_db()
    assert network.incident_id is not None
    assert network.incident_id == content.incident_id
    page = logged_in(analyst).get(reverse("security:alert-detail", args=[network.public_id])).content.decode()
    assert "Incident:" in page
    assert "Secrets in prompt of helpdesk" in page
    assert "Egress spike on fra-gpu-link" in page


def test_a_viewer_sees_alerts_but_no_triage_buttons_and_cannot_post(member_factory, logged_in):
    viewer = member_factory(Role.VIEWER)
    alert = raise_alert(viewer.organization, key="1", title="Something odd")
    client = logged_in(viewer)
    page = client.get(reverse("security:alert-detail", args=[alert.public_id])).content.decode()
    assert "Something odd" in page
    assert ">Acknowledge</button>" not in page
    assert client.post(reverse("security:alert-action", args=[alert.public_id, "resolve"])).status_code == 403
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN
