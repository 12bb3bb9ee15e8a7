import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from fabric.models import Metro
from hub.models import Membership, User

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "HUB_MODE": "production",
    "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-for-tests-only-0123456789",
    "ALLOWED_HOSTS": "hub.example.com",
    "DATABASE_URL": "sqlite:///" + str(ROOT / "var" / "deploy-check.sqlite3"),
}


def _manage(*args, env):
    clean = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "HUB_MODE", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_mode_refuses_the_default_secret():
    result = _manage("check", env={"HUB_MODE": "production"})
    assert result.returncode != 0
    assert "HUB_MODE=production needs SECRET_KEY" in result.stderr


def test_production_settings_pass_check_deploy_without_warnings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_email_url_configures_the_default_mailer_without_deprecated_settings():
    """An operator's EMAIL_URL reaches the SMTP backend; no deprecated EMAIL_* setting is defined."""
    script = (
        "import warnings; warnings.simplefilter('error');"
        "from django.core import mail;"
        "m = mail.mailers.default;"
        "print(type(m).__name__, m.host, m.port, m.username, m.password, m.use_tls)"
    )
    result = _manage(
        "shell",
        "--no-imports",
        "-c",
        script,
        env={**PRODUCTION_ENV, "EMAIL_URL": "smtp+tls://ops:s%40cret@smtp.example.com:587"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["EmailBackend", "smtp.example.com", "587", "ops", "s@cret", "True"]


@pytest.mark.django_db
def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz_is_503_when_the_broker_is_down(client, monkeypatch):
    from hub.celery import app

    unreachable = "redis://127.0.0.1:1/0"
    previous = app.conf.broker_url
    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", unreachable)
    app.conf.broker_url = unreachable
    try:
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = previous
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("error")


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_creates_the_documented_identities(monkeypatch):
    call_command("seed_demo", stdout=StringIO())
    monkeypatch.setenv("HUB_PORT", "8123")
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert Metro.objects.count() == 79
    expected = {
        "owner@acme.example": ("acme", "OWNER"),
        "owner@globex.example": ("globex", "OWNER"),
        "admin@demo-provider.example": ("demo-provider", "ADMIN"),
    }
    for email, (slug, role) in expected.items():
        membership = Membership.objects.get(user__email=email)
        assert (membership.organization.slug, membership.role) == (slug, role)
        assert membership.user.check_password("interconnect-demo")
    assert User.objects.get(email="ops@hub.example").is_staff
    assert User.objects.filter(email="owner@acme.example").count() == 1
    assert "interconnect-demo" in out.getvalue()
    assert "http://127.0.0.1:8123/" in out.getvalue(), "the address printed is the one make demo serves"


@pytest.mark.django_db
def test_error_pages_are_friendly(client, owner, logged_in):
    response = logged_in(owner).get("/no/such/page/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()


@pytest.mark.django_db
def test_pages_send_a_strict_csp_and_load_no_third_party_assets(owner, logged_in):
    response = logged_in(owner).get("/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in csp
    assert "unsafe-eval" not in csp
    body = response.content.decode()
    assert "https://" not in body.replace("https://evil", "")  # no CDN links anywhere
    assert "/static/django_htmx/htmx-2" in body


def test_the_openapi_schema_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/api/v1/connections/{public_id}/approve/" in out.read_text()
