"""Tenant-isolation cases of marketplace portal (merged into MATRIX by tests/api/test_isolation.py)."""

from hub.roles import Action
from marketplace.models import Order
from tests.api.isolation import PORTAL, Case, _draft, _r


def _published(w):
    return w.offering_published.public_id


def _order_data(w):
    return {
        "a_port": str(w.port_a.public_id),
        "access_point": str(w.access_point.public_id),
        "bandwidth_mbps": "1000",
    }


CASES: dict[str, Case] = {
    "marketplace:catalog": Case(PORTAL, _r("marketplace:catalog"), action=Action.MARKETPLACE_VIEW),
    "marketplace:offering-detail": Case(
        PORTAL, _r("marketplace:offering-detail", offering_id=_draft), action=Action.MARKETPLACE_VIEW, names_object=True
    ),
    "marketplace:compare": Case(
        PORTAL, lambda w: f"{_r('marketplace:compare')(w)}?ids={_published(w)}", action=Action.MARKETPLACE_VIEW
    ),
    "marketplace:order-create": Case(
        PORTAL, _r("marketplace:order-create", offering_id=_published), action=Action.MARKETPLACE_ORDER
    ),
    "marketplace:order-create [post]": Case(
        PORTAL,
        _r("marketplace:order-create", offering_id=_published),
        "post",
        Action.MARKETPLACE_ORDER,
        names_object=True,  # it names org A's port
        data=_order_data,
    ),
    "marketplace:order-list": Case(PORTAL, _r("marketplace:order-list"), action=Action.MARKETPLACE_VIEW),
}


def extend_world(world) -> None:
    """The marketplace portal's URLs name only objects the shared world already has."""


def assert_untouched(world, *, created_by_a: bool) -> None:
    """A refused order leaves org A with its one order."""
    assert Order.objects.filter(organization=world.owner_a.organization).count() == 1
