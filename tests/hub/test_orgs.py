import pytest
from django.urls import reverse

from hub.choices import Role
from hub.models import Membership, Organization

pytestmark = pytest.mark.django_db


def test_create_a_second_org_and_switch_between_them(owner, logged_in):
    client = logged_in(owner)
    response = client.post(reverse("org-create"), {"name": "Acme Labs"}, follow=True)
    assert "Created Acme Labs" in response.content.decode()
    labs = Organization.objects.get(name="Acme Labs")
    assert Membership.objects.get(user=owner.user, organization=labs).role == Role.OWNER
    assert client.get("/api/v1/me/").json()["organization"]["slug"] == labs.slug

    response = client.post(reverse("org-switch"), {"org": owner.organization.public_id, "next": "/settings/"})
    assert response["Location"] == "/settings/"
    assert client.get("/api/v1/me/").json()["organization"]["slug"] == owner.organization.slug


def test_switching_to_an_org_you_are_not_in_is_404(owner, other_org, logged_in):
    client = logged_in(owner)
    assert client.post(reverse("org-switch"), {"org": other_org.public_id}).status_code == 404
    assert client.get("/api/v1/me/").json()["organization"]["slug"] == owner.organization.slug


def test_switch_refuses_an_offsite_next(owner, logged_in):
    response = logged_in(owner).post(
        reverse("org-switch"), {"org": owner.organization.public_id, "next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("home")


def test_org_slugs_stay_unique(owner, logged_in):
    client = logged_in(owner)
    client.post(reverse("org-create"), {"name": "Initech"})
    client.post(reverse("org-create"), {"name": "Initech"})
    assert sorted(Organization.objects.filter(name="Initech").values_list("slug", flat=True)) == [
        "initech",
        "initech-2",
    ]


def test_a_user_without_an_org_is_sent_to_create_one(client):
    from tests.factories import UserFactory

    client.force_login(UserFactory(), backend="django.contrib.auth.backends.ModelBackend")
    response = client.get(reverse("home"))
    assert response["Location"] == reverse("org-create")


def test_nav_and_switcher_list_my_orgs(owner, other_org, member_factory, logged_in):
    member_factory(Role.VIEWER, organization=other_org)  # someone else's membership
    Membership.objects.create(user=owner.user, organization=other_org, role=Role.VIEWER)
    body = logged_in(owner).get(reverse("home")).content.decode()
    assert 'data-testid="switch-acme-test"' in body
    assert 'data-testid="switch-globex-test"' in body


def test_dashboard_counts_only_usable_tokens(owner, logged_in):
    from datetime import timedelta

    from django.utils import timezone

    from hub.models import APIToken
    from hub.services import api_token_create

    api_token_create(membership=owner, name="live", scopes=["read"])
    expired, _ = api_token_create(
        membership=owner, name="old", scopes=["read"], expires_at=timezone.now() + timedelta(days=1)
    )
    APIToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    response = logged_in(owner).get(reverse("home"))
    assert response.context["overview"]["active_tokens"] == 1


def test_a_page_view_does_not_rewrite_the_session(owner, logged_in):
    """The active organization is remembered once; reading pages leaves the session row alone."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = logged_in(owner)
    client.get("/")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    assert not [q for q in queries.captured_queries if "django_session" in q["sql"] and "UPDATE" in q["sql"]]
