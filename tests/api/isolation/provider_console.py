"""Tenant-isolation cases of the provider console and the placement advisor (merged into MATRIX by
tests/api/test_isolation.py).

The console's objects belong to the world's provider organization ("provider"): its draft offering,
that offering's access point, and org A's order waiting for the provider's approval. Org B (an
enterprise) gets 404 for each of them, and is sent back to the dashboard (302) from the console's
other pages; org A's members with too small a role get 403 before anything else is looked at.
"""

from hub.roles import Action
from marketplace.choices import OfferingStatus
from marketplace.models import AccessPoint, Offering, ProviderProfile
from tests.api.isolation import API, PORTAL, Case, _draft, _r


def _draft_access_point(w):
    return w.extra["draft_access_point"].public_id


def _waiting_connection(w):
    return w.order_a.connection.public_id


def _offering_form(w):
    return {
        "category": "GPU_CLOUD",
        "name": "matrix console offering",
        "price_amount": "1",
        "price_unit": "HOUR",
        "currency": "USD",
        "attr_accelerator": "H100",
        "attr_gpu_count": "1",
        "attr_gpu_memory_gb": "80",
    }


def _hijack_form(w):
    return {**_offering_form(w), "name": "hijacked"}


def _advice(w):
    return {"category": "GPU_CLOUD", "data_metro": "FR", "accelerator": "H100"}


MANAGE = Action.PROVIDER_MANAGE

CASES: dict[str, Case] = {
    "console:dashboard": Case(PORTAL, _r("console:dashboard"), action=Action.MARKETPLACE_VIEW),
    "console:profile": Case(PORTAL, _r("console:profile"), action=Action.MARKETPLACE_VIEW),
    "console:profile [post]": Case(
        PORTAL, _r("console:profile"), "post", MANAGE, data=lambda w: {"name": "hijacked", "slug": "provider"}
    ),
    "console:offering-list": Case(PORTAL, _r("console:offering-list"), action=Action.MARKETPLACE_VIEW),
    "console:offering-create": Case(PORTAL, _r("console:offering-create"), action=MANAGE),
    "console:offering-create [post]": Case(PORTAL, _r("console:offering-create"), "post", MANAGE, data=_offering_form),
    "console:offering-detail": Case(
        PORTAL, _r("console:offering-detail", offering_id=_draft), action=Action.MARKETPLACE_VIEW, names_object=True
    ),
    "console:offering-edit": Case(
        PORTAL, _r("console:offering-edit", offering_id=_draft), action=MANAGE, names_object=True
    ),
    "console:offering-edit [post]": Case(
        PORTAL, _r("console:offering-edit", offering_id=_draft), "post", MANAGE, True, data=_hijack_form
    ),
    "console:offering-publish": Case(PORTAL, _r("console:offering-publish", offering_id=_draft), "post", MANAGE, True),
    "console:offering-retire": Case(PORTAL, _r("console:offering-retire", offering_id=_draft), "post", MANAGE, True),
    "console:access-point-add": Case(
        PORTAL,
        _r("console:access-point-add", offering_id=_draft),
        "post",
        MANAGE,
        True,
        data=lambda w: {
            "port": w.provider_port.public_id,
            "allowed_bandwidths_mbps": ["1000"],
            "approval_mode": "AUTOMATIC",
        },
    ),
    "console:access-point-remove": Case(
        PORTAL, _r("console:access-point-remove", access_point_id=_draft_access_point), "post", MANAGE, True
    ),
    "console:requests": Case(PORTAL, _r("console:requests"), action=Action.MARKETPLACE_VIEW),
    "console:request-approve": Case(
        PORTAL,
        _r("console:request-approve", connection_id=_waiting_connection),
        "post",
        MANAGE,
        True,
        data=lambda w: {"z_vlan": "333"},
    ),
    "console:request-reject": Case(
        PORTAL,
        _r("console:request-reject", connection_id=_waiting_connection),
        "post",
        MANAGE,
        True,
        data=lambda w: {"reason": "hijacked"},
    ),
    "console:customers": Case(PORTAL, _r("console:customers"), action=Action.MARKETPLACE_VIEW),
    # The placement advisor: every member of any organization may ask it.
    "marketplace:advisor": Case(PORTAL, _r("marketplace:advisor"), action=Action.MARKETPLACE_VIEW),
    "advisor": Case(API, _r("advisor"), "post", Action.MARKETPLACE_VIEW, data=_advice),
}


def extend_world(world) -> None:
    """The draft offering's access point (the other objects are already in the world)."""
    world.extra["draft_access_point"] = world.offering_draft.access_points.get()


def assert_untouched(world, *, created_by_a: bool) -> None:
    """Fail if a refused request changed the provider's listings, profile or the request waiting for it."""
    draft = Offering.objects.get(pk=world.offering_draft.pk)
    assert (draft.name, draft.status) == ("Draft GPU", OfferingStatus.DRAFT)
    assert AccessPoint.objects.filter(offering=draft).count() == 1
    assert not Offering.objects.filter(name="matrix console offering").exists()
    assert ProviderProfile.objects.get(slug="provider").name == "Provider"
    connection = world.order_a.connection
    connection.refresh_from_db()
    assert (connection.state, connection.z_vlan, connection.status_reason) == ("PENDING_APPROVAL", None, "")
