"""Scan playground, policy page and profile pages: every write goes through the services."""

import pytest
from django.urls import reverse

from fabric.services import metros_load
from hub.choices import Role
from hub.models import AuditEvent
from security import services
from security.models import Policy, Scan, ScanProfile

pytestmark = pytest.mark.django_db

CARD = "4111 1111 1111 1111"
AWS_KEY = "AKIAZ7Q4RM2LXV3N8KTP"


@pytest.fixture
def analyst(member_factory):
    return member_factory(Role.SECURITY_ANALYST)


@pytest.fixture
def data_profile(analyst):
    """A profile of the detectors that need no trained model (not the default one)."""
    services.profile_default(org=analyst.organization)
    return services.profile_create(
        membership=analyst, name="data-only", detectors=["sensitive_data", "secrets", "urls", "unsafe_code"]
    )


def test_a_scan_shows_the_verdict_and_the_findings_highlighted_with_secrets_masked(analyst, logged_in, data_profile):
    text = f"Charge my card {CARD} and use key {AWS_KEY} please"
    response = logged_in(analyst).post(
        reverse("security:playground"), {"profile": "data-only", "kind": "prompt", "text": text, "app": "pg-test"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    scan = Scan.objects.get()
    assert scan.app == "pg-test"
    assert scan.profile_name == "data-only"
    assert f'id="verdict">{scan.get_verdict_display()}<' in page
    assert page.count('<mark class="finding') >= 2
    # The page repeats the text with the card number and the key masked, never in clear.
    assert CARD not in page
    assert AWS_KEY not in page
    assert "Charge my card" in page
    assert str(scan.public_id) in page
    for finding in scan.findings:
        assert finding["detector"] in page


def test_retrieved_context_is_scanned_too(analyst, logged_in, data_profile):
    response = logged_in(analyst).post(
        reverse("security:playground"),
        {"profile": "data-only", "kind": "prompt", "text": "Summarise this", "context": f"key={AWS_KEY}"},
    )
    scan = Scan.objects.get()
    assert [c["kind"] for c in scan.contents] == ["prompt", "context"]
    assert any(f["kind"] == "context" for f in scan.findings)
    assert "Retrieved context" in response.content.decode()


def test_an_oversized_text_is_a_form_error_and_nothing_is_stored(analyst, logged_in, data_profile, settings):
    settings.SECURITY_SCAN_MAX_CONTENT_BYTES = 100
    response = logged_in(analyst).post(
        reverse("security:playground"), {"profile": "data-only", "kind": "prompt", "text": "x" * 101}
    )
    assert response.status_code == 400
    assert "the limit is 100 bytes" in response.content.decode()
    assert not Scan.objects.exists()


def test_a_viewer_cannot_scan(member_factory, logged_in):
    viewer = member_factory(Role.VIEWER)
    client = logged_in(viewer)
    assert "may look at scans but not run them" in client.get(reverse("security:playground")).content.decode()
    response = client.post(reverse("security:playground"), {"profile": "default", "kind": "prompt", "text": "hi"})
    assert response.status_code == 403
    assert not Scan.objects.exists()


def test_the_policy_page_saves_through_the_service_and_is_audited(analyst, logged_in):
    metros_load()
    client = logged_in(analyst)
    response = client.post(
        reverse("security:policy"), {"allowed_zones": "eu, uk", "approval_bandwidth_mbps": "5000"}, follow=True
    )
    assert "Policy saved" in response.content.decode()
    policy = Policy.objects.get(organization=analyst.organization)
    assert (policy.allowed_zones, policy.approval_bandwidth_mbps) == (["EU", "UK"], 5000)
    assert AuditEvent.objects.filter(action="policy.update", organization=analyst.organization).exists()
    assert 'id="policy-zones">EU, UK<' in response.content.decode()


def test_an_unknown_zone_is_a_field_error_and_changes_nothing(analyst, logged_in):
    metros_load()
    response = logged_in(analyst).post(reverse("security:policy"), {"allowed_zones": "EU, ATLANTIS"})
    assert response.status_code == 400
    assert "Unknown sovereignty zone(s): ATLANTIS" in response.content.decode()
    assert not Policy.objects.filter(organization=analyst.organization).exists()


def test_a_viewer_sees_the_policy_but_cannot_change_it(member_factory, logged_in):
    viewer = member_factory(Role.VIEWER)
    client = logged_in(viewer)
    page = client.get(reverse("security:policy")).content.decode()
    assert "every zone" in page
    assert 'id="policy-form"' not in page
    assert client.post(reverse("security:policy"), {"allowed_zones": "EU"}).status_code == 403


def _profile_data(**overrides):
    data = {
        "name": "strict",
        "description": "Blocks medium findings too",
        "detectors": ["secrets", "sensitive_data"],
        "action_critical": "block",
        "action_high": "block",
        "action_medium": "block",
        "action_low": "alert",
        "thresholds": '{"secrets": 0.6}',
        "url_allow_domains": "",
        "url_block_domains": "evil.example, *.bad.example",
    }
    return data | overrides


def test_profiles_are_listed_created_and_edited(analyst, logged_in):
    client = logged_in(analyst)
    page = client.get(reverse("security:profile-list")).content.decode()
    assert "default" in page  # created on first use
    response = client.post(reverse("security:profile-list"), _profile_data(), follow=True)
    assert "Profile strict created" in response.content.decode()
    profile = ScanProfile.objects.get(name="strict")
    assert profile.detectors == ["sensitive_data", "secrets"]
    assert profile.severity_actions["MEDIUM"] == "block"
    assert profile.thresholds == {"secrets": 0.6}
    assert profile.url_block_domains == ["*.bad.example", "evil.example"]
    url = reverse("security:profile-detail", args=[profile.public_id])
    client.post(url, _profile_data(action_medium="alert", detectors=["secrets"]))
    profile.refresh_from_db()
    assert (profile.severity_actions["MEDIUM"], profile.detectors) == ("alert", ["secrets"])
    assert AuditEvent.objects.filter(action="scan_profile.update").exists()


def test_a_bad_profile_is_a_form_error(analyst, logged_in):
    client = logged_in(analyst)
    response = client.post(reverse("security:profile-list"), _profile_data(thresholds="{not json"))
    assert response.status_code == 400
    assert "JSON object" in response.content.decode()
    response = client.post(reverse("security:profile-list"), _profile_data(url_block_domains="not a domain!"))
    assert response.status_code == 400
    assert "is not a domain name" in response.content.decode()
    assert not ScanProfile.objects.filter(name="strict").exists()


def test_the_default_profile_cannot_be_deleted_but_another_can(analyst, logged_in, data_profile):
    client = logged_in(analyst)
    default = ScanProfile.objects.get(organization=analyst.organization, is_default=True)
    response = client.post(reverse("security:profile-detail", args=[default.public_id]), {"delete": "1"}, follow=True)
    assert "cannot be deleted" in response.content.decode()
    client.post(reverse("security:profile-detail", args=[data_profile.public_id]), {"delete": "1"})
    assert not ScanProfile.objects.filter(pk=data_profile.pk).exists()
    assert ScanProfile.objects.filter(pk=default.pk).exists()
