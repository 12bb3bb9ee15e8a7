"""Shared fixtures: members in roles, API clients, a real Celery worker, Playwright on Debian's chromium.

Tests run on SQLite with eager tasks by default. With DATABASE_URL / CELERY_BROKER_URL / REDIS_URL
set they run against PostgreSQL, Redis and a real worker; REQUIRE_SERVICES=1 turns a missing
service into a failure of the whole run instead of a skip.
"""

import os
import shutil
import socket
import time
from urllib.parse import urlparse

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from hub.choices import OrganizationKind, Role
from hub.services import api_token_create
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

# Playwright runs an event loop in the test thread; Django's ORM calls from tests are still sync.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def _required_services():
    """With REQUIRE_SERVICES=1 the run must be on PostgreSQL and Redis; anything less fails it."""
    if not REQUIRE_SERVICES:
        return
    problems = []
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        problems.append("DATABASE_URL does not point at PostgreSQL")
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://") or not _reachable(broker):
        problems.append(f"CELERY_BROKER_URL ({broker}) is not a reachable Redis")
    if not settings.REDIS_URL or not _reachable(settings.REDIS_URL):
        problems.append("REDIS_URL is not set to a reachable Redis")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        problems.append(f"chromium not found at {CHROMIUM}")
    if problems:
        pytest.exit("REQUIRE_SERVICES=1 but: " + "; ".join(problems), returncode=3)


@pytest.fixture(scope="session", autouse=True)
def _eager_celery_by_default():
    """Unit tests run tasks in-process; the ``celery_worker`` fixture switches to a real worker."""
    from hub.celery import app

    previous = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(task_always_eager=previous[0], task_eager_propagates=previous[1])


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache

    cache.clear()
    return


# --- People and organizations ----------------------------------------------------------------
@pytest.fixture
def org():
    return OrganizationFactory(name="Acme", slug="acme-test")


@pytest.fixture
def other_org():
    return OrganizationFactory(name="Globex", slug="globex-test")


@pytest.fixture
def provider_org():
    return OrganizationFactory(name="GPU Cloud", slug="gpu-cloud", kind=OrganizationKind.PROVIDER)


@pytest.fixture
def member_factory(org):
    def make(role=Role.OWNER, organization=None, **user_kwargs):
        return MembershipFactory(organization=organization or org, role=role, user=UserFactory(**user_kwargs))

    return make


@pytest.fixture
def owner(member_factory):
    return member_factory(Role.OWNER)


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def token_client():
    """``token_client(membership, scopes)`` -> an APIClient sending a fresh bearer token."""

    def make(membership, scopes=("read", "write", "security")):
        _, secret = api_token_create(membership=membership, name="test", scopes=list(scopes))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        client.secret = secret
        return client

    return make


@pytest.fixture
def logged_in(client):
    """``logged_in(membership)`` -> the Django test client logged in, working in that org."""

    def make(membership):
        client.force_login(membership.user, backend="django.contrib.auth.backends.ModelBackend")
        session = client.session
        session["active_org_id"] = membership.organization_id
        session.save()
        return client

    return make


# --- A real Celery worker --------------------------------------------------------------------
@pytest.fixture
def celery_worker(transactional_db, worker_id):
    """A worker thread consuming a queue of its own on the configured broker (Redis in CI, the
    filesystem transport locally), with eager mode off so tasks really travel through the broker.
    Use with ``@pytest.mark.django_db(transaction=True)``."""
    from celery.contrib.testing.worker import start_worker
    from kombu import Queue

    from hub.celery import app

    queue = f"test-{worker_id}-{os.getpid()}"
    saved = {key: app.conf[key] for key in ("task_always_eager", "task_default_queue", "task_routes", "task_queues")}

    def forget_cached_queues():
        # Celery caches its queue list when the first task is sent; make it read ours (and back).
        app.amqp.__dict__.pop("queues", None)
        app.amqp.__dict__.pop("default_queue", None)

    app.conf.update(
        task_always_eager=False,
        task_default_queue=queue,
        task_routes={"*": {"queue": queue}},
        task_queues=[Queue(queue)],
    )
    forget_cached_queues()
    try:
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=10) as worker:
            yield worker
    finally:
        app.conf.update(saved)
        forget_cached_queues()
        if str(app.conf.broker_url).startswith("redis://"):
            with app.connection_for_write() as conn:
                conn.default_channel.queue_delete(queue)


def wait_for(predicate, timeout=20.0, interval=0.1):
    """Poll until ``predicate()`` is truthy; returns its value or fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")


# --- Playwright with Debian's chromium -------------------------------------------------------
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


@pytest.fixture(autouse=True)
def _deterministic_fabric(settings):
    """The simulated driver without delays or random failures; tests script failures explicitly."""
    from fabric.drivers.simulated import reset_scripted_failures

    settings.FABRIC_SIMULATED = {"step_delay_seconds": 0, "failure_rate": 0, "seed": 0, "fail_steps": {}}
    reset_scripted_failures()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness is for production; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
