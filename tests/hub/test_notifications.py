"""In-app notifications: one row per member at publish time, read markers, the portal list with
its unread badge, and the API."""

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from hub.choices import Role
from hub.context_processors import organization as organization_context
from hub.errors import NotFound
from hub.events import publish
from hub.models import Notification
from hub.services import notification_mark_all_read, notification_mark_read
from hub.tasks import purge_old_notifications
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _announce(org, title="Connection fra-gpu is ACTIVE", link="/fabric/connections/", **kwargs):
    publish(
        org=org,
        event_type="connection.state_changed",
        payload={"state": "ACTIVE"},
        title=title,
        link=link,
        **kwargs,
    )


def test_every_member_of_the_org_is_notified_and_nobody_else(owner, member_factory, other_org):
    viewer = member_factory(Role.VIEWER)
    engineer = member_factory(Role.NETWORK_ENGINEER)
    outsider = member_factory(Role.OWNER, organization=other_org)
    _announce(owner.organization, body="Provisioning finished.")

    rows = Notification.objects.all()
    assert {n.user for n in rows} == {owner.user, viewer.user, engineer.user}
    assert not Notification.objects.filter(user=outsider.user).exists()
    note = rows.get(user=viewer.user)
    assert (note.title, note.body, note.link, note.event_type) == (
        "Connection fra-gpu is ACTIVE",
        "Provisioning finished.",
        "/fabric/connections/",
        "connection.state_changed",
    )
    assert note.organization == owner.organization
    assert note.read_at is None
    assert len({n.event_id for n in rows}) == 1


@pytest.mark.parametrize("link", ["javascript:alert(1)", "https://evil.example/", "//evil.example/x"])
def test_only_links_on_this_site_are_kept(owner, link):
    _announce(owner.organization, link=link)
    assert Notification.objects.get().link == ""


def test_large_organizations_are_capped_owners_and_admins_first(owner, member_factory, settings):
    settings.NOTIFICATION_MAX_RECIPIENTS = 2
    viewer = member_factory(Role.VIEWER)
    admin = member_factory(Role.ADMIN)
    _announce(owner.organization)
    assert set(Notification.objects.values_list("user", flat=True)) == {owner.user.pk, admin.user.pk}
    assert not Notification.objects.filter(user=viewer.user).exists()


def test_a_member_marks_only_their_own_notifications_read(owner, member_factory):
    viewer = member_factory(Role.VIEWER)
    _announce(owner.organization)
    _announce(owner.organization, title="Second")
    mine = Notification.objects.filter(user=owner.user).order_by("created_at", "id").first()
    theirs = Notification.objects.filter(user=viewer.user).first()

    notification_mark_read(membership=owner, notification=mine)
    notification_mark_read(membership=owner, notification=mine)  # again is harmless
    mine.refresh_from_db()
    assert mine.read_at is not None
    with pytest.raises(NotFound):
        notification_mark_read(membership=owner, notification=theirs)
    theirs.refresh_from_db()
    assert theirs.read_at is None

    assert notification_mark_all_read(membership=owner) == 1
    assert notification_mark_all_read(membership=owner) == 0
    assert Notification.objects.filter(user=viewer.user, read_at__isnull=True).count() == 2


def test_portal_list_newest_first_with_unread_badge_and_mark_read(owner, logged_in):
    _announce(owner.organization, title="Older event")
    _announce(owner.organization, title="Newer event")
    older, newer = Notification.objects.filter(user=owner.user).order_by("created_at", "id")
    client = logged_in(owner)

    page = client.get(reverse("notifications:list")).content.decode()
    assert page.index("Newer event") < page.index("Older event")
    assert page.count('class="notification unread"') == 2
    assert 'data-testid="unread-count" title="unread">2<' in page

    response = client.post(reverse("notifications:read", args=[newer.public_id]), headers={"HX-Request": "true"})
    assert response.status_code == 200
    fragment = response.content.decode()
    assert fragment.lstrip().startswith(f'<article id="notification-{newer.public_id}" class="notification">')
    assert "Mark read" not in fragment
    assert '<span id="nav-unread" hx-swap-oob="true"><span class="nav-count"' in fragment  # the badge follows
    assert 'title="unread">1<' in fragment

    home = client.get(reverse("home")).content.decode()
    assert 'data-testid="unread-count" title="unread">1<' in home

    response = client.post(reverse("notifications:read", args=[older.public_id]))
    assert response.status_code == 302
    page = client.get(reverse("notifications:list")).content.decode()
    assert "unread-count" not in page
    assert 'class="notification unread"' not in page
    assert "Mark all read" not in page


def test_portal_mark_all_read(owner, logged_in):
    for n in range(3):
        _announce(owner.organization, title=f"Event {n}")
    client = logged_in(owner)
    response = client.post(reverse("notifications:read-all"), follow=True)
    assert "Marked 3 notifications read." in response.content.decode()
    assert not Notification.objects.filter(read_at__isnull=True).exists()


def test_a_member_cannot_mark_another_members_notification(owner, member_factory, logged_in):
    viewer = member_factory(Role.VIEWER)
    _announce(owner.organization)
    theirs = Notification.objects.get(user=viewer.user)
    response = logged_in(owner).post(reverse("notifications:read", args=[theirs.public_id]))
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_the_unread_count_is_one_lazy_query(owner, django_assert_num_queries):
    _announce(owner.organization)
    request = RequestFactory().get("/")
    request.user, request.org, request.membership = owner.user, owner.organization, owner
    with django_assert_num_queries(0):
        context = organization_context(request)
    with django_assert_num_queries(1):
        assert str(context["unread_notifications"]) == "1"
        assert bool(context["unread_notifications"])


def test_api_list_filter_read_and_read_all(owner, member_factory, token_client):
    viewer = member_factory(Role.VIEWER)
    _announce(owner.organization, title="First")
    _announce(owner.organization, title="Second")
    api = token_client(owner)

    listing = api.get("/api/v1/notifications/").json()
    assert listing["count"] == 2
    assert [n["title"] for n in listing["results"]] == ["Second", "First"]
    first = listing["results"][1]
    assert first["read"] is False
    assert set(first) == {"id", "event_type", "event_id", "title", "body", "link", "read", "read_at", "created_at"}

    response = api.post(f"/api/v1/notifications/{first['id']}/read/")
    assert response.status_code == 200
    assert response.json()["read"] is True
    assert api.get("/api/v1/notifications/?unread=true").json()["count"] == 1
    assert api.get("/api/v1/notifications/?unread=false").json()["count"] == 1

    theirs = Notification.objects.get(user=viewer.user, title="First")
    assert api.post(f"/api/v1/notifications/{theirs.public_id}/read/").status_code == 404
    assert api.get(f"/api/v1/notifications/{theirs.public_id}/").status_code == 404

    assert api.post("/api/v1/notifications/read-all/").json() == {"marked_read": 1}
    assert api.get("/api/v1/notifications/?unread=true").json()["count"] == 0
    assert Notification.objects.filter(user=viewer.user, read_at__isnull=True).count() == 2


def test_other_organizations_never_see_each_others_notifications(owner, member_factory, other_org, token_client):
    outsider = member_factory(Role.OWNER, organization=other_org)
    _announce(owner.organization, title="alpha only")
    _announce(other_org, title="beta only")
    mine = Notification.objects.get(user=owner.user)

    api = token_client(outsider)
    titles = [n["title"] for n in api.get("/api/v1/notifications/").json()["results"]]
    assert titles == ["beta only"]
    assert api.get(f"/api/v1/notifications/{mine.public_id}/").status_code == 404
    assert api.post(f"/api/v1/notifications/{mine.public_id}/read/").status_code == 404
    assert api.post("/api/v1/notifications/read-all/").json() == {"marked_read": 1}
    mine.refresh_from_db()
    assert mine.read_at is None


def test_a_member_of_two_orgs_sees_the_active_orgs_notifications(owner, other_org, logged_in):
    MembershipFactory(user=owner.user, organization=other_org, role=Role.VIEWER)
    _announce(owner.organization, title="From Acme")
    _announce(other_org, title="From Globex")
    page = logged_in(owner).get(reverse("notifications:list")).content.decode()
    assert "From Acme" in page
    assert "From Globex" not in page


def test_old_notifications_are_purged(owner, settings):
    settings.NOTIFICATION_RETENTION_DAYS = 90
    _announce(owner.organization, title="Old")
    Notification.objects.update(created_at=timezone.now() - timedelta(days=91))
    _announce(owner.organization, title="Recent")
    assert purge_old_notifications() == 1
    assert list(Notification.objects.values_list("title", flat=True)) == ["Recent"]
