import pytest
from django.core import mail
from django.urls import reverse

from hub.choices import OrganizationKind, Role
from hub.models import AuditEvent, Membership, Organization, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SIGNUP = {
    "full_name": "Ada Lovelace",
    "email": "ada@example.com",
    "password": "analytical-engine-1843",
    "org_name": "Analytical",
}


def test_signup_creates_an_enterprise_org_owned_by_the_user_and_logs_in(client):
    response = client.post(reverse("signup"), SIGNUP)
    assert response.status_code == 302
    user = User.objects.get(email="ada@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.organization.kind == OrganizationKind.ENTERPRISE
    assert membership.organization.slug == "analytical"
    home = client.get(reverse("home"))
    assert "Analytical" in home.content.decode()
    assert AuditEvent.objects.filter(action="user.signup", organization=membership.organization).exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"email": "taken@example.com"}, "already exists"),
        ({"email": "TAKEN@example.com"}, "already exists"),
        ({"password": "password123"}, "too common"),
        ({"password": "short"}, "too short"),
        ({"password": "12345678901234"}, "entirely numeric"),
        ({"email": "not-an-email"}, "valid email"),
        ({"org_name": ""}, "required"),
    ],
)
def test_bad_signups_explain_themselves_and_write_nothing(client, changes, message):
    UserFactory(email="taken@example.com")
    users, orgs = User.objects.count(), Organization.objects.count()
    response = client.post(reverse("signup"), {**SIGNUP, **changes})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert (User.objects.count(), Organization.objects.count()) == (users, orgs)


def test_login_with_email_and_logout(client, owner, password):
    response = client.post(reverse("login"), {"username": owner.user.email.upper(), "password": password})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302


def test_wrong_password_is_explained(client, owner):
    response = client.post(reverse("login"), {"username": owner.user.email, "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct e-mail address and password" in response.content.decode()


def test_repeated_failed_logins_lock_the_account_out(client, owner, password, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(reverse("login"), {"username": owner.user.email, "password": "wrong"})
    response = client.post(reverse("login"), {"username": owner.user.email, "password": "wrong"})
    assert response.status_code == 429
    assert "Too many failed log-ins" in response.content.decode()
    # Even the right password is refused while locked.
    response = client.post(reverse("login"), {"username": owner.user.email, "password": password})
    assert response.status_code == 429
    assert client.get(reverse("home")).status_code == 302
    assert AuditEvent.objects.filter(action="auth.lockout", organization=owner.organization).exists()


def test_password_change(client, owner, password):
    client.force_login(owner.user, backend="django.contrib.auth.backends.ModelBackend")
    response = client.post(
        reverse("password_change"),
        {"old_password": password, "new_password1": "a-much-better-one-42", "new_password2": "a-much-better-one-42"},
    )
    assert response.status_code == 302
    owner.user.refresh_from_db()
    assert owner.user.check_password("a-much-better-one-42")


def test_password_reset_sends_a_working_link(client, owner):
    client.post(reverse("password_reset"), {"email": owner.user.email})
    assert len(mail.outbox) == 1
    link = next(line for line in mail.outbox[0].body.splitlines() if "/accounts/password/reset/" in line)
    path = link.split("://", 1)[1].split("/", 1)[1]
    response = client.get("/" + path, follow=True)
    assert response.status_code == 200
    form_url = response.redirect_chain[-1][0]
    response = client.post(form_url, {"new_password1": "reset-and-renewed-7", "new_password2": "reset-and-renewed-7"})
    assert response.status_code == 302
    owner.user.refresh_from_db()
    assert owner.user.check_password("reset-and-renewed-7")


def test_password_reset_for_an_unknown_address_reveals_nothing(client):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert mail.outbox == []
