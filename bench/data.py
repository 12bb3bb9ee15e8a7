"""Fast benchmark data: ``bulk_create`` in batches, one password hash for every user, no services.

Everything is named with a per-call tag (``bench-<tag>-...``), so helpers can be called any
number of times in one run. Services (audit, validation) are deliberately bypassed for speed; use
``hub.services`` when the benchmark is about the service itself. Call :func:`analyze` after a large
load so the database looks like a long-running one (statistics, visibility map).

    tenants = create_tenants(3, members=5, events=10_000)
    events = create_audit_events(tenants[0].org, 100_000, actors=tenants[0].users)
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.hashers import make_password
from django.db import connection
from django.utils import timezone

from hub.choices import OrganizationKind, Role, TokenScope
from hub.models import APIToken, AuditEvent, Membership, Organization, User
from hub.services import TOKEN_PREFIX

BENCH_PASSWORD = "bench-password-not-a-secret"  # noqa: S105 - benchmark users on a throwaway database
BATCH_SIZE = 5_000
_counter = itertools.count(1)

AUDIT_ACTIONS = [
    "auth.login",
    "token.create",
    "token.revoke",
    "membership.role_change",
    "invitation.create",
    "invitation.accept",
    "organization.update",
    "fabric.port.create",
    "fabric.connection.create",
    "security.policy.update",
]


def new_tag() -> str:
    """A short unique name part: run-unique (random) and call-unique (counter)."""
    return f"{secrets.token_hex(3)}{next(_counter)}"


@functools.cache
def password_hash() -> str:
    """One real hash of ``BENCH_PASSWORD``, shared by every generated user (hashing is slow on purpose)."""
    return make_password(BENCH_PASSWORD)


def _batched(items: Iterable, size: int = BATCH_SIZE) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# --- Identity and tenancy ---------------------------------------------------------------------
def create_organizations(
    n: int, *, kind: str = OrganizationKind.ENTERPRISE, tag: str | None = None
) -> list[Organization]:
    tag = tag or new_tag()
    return Organization.objects.bulk_create(
        Organization(name=f"Bench {tag} {i}", slug=f"bench-{tag}-{i}", kind=kind) for i in range(n)
    )


def create_users(n: int, *, tag: str | None = None) -> list[User]:
    tag = tag or new_tag()
    hashed = password_hash()
    return User.objects.bulk_create(
        User(email=f"bench-{tag}-{i}@bench.example", full_name=f"Bench User {i}", password=hashed) for i in range(n)
    )


def create_memberships(
    users: Iterable[User], orgs: Iterable[Organization], *, role: str = Role.VIEWER
) -> list[Membership]:
    """Every user joins every organization with ``role``."""
    orgs = list(orgs)
    return Membership.objects.bulk_create(
        (Membership(user=user, organization=org, role=role) for user in users for org in orgs), batch_size=BATCH_SIZE
    )


# --- API tokens ------------------------------------------------------------------------------
def _digest(secret: str) -> str:
    # Same scheme as hub.services.api_token_create (SHA-256 of the whole secret).
    return hashlib.sha256(secret.encode()).hexdigest()


def create_tokens(
    memberships: Iterable[Membership],
    *,
    per_member: int = 1,
    scopes: Sequence[str] = (TokenScope.READ,),
    name: str = "bench",
) -> list[tuple[APIToken, str]]:
    """Tokens usable as ``Authorization: Bearer <secret>``; returns ``(token, secret)`` pairs.

    No ``token.create`` audit events are written; use ``hub.services.api_token_create`` for that.
    """
    pairs: list[tuple[APIToken, str]] = []
    for membership in memberships:
        for i in range(per_member):
            prefix = secrets.token_hex(6)
            secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
            token = APIToken(
                organization_id=membership.organization_id,
                user_id=membership.user_id,
                name=f"{name} {i}",
                prefix=prefix,
                digest=_digest(secret),
                scopes=sorted(str(s) for s in scopes),
            )
            pairs.append((token, secret))
    APIToken.objects.bulk_create([token for token, _ in pairs], batch_size=BATCH_SIZE)
    return pairs


# --- Audit log --------------------------------------------------------------------------------
def create_audit_events(
    org: Organization | None,
    n: int,
    *,
    actors: Sequence[User] = (),
    tokens: Sequence[APIToken] = (),
    newest: datetime | None = None,
    spacing: timedelta = timedelta(seconds=15),
    token_every: int = 3,
) -> int:
    """``n`` varied events for ``org``, the newest at ``newest`` (default now), one every ``spacing``.

    Every ``token_every``-th event names one of ``tokens`` (API activity), the rest are portal events.
    """
    newest = newest or timezone.now()
    actors = list(actors) or [None]
    tokens = list(tokens)

    def events() -> Iterator[AuditEvent]:
        for i in range(n):
            actor = actors[i % len(actors)]
            action = AUDIT_ACTIONS[i % len(AUDIT_ACTIONS)]
            token = tokens[i % len(tokens)] if tokens and i % token_every == 0 else None
            yield AuditEvent(
                organization=org,
                actor=actor,
                actor_email=actor.email if actor else "",
                token=token,
                action=action,
                object_type="hub.APIToken" if action.startswith("token.") else "hub.Organization",
                object_id=str(uuid.uuid4()),
                object_repr=f"{action} #{i}",
                before={"state": "old", "n": i} if i % 2 else None,
                after={"state": "new", "n": i},
                request_id=uuid.uuid4().hex,
                ip_address=f"203.0.113.{i % 250 + 1}",
                created_at=newest - spacing * i,
            )

    for batch in _batched(events()):
        AuditEvent.objects.bulk_create(batch)
    return n


# --- Composite worlds -------------------------------------------------------------------------
@dataclass
class Tenant:
    org: Organization
    memberships: list[Membership]
    tokens: list[tuple[APIToken, str]] = field(default_factory=list)

    @property
    def users(self) -> list[User]:
        return [m.user for m in self.memberships]

    def secret(self, index: int = 0) -> str:
        return self.tokens[index][1]


def create_tenants(
    n: int,
    *,
    members: int = 3,
    role: str = Role.ADMIN,
    tokens_per_member: int = 1,
    scopes: Sequence[str] = (TokenScope.READ, TokenScope.WRITE, TokenScope.SECURITY),
    events: int = 0,
) -> list[Tenant]:
    """``n`` organizations, each with ``members`` users in ``role`` (the first one OWNER), tokens and events."""
    tag = new_tag()
    orgs = create_organizations(n, tag=tag)
    users = create_users(n * members, tag=tag)
    memberships = Membership.objects.bulk_create(
        Membership(user=users[o * members + m], organization=org, role=Role.OWNER if m == 0 else role)
        for o, org in enumerate(orgs)
        for m in range(members)
    )
    tenants = []
    for o, org in enumerate(orgs):
        own = memberships[o * members : (o + 1) * members]
        tokens = create_tokens(own, per_member=tokens_per_member, scopes=scopes) if tokens_per_member else []
        tenant = Tenant(org=org, memberships=own, tokens=tokens)
        if events:
            create_audit_events(org, events, actors=tenant.users, tokens=[t for t, _ in tokens])
        tenants.append(tenant)
    return tenants


def analyze() -> None:
    """Bring the database to a steady state after a bulk load, as a long-running one would be.

    PostgreSQL: ``VACUUM ANALYZE`` (what autovacuum does after large inserts): planner statistics,
    and a visibility map so index-only scans (``COUNT(*)``) need not visit the heap. Run it outside
    a transaction. SQLite: ``ANALYZE``.
    """
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
