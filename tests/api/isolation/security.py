"""Tenant-isolation cases of security (merged into MATRIX by tests/api/test_isolation.py)."""

from hub.roles import Action
from tests.api.isolation import API, PORTAL, Case, _r

# --- API ---------------------------------------------------------------------------------------


def _scan(w):
    return w.extra["security_scan_a"].public_id


def _profile(w):
    return w.extra["security_profile_a"].public_id


def _alert(w):
    return w.extra["security_alert_a"].public_id


def _scan_data(w):
    return {"contents": [{"kind": "prompt", "text": "What is the capital of France?"}]}


VIEW, MANAGE = Action.SECURITY_VIEW, Action.SECURITY_MANAGE

API_CASES: dict[str, Case] = {
    "security-scan-list": Case(API, _r("security-scan-list"), action=VIEW),
    "security-scan-list create": Case(API, _r("security-scan-list"), "post", action=MANAGE, data=_scan_data),
    "security-scan-batch": Case(
        API, _r("security-scan-batch"), "post", action=MANAGE, data=lambda w: {"items": [_scan_data(w)]}
    ),
    "security-scan-detail": Case(API, _r("security-scan-detail", public_id=_scan), action=VIEW, names_object=True),
    "security-profile-list": Case(API, _r("security-profile-list"), action=VIEW),
    "security-profile-list create": Case(
        API, _r("security-profile-list"), "post", action=MANAGE, data=lambda w: {"name": "strict-b"}
    ),
    "security-profile-detail": Case(
        API, _r("security-profile-detail", public_id=_profile), action=VIEW, names_object=True
    ),
    "security-profile-detail update": Case(
        API,
        _r("security-profile-detail", public_id=_profile),
        "patch",
        action=MANAGE,
        names_object=True,
        data=lambda w: {"name": "renamed"},
    ),
    "security-profile-detail delete": Case(
        API, _r("security-profile-detail", public_id=_profile), "delete", action=MANAGE, names_object=True
    ),
    "security-policy": Case(API, _r("security-policy"), action=VIEW),
    "security-policy update": Case(
        API, _r("security-policy"), "patch", action=MANAGE, data=lambda w: {"approval_bandwidth_mbps": 5000}
    ),
    "security-summary": Case(API, _r("security-summary"), action=VIEW),
    "security-alert-list": Case(API, _r("security-alert-list"), action=VIEW),
    "security-alert-detail": Case(API, _r("security-alert-detail", public_id=_alert), action=VIEW, names_object=True),
    "security-alert-detail assign": Case(
        API,
        _r("security-alert-detail", public_id=_alert),
        "patch",
        action=MANAGE,
        names_object=True,
        data=lambda w: {"assignee": None},
    ),
    "security-alert-acknowledge": Case(
        API, _r("security-alert-acknowledge", public_id=_alert), "post", action=MANAGE, names_object=True
    ),
    "security-alert-resolve": Case(
        API, _r("security-alert-resolve", public_id=_alert), "post", action=MANAGE, names_object=True
    ),
    "security-alert-suppress": Case(
        API, _r("security-alert-suppress", public_id=_alert), "post", action=MANAGE, names_object=True
    ),
    "security-alert-notes": Case(
        API,
        _r("security-alert-notes", public_id=_alert),
        "post",
        action=MANAGE,
        names_object=True,
        data=lambda w: {"body": "note from elsewhere"},
    ),
    "security-alert-bulk": Case(
        API,
        _r("security-alert-bulk"),
        "post",
        action=MANAGE,
        names_object=True,  # the body names org A's alert
        data=lambda w: {"alerts": [str(_alert(w))], "action": "resolve"},
    ),
}


# --- Portal ------------------------------------------------------------------------------------
def _portal_profile_data(w):
    return {
        "name": "portal-b",
        "detectors": ["secrets"],
        "action_critical": "block",
        "action_high": "block",
        "action_medium": "alert",
        "action_low": "allow",
    }


PORTAL_CASES: dict[str, Case] = {
    "security:dashboard": Case(PORTAL, _r("security:dashboard"), action=VIEW),
    "security:dashboard-live": Case(PORTAL, _r("security:dashboard-live"), action=VIEW),
    "security:dashboard-export": Case(PORTAL, _r("security:dashboard-export"), action=VIEW),
    "security:alert-list": Case(PORTAL, _r("security:alert-list"), action=VIEW),
    "security:alert-bulk": Case(
        PORTAL,
        _r("security:alert-bulk"),
        "post",
        action=MANAGE,
        names_object=True,  # the form names org A's alert
        data=lambda w: {"alerts": [str(_alert(w))], "action": "resolve"},
    ),
    "security:alert-detail": Case(PORTAL, _r("security:alert-detail", alert_id=_alert), action=VIEW, names_object=True),
    "security:alert-action": Case(
        PORTAL,
        _r("security:alert-action", alert_id=_alert, verb=lambda w: "resolve"),
        "post",
        action=MANAGE,
        names_object=True,
    ),
    "security:playground": Case(PORTAL, _r("security:playground"), action=VIEW),
    "security:playground [post]": Case(
        PORTAL,
        _r("security:playground"),
        "post",
        action=MANAGE,
        data=lambda w: {"profile": "default", "kind": "prompt", "text": "What is the capital of France?"},
    ),
    "security:policy": Case(PORTAL, _r("security:policy"), action=VIEW),
    "security:policy [post]": Case(
        PORTAL, _r("security:policy"), "post", action=MANAGE, data=lambda w: {"approval_bandwidth_mbps": "5000"}
    ),
    "security:profile-list": Case(PORTAL, _r("security:profile-list"), action=VIEW),
    "security:profile-list [post]": Case(
        PORTAL, _r("security:profile-list"), "post", action=MANAGE, data=_portal_profile_data
    ),
    "security:profile-detail": Case(
        PORTAL, _r("security:profile-detail", profile_id=_profile), action=VIEW, names_object=True
    ),
    "security:profile-detail [post]": Case(
        PORTAL,
        _r("security:profile-detail", profile_id=_profile),
        "post",
        action=MANAGE,
        names_object=True,
        data=_portal_profile_data,
    ),
}

CASES: dict[str, Case] = {**API_CASES, **PORTAL_CASES}


def extend_world(world) -> None:
    """Add org A's objects this area's URLs name to ``world.extra``."""
    from security import services

    owner_a = world.owner_a
    org_a = owner_a.organization
    services.policy_update(membership=owner_a, approval_bandwidth_mbps=9000)
    services.profile_default(org=org_a)
    world.extra["security_profile_a"] = services.profile_create(membership=owner_a, name="alpha-secret-profile")
    scan = services.scan_run(
        membership=owner_a,
        request=services.ScanRequest(
            contents=[services.ScanContent(kind="prompt", text="hello")], app="alpha-secret-app"
        ),
    )
    world.extra["security_scan_a"] = scan
    alert, _ = services.alert_raise(
        org=org_a,
        category="prompt_injection",
        severity="HIGH",
        source="SCAN",
        dedup_key="alpha-secret-alert",
        title="alpha-secret-alert",
        evidence={},
        scan=scan,
    )
    world.extra["security_alert_a"] = alert


def assert_untouched(world, *, created_by_a: bool) -> None:
    """Fail if a refused request changed org A's objects of this area."""
    from security.models import Alert, Policy, ScanProfile

    org_a = world.owner_a.organization
    alert = Alert.objects.get(pk=world.extra["security_alert_a"].pk)
    assert (alert.status, alert.assignee_id, alert.notes.count()) == ("OPEN", None, 0)
    profile = ScanProfile.objects.filter(pk=world.extra["security_profile_a"].pk).first()
    assert profile is not None
    assert profile.name == "alpha-secret-profile"
    assert Policy.objects.get(organization=org_a).approval_bandwidth_mbps == 9000
    if not created_by_a:
        assert not ScanProfile.objects.filter(organization=org_a, name="strict-b").exists()
        assert not ScanProfile.objects.filter(organization=org_a, name="portal-b").exists()
