"""Connection guards: the extension point that lets higher apps (security policies) veto or
qualify a connection before it is created or its bandwidth raised.

``FABRIC_CONNECTION_GUARDS`` lists dotted paths of callables ``guard(request: GuardRequest) ->
list[Violation]``. A ``BLOCK`` violation stops the request with its reason; ``APPROVAL`` says who
must approve it: the new connection waits on its requester (``pending_on=REQUESTER``) until an
admin or owner of the requesting organization approves it; ``WARN`` is shown and recorded but lets
it through. A guard may carry an ``on_denied(request, violations)`` listener (see ``report_denied``).
"""

from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from django.conf import settings
from django.db.models import Sum
from django.db.models.functions import Coalesce, Greatest
from django.utils.module_loading import import_string


class Severity(StrEnum):
    BLOCK = "block"
    APPROVAL = "approval"
    WARN = "warn"


@dataclass(frozen=True)
class Violation:
    guard: str
    severity: Severity
    message: str

    def as_dict(self) -> dict:
        return {"guard": self.guard, "severity": str(self.severity), "message": self.message}


@dataclass(frozen=True)
class GuardRequest:
    organization: object
    actor: object
    a_port: object
    z_port: object
    bandwidth_mbps: int
    added_mbps: int  # the increase this request asks for (the full bandwidth when creating)
    connection: object = None  # set for a bandwidth change


@cache
def _guards(paths: tuple[str, ...]):
    return [import_string(path) for path in paths]


def run_guards(request: GuardRequest) -> list[Violation]:
    violations: list[Violation] = []
    for guard in _guards(tuple(settings.FABRIC_CONNECTION_GUARDS)):
        violations.extend(guard(request))
    return violations


def report_denied(request: GuardRequest, violations: list[Violation]) -> None:
    """Tell the guards that listen (a callable ``on_denied`` attribute) that fabric refused ``request``.

    Fabric calls this after the refused request's transaction rolled back, so what a listener
    records (an audit event, an alert) is not rolled back with it.
    """
    for guard in _guards(tuple(settings.FABRIC_CONNECTION_GUARDS)):
        listener = getattr(guard, "on_denied", None)
        if listener is not None:
            listener(request, violations)


def max_org_bandwidth(request: GuardRequest) -> list[Violation]:
    """Fabric's own guard: an organization's live connections may not exceed a total bandwidth."""
    from fabric.models import Connection

    limit = settings.FABRIC_MAX_ORG_BANDWIDTH_MBPS
    # A connection whose increase is still running has its new bandwidth reserved already.
    reserved = Greatest("bandwidth_mbps", Coalesce("requested_bandwidth_mbps", "bandwidth_mbps"))
    in_use = (
        Connection.objects.filter(organization=request.organization).live().aggregate(total=Sum(reserved))["total"] or 0
    )
    if in_use + request.added_mbps > limit:
        return [
            Violation(
                guard="max_org_bandwidth",
                severity=Severity.BLOCK,
                message=(
                    f"Your organization's connections would total {in_use + request.added_mbps:,} Mbps, above its limit "
                    f"of {limit:,} Mbps ({in_use:,} Mbps in use). Ask the operator to raise the limit."
                ),
            )
        ]
    return []
