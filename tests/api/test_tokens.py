from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from hub.choices import Role
from hub.models import APIToken, AuditEvent
from hub.services import api_token_create

pytestmark = pytest.mark.django_db


def _bearer(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_token_from_the_command_works_for_me(owner):
    out = StringIO()
    call_command(
        "create_api_token",
        org=owner.organization.slug,
        user=owner.user.email,
        scopes="read,write",
        expires_days=30,
        stdout=out,
    )
    secret = out.getvalue().strip()
    assert secret.startswith("ihub_")
    response = _bearer(secret).get("/api/v1/me/")
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == owner.user.email
    assert body["organization"]["slug"] == owner.organization.slug
    assert body["role"] == Role.OWNER
    assert body["token"]["scopes"] == ["read", "write"]
    token = APIToken.objects.get(user=owner.user)
    assert token.digest != secret
    assert secret not in str(token.__dict__)
    assert token.last_used_at is not None


def test_command_refuses_a_non_member_and_unknown_scopes(owner, other_org):
    with pytest.raises(CommandError, match="not a member"):
        call_command("create_api_token", org=other_org.slug, user=owner.user.email, stdout=StringIO())
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command(
            "create_api_token",
            org=owner.organization.slug,
            user=owner.user.email,
            scopes="read,admin",
            stdout=StringIO(),
        )
    assert not APIToken.objects.exists()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer ihub_nope_nope", "not valid"),
        ("Bearer garbage", "malformed"),
        ("Bearer", "Authorization: Bearer"),
    ],
)
def test_unknown_or_malformed_tokens_get_401_in_the_envelope(header, message):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "authentication_failed"
    assert message in error["message"]
    assert error["request_id"] == response["X-Request-ID"]


def test_revoked_token_gets_401_and_the_attempt_is_audited(owner):
    token, secret = api_token_create(membership=owner, name="ci", scopes=["read"])
    client = _bearer(secret)
    assert client.get("/api/v1/me/").status_code == 200
    assert client.delete(f"/api/v1/tokens/{token.public_id}/").status_code == 403  # read-only token
    revoke = _bearer(api_token_create(membership=owner, name="admin", scopes=["read", "write"])[1])
    response = revoke.delete(f"/api/v1/tokens/{token.public_id}/")
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "The token has been revoked."
    assert AuditEvent.objects.filter(action="token.revoked_use", organization=owner.organization).exists()


def test_expired_token_gets_401(owner):
    token, secret = api_token_create(
        membership=owner, name="short", scopes=["read"], expires_at=timezone.now() + timedelta(hours=1)
    )
    APIToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _bearer(secret).get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "The token has expired."


def test_token_stops_working_when_its_user_leaves_the_org(owner, member_factory):
    engineer = member_factory(Role.NETWORK_ENGINEER)
    _, secret = api_token_create(membership=engineer, name="eng", scopes=["read"])
    engineer.delete()
    assert _bearer(secret).get("/api/v1/me/").status_code == 401


def test_read_token_cannot_write(owner):
    _, secret = api_token_create(membership=owner, name="ro", scopes=["read"])
    response = _bearer(secret).post("/api/v1/tokens/", {"name": "x", "scopes": ["read"]}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "This token lacks the scope(s): write."
    assert APIToken.objects.count() == 1


def test_security_scope_is_needed_for_security_actions(owner):
    from hub.api.permissions import HasOrgAction
    from hub.roles import Action

    token, _ = api_token_create(membership=owner, name="rw", scopes=["read", "write"])

    class View:
        required_action = Action.SECURITY_VIEW

    class Request:
        method = "GET"
        user = owner.user
        auth = token

        class _request:
            membership = owner

    assert HasOrgAction().has_permission(Request, View) is False


def test_token_of_one_org_sees_nothing_of_another(owner, other_org, member_factory):
    other_owner = member_factory(Role.OWNER, organization=other_org)
    api_token_create(membership=other_owner, name="globex-only", scopes=["read"])
    _, secret = api_token_create(membership=owner, name="acme", scopes=["read"])
    client = _bearer(secret)
    tokens = client.get("/api/v1/tokens/").json()
    assert [t["name"] for t in tokens["results"]] == ["acme"]
    events = client.get("/api/v1/audit-events/").json()["results"]
    assert events
    assert all(e["actor"] == owner.user.email for e in events)
    other_token = APIToken.objects.get(name="globex-only")
    assert client.get(f"/api/v1/tokens/{other_token.public_id}/").status_code == 404


def test_members_see_their_own_tokens_and_admins_see_all(owner, member_factory, token_client):
    engineer = member_factory(Role.NETWORK_ENGINEER)
    owner_token, _ = api_token_create(membership=owner, name="owner-token", scopes=["read"])
    eng_client = token_client(engineer, scopes=["read", "write"])
    names = {t["name"] for t in eng_client.get("/api/v1/tokens/").json()["results"]}
    assert names == {"test"}
    # Another member's token is not theirs to see or revoke.
    assert eng_client.get(f"/api/v1/tokens/{owner_token.public_id}/").status_code == 404
    assert eng_client.delete(f"/api/v1/tokens/{owner_token.public_id}/").status_code == 404
    owner_token.refresh_from_db()
    assert owner_token.revoked_at is None
    owner_names = {t["name"] for t in token_client(owner).get("/api/v1/tokens/").json()["results"]}
    assert {"owner-token", "test"} <= owner_names


def test_create_token_through_the_api_shows_the_secret_once(owner, token_client):
    client = token_client(owner)
    response = client.post("/api/v1/tokens/", {"name": "terraform", "scopes": ["read", "write"]}, format="json")
    assert response.status_code == 201
    secret = response.json()["secret"]
    assert _bearer(secret).get("/api/v1/me/").json()["token"]["name"] == "terraform"
    listed = client.get(f"/api/v1/tokens/{response.json()['id']}/").json()
    assert "secret" not in listed


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["root"]}, "scopes.0"),
        ({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ],
)
def test_bad_token_requests_get_field_errors(owner, token_client, payload, field):
    client = token_client(owner)
    response = client.post("/api/v1/tokens/", payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]
    assert APIToken.objects.count() == 1  # only the client's own token
