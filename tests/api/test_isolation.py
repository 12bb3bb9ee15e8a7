"""Tenant-isolation matrix: every URL pattern, as anonymous, as a member of another organization,
and as a member whose role is too small. A URL pattern missing from ``MATRIX`` fails the run, so a
new endpoint cannot ship without saying who may use it.

Keys are URL pattern names; a pattern with more than one method adds keys like ``"port-list [post]"``.
The cases of the hub, fabric and marketplace API are below; each later area keeps its own in a module
of ``tests/api/isolation/`` (listed in ``AREAS``).
"""

import importlib

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from fabric.choices import PortState
from fabric.models import Connection, Metro, Port
from fabric.services import connection_request, metros_load
from hub.choices import DeliveryStatus, OrganizationKind, Role
from hub.events import publish
from hub.models import Membership, Notification, WebhookDelivery
from hub.roles import ROLE_ORDER, Action, roles_allowed
from hub.services import api_token_create, audit_record, invitation_token, webhook_create
from marketplace import services as market
from tests.api.isolation import (
    API,
    PORTAL,
    PUBLIC,
    Case,
    World,
    _conn,
    _delivery,
    _draft,
    _hook,
    _notification,
    _port,
    _r,
)
from tests.factories import InvitationFactory, MembershipFactory, OrganizationFactory

# Modules of tests/api/isolation/ with their own CASES (and optionally extend_world, assert_untouched).
AREA_NAMES = ["marketplace_portal", "provider_console", "telemetry", "topology", "security"]
AREAS = [importlib.import_module(f"tests.api.isolation.{name}") for name in AREA_NAMES]


def _offering_data(w):
    return {
        "provider": "provider",
        "category": "GPU_CLOUD",
        "name": "matrix offering",
        "price_amount": "1.00",
        "price_unit": "HOUR",
        "attributes": {"accelerator": "H100", "gpu_count": 1, "gpu_memory_gb": 80},
    }


def _webhook_data(w):
    return {"url": "http://127.0.0.1:9/matrix", "event_types": ["port.state_changed"], "description": "matrix"}


MATRIX: dict[str, Case] = {
    # Portal
    "home": Case(PORTAL, _r("home")),
    "settings": Case(PORTAL, _r("settings")),
    "members": Case(PORTAL, _r("members"), action=Action.MEMBERS_VIEW),
    "member-role": Case(
        PORTAL,
        _r("member-role", user_id=lambda w: w.viewer_a.user.public_id),
        "post",
        Action.MEMBERS_MANAGE,
        True,
        data=lambda w: {"role": Role.ADMIN},
    ),
    "member-remove": Case(
        PORTAL, _r("member-remove", user_id=lambda w: w.owner_a.user.public_id), "post", Action.MEMBERS_VIEW, True
    ),
    "invitation-revoke": Case(
        PORTAL,
        _r("invitation-revoke", invitation_id=lambda w: w.invitation_a.public_id),
        "post",
        Action.MEMBERS_MANAGE,
        True,
    ),
    "tokens": Case(PORTAL, _r("tokens"), action=Action.TOKENS_USE),
    "token-revoke": Case(
        PORTAL, _r("token-revoke", token_id=lambda w: w.token_a.public_id), "post", Action.TOKENS_USE, True
    ),
    "audit-log": Case(PORTAL, _r("audit-log"), action=Action.AUDIT_VIEW),
    "audit-export": Case(PORTAL, _r("audit-export"), action=Action.AUDIT_VIEW),
    "org-create": Case(PORTAL, _r("org-create")),
    "org-switch": Case(
        PORTAL, _r("org-switch"), "post", names_object=True, data=lambda w: {"org": w.owner_a.organization.public_id}
    ),
    "fabric:metro-list": Case(PORTAL, _r("fabric:metro-list"), action=Action.FABRIC_VIEW),
    "fabric:metro-detail": Case(PORTAL, _r("fabric:metro-detail", code=lambda w: "FR"), action=Action.FABRIC_VIEW),
    "fabric:port-list": Case(PORTAL, _r("fabric:port-list"), action=Action.FABRIC_VIEW),
    "fabric:port-order": Case(PORTAL, _r("fabric:port-order"), action=Action.FABRIC_MANAGE),
    "fabric:port-order [post]": Case(
        PORTAL,
        _r("fabric:port-order"),
        "post",
        Action.FABRIC_MANAGE,
        data=lambda w: {"name": "p", "metro": "FR", "speed_mbps": 1000},
    ),
    "fabric:port-detail": Case(
        PORTAL, _r("fabric:port-detail", port_id=_port), action=Action.FABRIC_VIEW, names_object=True
    ),
    "fabric:port-detail [post]": Case(
        PORTAL,
        _r("fabric:port-detail", port_id=_port),
        "post",
        Action.FABRIC_MANAGE,
        True,
        data=lambda w: {"decommission": "1"},
    ),
    "fabric:connection-list": Case(PORTAL, _r("fabric:connection-list"), action=Action.FABRIC_VIEW),
    "fabric:connection-request": Case(PORTAL, _r("fabric:connection-request"), action=Action.FABRIC_MANAGE),
    "fabric:connection-detail": Case(
        PORTAL, _r("fabric:connection-detail", connection_id=_conn), action=Action.FABRIC_VIEW, names_object=True
    ),
    "fabric:connection-action": Case(
        PORTAL,
        _r("fabric:connection-action", connection_id=_conn, verb=lambda w: "deprovision"),
        "post",
        Action.FABRIC_MANAGE,
        True,
    ),
    "fabric:incoming-requests": Case(PORTAL, _r("fabric:incoming-requests"), action=Action.FABRIC_VIEW),
    "webhooks:list": Case(PORTAL, _r("webhooks:list"), action=Action.WEBHOOKS_MANAGE),
    "webhooks:list [post]": Case(
        PORTAL,
        _r("webhooks:list"),
        "post",
        Action.WEBHOOKS_MANAGE,
        data=lambda w: {**_webhook_data(w), "is_active": "on"},
    ),
    "webhooks:detail": Case(
        PORTAL, _r("webhooks:detail", webhook_id=_hook), action=Action.WEBHOOKS_MANAGE, names_object=True
    ),
    "webhooks:detail [post]": Case(
        PORTAL,
        _r("webhooks:detail", webhook_id=_hook),
        "post",
        Action.WEBHOOKS_MANAGE,
        True,
        data=lambda w: {**_webhook_data(w), "is_active": "on"},
    ),
    "webhooks:rotate-secret": Case(
        PORTAL, _r("webhooks:rotate-secret", webhook_id=_hook), "post", Action.WEBHOOKS_MANAGE, True
    ),
    "webhooks:delete": Case(PORTAL, _r("webhooks:delete", webhook_id=_hook), "post", Action.WEBHOOKS_MANAGE, True),
    "webhooks:test": Case(PORTAL, _r("webhooks:test", webhook_id=_hook), "post", Action.WEBHOOKS_MANAGE, True),
    "webhooks:redeliver": Case(
        PORTAL,
        _r("webhooks:redeliver", webhook_id=_hook, delivery_id=_delivery),
        "post",
        Action.WEBHOOKS_MANAGE,
        True,
    ),
    "notifications:list": Case(PORTAL, _r("notifications:list")),
    "notifications:read": Case(
        PORTAL, _r("notifications:read", notification_id=_notification), "post", names_object=True
    ),
    "notifications:read-all": Case(PORTAL, _r("notifications:read-all"), "post"),
    "password_change": Case(PORTAL, _r("password_change")),
    "password_change_done": Case(PORTAL, _r("password_change_done")),
    # API
    "me": Case(API, _r("me")),
    "token-list": Case(API, _r("token-list"), action=Action.TOKENS_USE),
    "token-detail": Case(
        API, _r("token-detail", public_id=lambda w: w.token_a.public_id), action=Action.TOKENS_USE, names_object=True
    ),
    "audit-event-list": Case(API, _r("audit-event-list"), action=Action.AUDIT_VIEW),
    "audit-event-detail": Case(
        API, lambda w: reverse("audit-event-detail", args=[_audit_id(w)]), action=Action.AUDIT_VIEW, names_object=True
    ),
    "metro-list": Case(API, _r("metro-list"), action=Action.FABRIC_VIEW),
    "metro-detail": Case(API, _r("metro-detail", code=lambda w: "FR"), action=Action.FABRIC_VIEW),
    "metro-latency": Case(API, _r("metro-latency", code=lambda w: "FR"), action=Action.FABRIC_VIEW),
    "quote": Case(
        API,
        _r("quote"),
        "post",
        Action.FABRIC_VIEW,
        data=lambda w: {"a_metro": "FR", "z_metro": "NY", "bandwidth_mbps": 100},
    ),
    "port-list": Case(API, _r("port-list"), action=Action.FABRIC_VIEW),
    "port-list [post]": Case(
        API,
        _r("port-list"),
        "post",
        Action.FABRIC_MANAGE,
        data=lambda w: {"name": "p", "metro": "FR", "speed_mbps": 1000},
    ),
    "port-detail": Case(API, _r("port-detail", public_id=_port), action=Action.FABRIC_VIEW, names_object=True),
    "port-detail [delete]": Case(API, _r("port-detail", public_id=_port), "delete", Action.FABRIC_MANAGE, True),
    "connection-list": Case(API, _r("connection-list"), action=Action.FABRIC_VIEW),
    "connection-list [post]": Case(
        API,
        _r("connection-list"),
        "post",
        Action.FABRIC_MANAGE,
        data=lambda w: {
            "name": "c",
            "a_port": str(w.port_a.public_id),
            "z_port": str(w.provider_port.public_id),
            "bandwidth_mbps": 10,
        },
        names_object=True,  # it names org A's port
    ),
    "connection-detail": Case(
        API, _r("connection-detail", public_id=_conn), action=Action.FABRIC_VIEW, names_object=True
    ),
    "connection-detail [delete]": Case(
        API, _r("connection-detail", public_id=_conn), "delete", Action.FABRIC_MANAGE, True
    ),
    "connection-detail [patch]": Case(
        API,
        _r("connection-detail", public_id=_conn),
        "patch",
        Action.FABRIC_MANAGE,
        True,
        data=lambda w: {"bandwidth_mbps": 200},
    ),
    "connection-approve": Case(API, _r("connection-approve", public_id=_conn), "post", Action.FABRIC_MANAGE, True),
    "connection-reject": Case(
        API,
        _r("connection-reject", public_id=_conn),
        "post",
        Action.FABRIC_MANAGE,
        True,
        data=lambda w: {"reason": "no"},
    ),
    "connection-cancel": Case(API, _r("connection-cancel", public_id=_conn), "post", Action.FABRIC_MANAGE, True),
    "connection-retry": Case(API, _r("connection-retry", public_id=_conn), "post", Action.FABRIC_MANAGE, True),
    "connection-events": Case(
        API, _r("connection-events", public_id=_conn), action=Action.FABRIC_VIEW, names_object=True
    ),
    "connection-workflows": Case(
        API, _r("connection-workflows", public_id=_conn), action=Action.FABRIC_VIEW, names_object=True
    ),
    "provider-list": Case(API, _r("provider-list"), action=Action.MARKETPLACE_VIEW),
    "provider-detail": Case(API, _r("provider-detail", slug=lambda w: "provider"), action=Action.MARKETPLACE_VIEW),
    "offering-list": Case(API, _r("offering-list"), action=Action.MARKETPLACE_VIEW),
    "offering-list [post]": Case(
        API, _r("offering-list"), "post", Action.PROVIDER_MANAGE, True, data=_offering_data
    ),  # names the provider's profile
    "offering-facets": Case(API, _r("offering-facets"), action=Action.MARKETPLACE_VIEW),
    "offering-detail": Case(
        API, _r("offering-detail", public_id=_draft), action=Action.MARKETPLACE_VIEW, names_object=True
    ),
    "offering-detail [patch]": Case(
        API,
        _r("offering-detail", public_id=_draft),
        "patch",
        Action.PROVIDER_MANAGE,
        True,
        data=lambda w: {"name": "hijacked"},
    ),
    "offering-publish": Case(API, _r("offering-publish", public_id=_draft), "post", Action.PROVIDER_MANAGE, True),
    "offering-retire": Case(API, _r("offering-retire", public_id=_draft), "post", Action.PROVIDER_MANAGE, True),
    "offering-access-points": Case(
        API, _r("offering-access-points", public_id=_draft), action=Action.MARKETPLACE_VIEW, names_object=True
    ),
    "offering-access-points [post]": Case(
        API,
        _r("offering-access-points", public_id=_draft),
        "post",
        Action.PROVIDER_MANAGE,
        True,
        data=lambda w: {"port": str(w.provider_port.public_id), "allowed_bandwidths_mbps": [100]},
    ),
    "order-list": Case(API, _r("order-list"), action=Action.MARKETPLACE_VIEW),
    "order-list [post]": Case(
        API,
        _r("order-list"),
        "post",
        Action.MARKETPLACE_ORDER,
        data=lambda w: {
            "offering": str(w.offering_published.public_id),
            "access_point": str(w.access_point.public_id),
            "a_port": str(w.port_a.public_id),
            "bandwidth_mbps": 1000,
        },
        names_object=True,  # it names org A's port
    ),
    "order-detail": Case(
        API,
        _r("order-detail", public_id=lambda w: w.order_a.public_id),
        action=Action.MARKETPLACE_VIEW,
        names_object=True,
    ),
    "webhook-list": Case(API, _r("webhook-list"), action=Action.WEBHOOKS_MANAGE),
    "webhook-list [post]": Case(API, _r("webhook-list"), "post", Action.WEBHOOKS_MANAGE, data=_webhook_data),
    "webhook-event-types": Case(API, _r("webhook-event-types"), action=Action.WEBHOOKS_MANAGE),
    "webhook-detail": Case(
        API, _r("webhook-detail", public_id=_hook), action=Action.WEBHOOKS_MANAGE, names_object=True
    ),
    "webhook-detail [patch]": Case(
        API,
        _r("webhook-detail", public_id=_hook),
        "patch",
        Action.WEBHOOKS_MANAGE,
        True,
        data=lambda w: {"is_active": False},
    ),
    "webhook-detail [delete]": Case(API, _r("webhook-detail", public_id=_hook), "delete", Action.WEBHOOKS_MANAGE, True),
    "webhook-test": Case(API, _r("webhook-test", public_id=_hook), "post", Action.WEBHOOKS_MANAGE, True),
    "webhook-rotate-secret": Case(
        API, _r("webhook-rotate-secret", public_id=_hook), "post", Action.WEBHOOKS_MANAGE, True
    ),
    "webhook-deliveries": Case(
        API, _r("webhook-deliveries", public_id=_hook), action=Action.WEBHOOKS_MANAGE, names_object=True
    ),
    "webhook-redeliver": Case(
        API,
        _r("webhook-redeliver", public_id=_hook, delivery_id=_delivery),
        "post",
        Action.WEBHOOKS_MANAGE,
        True,
    ),
    "notification-list": Case(API, _r("notification-list")),
    "notification-detail": Case(API, _r("notification-detail", public_id=_notification), names_object=True),
    "notification-read": Case(API, _r("notification-read", public_id=_notification), "post", names_object=True),
    "notification-read-all": Case(API, _r("notification-read-all"), "post"),
    # Public: no organization needed
    "login": Case(PUBLIC, _r("login")),
    "logout": Case(PUBLIC, _r("logout"), "post"),
    "signup": Case(PUBLIC, _r("signup")),
    "password_reset": Case(PUBLIC, _r("password_reset")),
    "password_reset_done": Case(PUBLIC, _r("password_reset_done")),
    "password_reset_confirm": Case(
        PUBLIC, _r("password_reset_confirm", uidb64=lambda w: "MQ", token=lambda w: "set-password")
    ),
    "password_reset_complete": Case(PUBLIC, _r("password_reset_complete")),
    "invitation-accept": Case(PUBLIC, _r("invitation-accept", token=lambda w: invitation_token(w.invitation_a))),
    "schema": Case(PUBLIC, _r("schema")),
    "api-docs": Case(PUBLIC, _r("api-docs")),
    "api-not-found": Case(PUBLIC, lambda w: "/api/v1/no-such-thing/"),
    "healthz": Case(PUBLIC, _r("healthz")),
    "readyz": Case(PUBLIC, _r("readyz")),
}
for _area in AREAS:
    assert not set(_area.CASES) & set(MATRIX), f"{_area.__name__} repeats matrix keys"
    MATRIX.update(_area.CASES)

# Django's admin guards itself (staff only); it is checked once below rather than per pattern.
EXCLUDED_NAMESPACES = {"admin"}


def _audit_id(world: World) -> str:
    from hub.models import AuditEvent

    return str(AuditEvent.objects.filter(organization=world.owner_a.organization).first().public_id)


def _pattern_names(patterns=None, namespace="") -> set[str]:
    names = set()
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            if ns in EXCLUDED_NAMESPACES:
                continue
            prefix = f"{namespace}{ns}:" if ns else namespace
            names |= _pattern_names(entry.url_patterns, prefix)
        elif isinstance(entry, URLPattern) and entry.name:
            names.add(f"{namespace}{entry.name}")
    return names


def test_every_url_pattern_is_in_the_matrix():
    covered = {key.split(" ")[0] for key in MATRIX}
    missing = _pattern_names() - covered
    assert not missing, f"URL patterns without a tenant-isolation entry: {sorted(missing)}"
    stale = covered - _pattern_names()
    assert not stale, f"Matrix entries for URL patterns that no longer exist: {sorted(stale)}"


@pytest.fixture
def world(db, django_capture_on_commit_callbacks):
    org_a = OrganizationFactory(name="Alpha Org", slug="alpha")
    org_b = OrganizationFactory(name="Beta Org", slug="beta")
    owner_a = MembershipFactory(organization=org_a, role=Role.OWNER)
    viewer_a = MembershipFactory(organization=org_a, role=Role.VIEWER)
    owner_b = MembershipFactory(organization=org_b, role=Role.OWNER)
    token_a, _ = api_token_create(membership=owner_a, name="alpha-secret-token", scopes=["read", "write", "security"])
    invitation_a = InvitationFactory(organization=org_a, email="alpha-invitee@example.com")
    audit_record(org=org_a, actor=owner_a.user, action="alpha.secret-event", target=token_a)
    audit_record(org=org_b, actor=owner_b.user, action="beta.event")
    metros_load()
    fr, ny = Metro.objects.get(code="FR"), Metro.objects.get(code="NY")
    port_a = _active_port(org_a, fr, "alpha-secret-port")
    port_a2 = _active_port(org_a, ny, "alpha-second-port")
    provider = OrganizationFactory(name="Provider", slug="provider", kind=OrganizationKind.PROVIDER)
    provider_port = _active_port(provider, fr, "provider-port")
    with django_capture_on_commit_callbacks(execute=True):
        connection_a = connection_request(
            membership=owner_a, name="alpha-secret-connection", a_port=port_a, z_port=port_a2, bandwidth_mbps=100
        ).connections[0]
    # Created after the fabric callbacks ran: the delivery stays queued and is never sent.
    webhook_a, _ = webhook_create(
        membership=owner_a,
        url="http://127.0.0.1:9/alpha",
        event_types=["port.state_changed"],
        description="alpha-secret-webhook",
    )
    publish(org=org_a, event_type="port.state_changed", payload={"port": "alpha"}, title="alpha-secret-notification")
    delivery_a = WebhookDelivery.objects.get(webhook=webhook_a)
    WebhookDelivery.objects.filter(pk=delivery_a.pk).update(status=DeliveryStatus.FAILED, attempts=6)
    notification_a = Notification.objects.get(user=owner_a.user, title="alpha-secret-notification")
    offering_draft, offering_published, access_point, order_a = _marketplace(owner_a, port_a, provider, provider_port)
    world = World(
        owner_a,
        viewer_a,
        owner_b,
        token_a,
        invitation_a,
        port_a,
        connection_a,
        provider_port,
        webhook_a,
        delivery_a,
        notification_a,
        offering_draft,
        offering_published,
        access_point,
        order_a,
    )
    for area in AREAS:
        if hasattr(area, "extend_world"):
            area.extend_world(world)
    return world


def _marketplace(owner_a, port_a, provider, provider_port):
    """A provider profile with a draft and a published offering, and an order of org A."""
    seller = MembershipFactory(organization=provider, role=Role.OWNER)
    market.provider_profile_upsert(membership=seller, name="Provider", slug="provider")
    listing = {"category": "GPU_CLOUD", "price_amount": "2", "price_unit": "HOUR"}
    gpu = {"accelerator": "H100", "gpu_count": 1, "gpu_memory_gb": 80}
    draft = market.offering_create(membership=seller, name="Draft GPU", attributes=gpu, **listing)
    market.access_point_create(membership=seller, offering=draft, port=provider_port, allowed_bandwidths_mbps=[100])
    published = market.offering_create(membership=seller, name="Listed GPU", attributes=gpu, **listing)
    access_point = market.access_point_create(
        membership=seller, offering=published, port=provider_port, allowed_bandwidths_mbps=[100, 1000]
    )
    published = market.offering_publish(membership=seller, offering=published)
    order = market.order_create(
        membership=owner_a,
        offering=published,
        access_point=access_point,
        a_port=port_a,
        bandwidth_mbps=100,
    ).order
    return draft, published, access_point, order


def _active_port(org, metro, name):
    return Port.objects.create(
        organization=org, metro=metro, name=name, speed_mbps=10_000, capacity_mbps=10_000, state=PortState.ACTIVE
    )


def _request(client, case: Case, world: World):
    url = case.url(world)
    data = case.data(world) if case.data else {}
    if case.method == "get":
        return client.get(url)
    if case.kind == API:
        return getattr(client, case.method)(url, data, format="json")
    return getattr(client, case.method)(url, data)


def _portal_client(client, membership):
    client.force_login(membership.user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session["active_org_id"] = membership.organization_id
    session.save()
    return client


def _api_client(membership):
    _, secret = api_token_create(membership=membership, name="matrix", scopes=["read", "write", "security"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


PROTECTED = sorted(key for key, case in MATRIX.items() if case.kind != PUBLIC)


@pytest.mark.parametrize("name", PROTECTED)
def test_anonymous_is_refused(name, world, client):
    case = MATRIX[name]
    response = _request(APIClient() if case.kind == API else client, case, world)
    if case.kind == API:
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
    else:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    _assert_fabric_untouched(world)


@pytest.mark.parametrize("name", PROTECTED)
def test_another_organization_sees_nothing(name, world, client):
    case = MATRIX[name]
    api_or_portal = _api_client(world.owner_b) if case.kind == API else _portal_client(client, world.owner_b)
    response = _request(api_or_portal, case, world)
    if case.names_object:
        assert response.status_code == 404, response.content[:300]
        if case.kind == API:
            assert response.json()["error"]["code"] == "not_found"
    else:
        assert response.status_code in (200, 201, 302), response.content[:300]
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    body = raw.decode(errors="replace").lower()
    assert "alpha-secret-token" not in body
    assert "alpha.secret-event" not in body
    assert "alpha-invitee" not in body
    assert "alpha-secret-port" not in body
    assert "alpha-secret-connection" not in body
    # Nothing of org A was changed by the attempt.
    world.viewer_a.refresh_from_db()
    world.token_a.refresh_from_db()
    world.invitation_a.refresh_from_db()
    assert world.viewer_a.role == Role.VIEWER
    assert world.token_a.revoked_at is None
    assert world.invitation_a.revoked_at is None
    assert Membership.objects.filter(pk=world.owner_a.pk).exists()
    _assert_fabric_untouched(world, created_by_a=False)


def _assert_fabric_untouched(world, *, created_by_a=True):
    world.port_a.refresh_from_db()
    world.connection_a.refresh_from_db()
    assert world.port_a.state == PortState.ACTIVE
    assert (world.connection_a.state, world.connection_a.bandwidth_mbps) == ("ACTIVE", 100)
    org_a = world.owner_a.organization
    if created_by_a:
        assert not Port.objects.filter(name="p").exists()
    assert not Port.objects.filter(name="p", organization=org_a).exists()
    assert not Connection.objects.filter(name="c").exists()
    for area in AREAS:
        if hasattr(area, "assert_untouched"):
            area.assert_untouched(world, created_by_a=created_by_a)


def _too_small_role(action: Action) -> Role | None:
    allowed = set(roles_allowed(action))
    smaller = [role for role in ROLE_ORDER if role not in allowed]
    return smaller[0] if smaller else None


ROLE_LIMITED = sorted(name for name in PROTECTED if MATRIX[name].action and _too_small_role(MATRIX[name].action))


def test_role_limited_cases_are_not_empty():
    # Guard against the matrix silently losing its "too small a role" half.
    assert {"member-role", "invitation-revoke", "audit-log", "audit-event-list", "metro-list"} - set(ROLE_LIMITED) == {
        "metro-list"  # every member may read the fabric
    }


@pytest.mark.parametrize("name", ROLE_LIMITED)
def test_too_small_a_role_is_refused(name, world, client):
    case = MATRIX[name]
    role = _too_small_role(case.action)
    member = MembershipFactory(organization=world.owner_a.organization, role=role)
    api_or_portal = _api_client(member) if case.kind == API else _portal_client(client, member)
    response = _request(api_or_portal, case, world)
    assert response.status_code == 403, (role, response.content[:300])
    if case.kind == API:
        assert response.json()["error"]["code"] == "permission_denied"
    world.viewer_a.refresh_from_db()
    world.token_a.refresh_from_db()
    assert world.viewer_a.role == Role.VIEWER
    assert world.token_a.revoked_at is None


@pytest.mark.parametrize("name", sorted(name for name, case in MATRIX.items() if case.kind == PUBLIC))
def test_public_pages_answer_without_login(name, world, client):
    case = MATRIX[name]
    response = _request(client, case, world)
    expected = {"logout": 302, "api-not-found": 404}.get(name, 200)
    assert response.status_code == expected, response.content[:300]


def test_admin_is_for_staff_only(world, client):
    _portal_client(client, world.owner_a)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
