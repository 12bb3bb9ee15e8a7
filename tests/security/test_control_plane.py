"""Control-plane events become alerts: account lockouts, use of a revoked or expired API token,
and policy denials (raised by the policy guard)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from hub.choices import Role
from hub.models import APIToken
from hub.services import api_token_create, api_token_revoke
from security.choices import AlertCategory, AlertSource, Severity
from security.models import Alert

pytestmark = pytest.mark.django_db


def _bearer(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_locked_out_account_raises_an_alert_in_its_organization(client, owner, other_org, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": owner.user.email, "password": "wrong"})
    alert = Alert.objects.get(category=AlertCategory.LOGIN_LOCKOUT)
    assert alert.organization == owner.organization
    assert alert.source == AlertSource.CONTROL_PLANE
    assert owner.user.email in alert.title
    assert alert.evidence["ip_address"] == "127.0.0.1"
    assert alert.evidence["failures"] == settings.AXES_FAILURE_LIMIT
    assert not Alert.objects.filter(organization=other_org).exists()


def test_failed_logins_for_an_unknown_email_raise_nothing(client, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "nobody@example.com", "password": "wrong"})
    assert not Alert.objects.exists()


def test_using_a_revoked_token_raises_a_high_alert_each_use_counted(owner):
    token, secret = api_token_create(membership=owner, name="ci-deploy", scopes=["read"])
    api_token_revoke(token=token, actor_membership=owner)
    for _ in range(2):
        assert _bearer(secret).get("/api/v1/me/").status_code == 401
    alert = Alert.objects.get(category=AlertCategory.TOKEN_MISUSE)
    assert alert.organization == owner.organization
    assert alert.severity == Severity.HIGH
    assert alert.count == 2
    assert "revoked API token ci-deploy" in alert.title
    assert alert.evidence["reason"] == "revoked"
    assert alert.evidence["path"] == "/api/v1/me/"
    assert secret not in str(alert.evidence)


def test_using_an_expired_token_raises_a_medium_alert(owner):
    token, secret = api_token_create(membership=owner, name="old", scopes=["read"])
    APIToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert _bearer(secret).get("/api/v1/me/").status_code == 401
    alert = Alert.objects.get(category=AlertCategory.TOKEN_MISUSE)
    assert (alert.severity, alert.evidence["reason"]) == (Severity.MEDIUM, "expired")


def test_a_wrong_secret_with_a_real_prefix_is_not_the_tokens_misuse(owner):
    token, secret = api_token_create(membership=owner, name="live", scopes=["read"])
    api_token_revoke(token=token, actor_membership=owner)
    assert _bearer(secret[:-4] + "abcd").get("/api/v1/me/").status_code == 401
    assert not Alert.objects.exists()


def test_a_policy_denial_shows_on_the_alert_list(member_factory, logged_in, django_capture_on_commit_callbacks):
    from fabric.services import connection_request
    from security import services
    from tests.security.threatdash_helpers import make_connection

    analyst = member_factory(Role.OWNER)
    existing = make_connection(analyst.organization)  # loads metros and gives two ports (FR, NY)
    services.policy_update(membership=analyst, allowed_zones=["EU"])
    from hub.errors import DomainError

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(DomainError):
        connection_request(
            membership=analyst, name="to-us", a_port=existing.a_port, z_port=existing.z_port, bandwidth_mbps=10
        )
    alert = Alert.objects.get(category=AlertCategory.POLICY_DENIAL)
    page = logged_in(analyst).get(reverse("security:alert-list")).content.decode()
    assert alert.title in page
