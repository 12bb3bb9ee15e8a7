"""Tenant-isolation cases of topology (merged into MATRIX by tests/api/test_isolation.py).

The topology pages and API name no object in their URLs: another organization gets its own (empty
or unrelated) network with 200, and the body must not carry org A's port or connection names, which
``test_another_organization_sees_nothing`` checks for every case.
"""

from hub.roles import Action
from tests.api.isolation import API, PORTAL, Case, _r

CASES: dict[str, Case] = {
    "fabric:topology": Case(PORTAL, _r("fabric:topology"), action=Action.FABRIC_VIEW),
    "fabric:topology [table]": Case(
        PORTAL, lambda w: _r("fabric:topology")(w) + "?part=table", action=Action.FABRIC_VIEW
    ),
    "fabric:topology-logical": Case(PORTAL, _r("fabric:topology-logical"), action=Action.FABRIC_VIEW),
    "topology": Case(API, _r("topology"), action=Action.FABRIC_VIEW),
    "topology [graphml]": Case(API, lambda w: _r("topology")(w) + "?format=graphml", action=Action.FABRIC_VIEW),
}
