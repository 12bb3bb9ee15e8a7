from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from hub.choices import Role
from hub.errors import Conflict, PermissionDenied
from hub.models import APIToken, AuditEvent, Invitation, Membership
from hub.services import (
    api_token_create,
    invitation_accept,
    invitation_create,
    invitation_token,
    membership_change_role,
    membership_remove,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _invite(owner, email="new@example.com", role=Role.NETWORK_ENGINEER, *, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return invitation_create(actor_membership=owner, email=email, role=role)


def test_invite_emails_a_link_that_joins_the_org_once(owner, client, django_capture_on_commit_callbacks):
    invitation = _invite(owner, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@example.com"]
    # The link in the e-mail is the one that works (tokens are signed with a timestamp).
    link = (
        next(line for line in mail.outbox[0].body.splitlines() if "/invitations/" in line)
        .rsplit("/invitations/", 1)[1]
        .strip("/")
    )
    invitation.refresh_from_db()
    assert invitation.sent_at is not None

    invitee = UserFactory(email="new@example.com")
    client.force_login(invitee, backend="django.contrib.auth.backends.ModelBackend")
    page = client.get(reverse("invitation-accept", args=[link]))
    assert "Join Acme" in page.content.decode()
    response = client.post(reverse("invitation-accept", args=[link]))
    assert response.status_code == 302
    assert Membership.objects.get(user=invitee, organization=owner.organization).role == Role.NETWORK_ENGINEER
    # The dashboard now works in the joined org.
    assert "Acme" in client.get(reverse("home")).content.decode()

    again = client.post(reverse("invitation-accept", args=[link]))
    assert again.status_code == 409
    assert "already been used" in again.content.decode()


def test_members_page_invites_through_the_form(owner, logged_in, django_capture_on_commit_callbacks):
    client = logged_in(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("members"), {"email": "Friend@Example.com", "role": Role.VIEWER}, follow=True)
    assert "Invitation sent to friend@example.com" in response.content.decode()
    assert "friend@example.com" in response.content.decode()
    assert mail.outbox[0].to == ["friend@example.com"]


def test_inviting_an_existing_member_is_refused(owner, logged_in):
    response = logged_in(owner).post(reverse("members"), {"email": owner.user.email, "role": Role.VIEWER})
    assert response.status_code == 400
    assert "already a member" in response.content.decode()


@pytest.mark.parametrize(
    ("mutate", "status", "message"),
    [
        (
            lambda inv: Invitation.objects.filter(pk=inv.pk).update(expires_at=timezone.now() - timedelta(minutes=1)),
            409,
            "expired",
        ),
        (lambda inv: Invitation.objects.filter(pk=inv.pk).update(revoked_at=timezone.now()), 409, "withdrawn"),
    ],
)
def test_expired_or_withdrawn_invitations_cannot_be_used(
    owner, client, mutate, status, message, django_capture_on_commit_callbacks
):
    invitation = _invite(owner, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    mutate(invitation)
    invitee = UserFactory(email="new@example.com")
    client.force_login(invitee, backend="django.contrib.auth.backends.ModelBackend")
    response = client.post(reverse("invitation-accept", args=[invitation_token(invitation)]))
    assert response.status_code == status
    assert message in response.content.decode()
    assert not Membership.objects.filter(user=invitee).exists()


def test_a_tampered_link_is_not_valid(client):
    response = client.get(reverse("invitation-accept", args=["not-a-real-token"]))
    assert response.status_code == 404
    assert "not valid" in response.content.decode()


def test_an_invitation_is_for_the_invited_address_only(owner, django_capture_on_commit_callbacks):
    invitation = _invite(owner, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    with pytest.raises(PermissionDenied, match=r"was sent to new@example\.com"):
        invitation_accept(raw_token=invitation_token(invitation), user=UserFactory(email="someone@example.com"))


def test_inviting_again_replaces_the_open_invitation(owner, django_capture_on_commit_callbacks):
    first = _invite(owner, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    second = _invite(owner, role=Role.ADMIN, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    first.refresh_from_db()
    assert first.revoked_at is not None
    assert second.is_open


def test_the_last_owner_can_be_neither_demoted_nor_removed(owner, member_factory):
    admin = member_factory(Role.ADMIN)
    with pytest.raises(Conflict, match="last owner"):
        membership_change_role(membership=owner, actor_membership=owner, role=Role.ADMIN)
    with pytest.raises(Conflict, match="last owner"):
        membership_remove(membership=owner, actor_membership=owner)
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    # With a second owner, the first may step down.
    membership_change_role(membership=admin, actor_membership=owner, role=Role.OWNER)
    membership_change_role(membership=owner, actor_membership=owner, role=Role.VIEWER)
    owner.refresh_from_db()
    assert owner.role == Role.VIEWER


def test_admins_cannot_grant_or_take_ownership(owner, member_factory):
    admin = member_factory(Role.ADMIN)
    viewer = member_factory(Role.VIEWER)
    with pytest.raises(PermissionDenied):
        membership_change_role(membership=viewer, actor_membership=admin, role=Role.OWNER)
    with pytest.raises(PermissionDenied):
        membership_change_role(membership=owner, actor_membership=admin, role=Role.VIEWER)
    membership_change_role(membership=viewer, actor_membership=admin, role=Role.NETWORK_ENGINEER)
    viewer.refresh_from_db()
    assert viewer.role == Role.NETWORK_ENGINEER


def test_role_change_through_the_page_is_audited(owner, member_factory, logged_in):
    viewer = member_factory(Role.VIEWER)
    client = logged_in(owner)
    response = client.post(
        reverse("member-role", args=[viewer.user.public_id]), {"role": Role.SECURITY_ANALYST}, follow=True
    )
    assert "is now Security analyst" in response.content.decode()
    event = AuditEvent.objects.get(action="membership.role_change")
    assert (event.before, event.after, event.actor_id) == (
        {"role": "VIEWER"},
        {"role": "SECURITY_ANALYST"},
        owner.user_id,
    )


def test_role_change_with_htmx_returns_the_row(owner, member_factory, logged_in):
    viewer = member_factory(Role.VIEWER)
    response = logged_in(owner).post(
        reverse("member-role", args=[viewer.user.public_id]), {"role": Role.ADMIN}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert body.lstrip().startswith(f'<tr id="member-{viewer.user.public_id}"')
    assert 'value="ADMIN" selected' in body


def test_demoting_the_last_owner_through_the_page_shows_why(owner, logged_in):
    response = logged_in(owner).post(
        reverse("member-role", args=[owner.user.public_id]), {"role": Role.VIEWER}, follow=True
    )
    assert "The last owner cannot be demoted" in response.content.decode()


def test_removing_a_member_revokes_their_tokens(owner, member_factory, logged_in):
    engineer = member_factory(Role.NETWORK_ENGINEER)
    token, _ = api_token_create(membership=engineer, name="eng", scopes=["read"])
    response = logged_in(owner).post(reverse("member-remove", args=[engineer.user.public_id]), follow=True)
    assert "Removed" in response.content.decode()
    assert not Membership.objects.filter(pk=engineer.pk).exists()
    assert APIToken.objects.get(pk=token.pk).revoked_at is not None


def test_a_member_may_leave(owner, member_factory, logged_in):
    viewer = member_factory(Role.VIEWER)
    response = logged_in(viewer).post(reverse("member-remove", args=[viewer.user.public_id]))
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=viewer.pk).exists()


def test_a_viewer_cannot_remove_others(owner, member_factory, logged_in):
    viewer = member_factory(Role.VIEWER)
    response = logged_in(viewer).post(reverse("member-remove", args=[owner.user.public_id]), follow=True)
    assert "does not allow" in response.content.decode()
    assert Membership.objects.filter(pk=owner.pk).exists()
