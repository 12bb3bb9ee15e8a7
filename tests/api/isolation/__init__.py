"""Shared pieces of the tenant-isolation matrix (``tests/api/test_isolation.py``).

Each area of the product keeps its cases in its own module in this package (``CASES``), and may
add objects of org A to the world (``extend_world``) and say what must stay untouched
(``assert_untouched``). ``test_isolation.py`` merges them; a URL pattern in no module fails the run.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse

from fabric.models import Connection, Port
from hub.models import APIToken, Invitation, Membership, Notification, Webhook, WebhookDelivery
from hub.roles import Action
from marketplace.models import AccessPoint, Offering, Order

PORTAL, API, PUBLIC = "portal", "api", "public"


@dataclass
class World:
    owner_a: Membership
    viewer_a: Membership
    owner_b: Membership
    token_a: APIToken
    invitation_a: Invitation
    port_a: Port
    connection_a: Connection
    provider_port: Port
    webhook_a: Webhook | None = None
    delivery_a: WebhookDelivery | None = None
    notification_a: Notification | None = None
    offering_draft: Offering | None = None  # the provider's: no other organization may see or change it
    offering_published: Offering | None = None
    access_point: AccessPoint | None = None
    order_a: Order | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # objects added by area modules


@dataclass(frozen=True)
class Case:
    kind: str
    url: Callable[[World], str]
    method: str = "get"
    action: Action | None = None  # None: any member may
    names_object: bool = False  # the URL names an object of org A: another org gets 404
    data: Callable[[World], dict] | None = None


def _port(w):
    return w.port_a.public_id


def _conn(w):
    return w.connection_a.public_id


def _r(name, **kwargs):
    return lambda w: reverse(name, kwargs={k: v(w) for k, v in kwargs.items()})


def _hook(w):
    return w.webhook_a.public_id


def _delivery(w):
    return w.delivery_a.public_id


def _notification(w):
    return w.notification_a.public_id


def _draft(w):
    return w.offering_draft.public_id
