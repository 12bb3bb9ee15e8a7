"""Writes of the security app: the policy, scan profiles, scans, alerts and incidents.

Every service is keyword-only and atomic, checks the member's role (``SECURITY_MANAGE`` for
writes) and writes an audit event. Scans never store content: findings keep redacted excerpts only.
"""

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from fabric.models import Connection, Metro, Port
from hub.errors import Conflict, DomainError, NotFound
from hub.events import publish
from hub.models import Membership, Organization, User
from hub.roles import Action
from hub.services import audit_changes, audit_record, require_action
from marketplace.choices import Category
from marketplace.models import ProviderProfile
from security import detectors, rollups
from security.choices import (
    ACTION_RANK,
    SEVERITY_RANK,
    UNRESOLVED_ALERT_STATUSES,
    AlertCategory,
    AlertSource,
    AlertStatus,
    ContentKind,
    IncidentStatus,
    ScanAction,
    Severity,
    Verdict,
    can_transition,
    category_label,
)
from security.events import ALERT_CREATED
from security.models import Alert, AlertNote, Incident, Policy, Scan, ScanProfile, default_severity_actions

DEFAULT_PROFILE_NAME = "default"
_UNSET = object()


# --- Policy ----------------------------------------------------------------------------------
def known_zones() -> list[str]:
    """The sovereignty zones of the fabric's metros: the only zones a policy may allow."""
    return sorted(set(Metro.objects.values_list("sovereignty_zone", flat=True)))


def _policy_snapshot(policy: Policy) -> dict:
    return {
        "allowed_zones": list(policy.allowed_zones),
        "blocked_categories": list(policy.blocked_categories),
        "blocked_providers": sorted(policy.blocked_providers.values_list("slug", flat=True)) if policy.pk else [],
        "approval_bandwidth_mbps": policy.approval_bandwidth_mbps,
    }


def _clean_zones(zones) -> list[str]:
    cleaned = sorted({str(zone).strip().upper() for zone in zones if str(zone).strip()})
    unknown = sorted(set(cleaned) - set(known_zones()))
    if unknown:
        raise DomainError(
            f"Unknown sovereignty zone(s): {', '.join(unknown)}. Known zones: {', '.join(known_zones())}.",
            field="allowed_zones",
        )
    return cleaned


def _clean_categories(categories) -> list[str]:
    cleaned = sorted({str(category).strip().upper() for category in categories if str(category).strip()})
    unknown = sorted(set(cleaned) - set(Category.values))
    if unknown:
        raise DomainError(
            f"Unknown categories: {', '.join(unknown)}. Known: {', '.join(Category.values)}.",
            field="blocked_categories",
        )
    return cleaned


@transaction.atomic
def policy_update(
    *,
    membership: Membership,
    allowed_zones=_UNSET,
    blocked_categories=_UNSET,
    blocked_providers=_UNSET,
    approval_bandwidth_mbps=_UNSET,
) -> Policy:
    """Change the organization's policy (created on first change). Only the given fields change;
    the audit event holds the fields that changed, before and after."""
    require_action(membership, Action.SECURITY_MANAGE)
    org = membership.organization
    policy, _ = Policy.objects.select_for_update().get_or_create(organization=org)
    before = _policy_snapshot(policy)
    if allowed_zones is not _UNSET:
        policy.allowed_zones = _clean_zones(allowed_zones)
    if blocked_categories is not _UNSET:
        policy.blocked_categories = _clean_categories(blocked_categories)
    if approval_bandwidth_mbps is not _UNSET:
        if approval_bandwidth_mbps is not None and approval_bandwidth_mbps <= 0:
            raise DomainError("The approval bandwidth is a positive number of Mbps.", field="approval_bandwidth_mbps")
        policy.approval_bandwidth_mbps = approval_bandwidth_mbps
    policy.updated_by = membership.user
    policy.save()
    if blocked_providers is not _UNSET:
        providers = list(blocked_providers)
        if any(not isinstance(provider, ProviderProfile) for provider in providers):
            raise DomainError("Blocked providers must be provider profiles.", field="blocked_providers")
        policy.blocked_providers.set(providers)
    after = _policy_snapshot(policy)
    if after != before:
        audit_changes(org=org, actor=membership.user, action="policy.update", target=policy, before=before, after=after)
    return policy


@transaction.atomic
def policy_denial_record(
    *,
    org_id: int,
    actor_id: int | None,
    a_port_id: int,
    z_port_id: int,
    bandwidth_mbps: int,
    connection_id: int | None,
    reasons: list[str],
) -> Alert:
    """Record a connection the policy refused: an audit event and a policy alert."""
    org = Organization.objects.get(pk=org_id)
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    ports = Port.objects.select_related("metro").in_bulk([a_port_id, z_port_id])
    a_port, z_port = ports[a_port_id], ports[z_port_id]
    connection = Connection.objects.filter(pk=connection_id).first() if connection_id else None
    evidence = {
        "reasons": reasons,
        "requested_by": actor.email if actor else "",
        "a_metro": a_port.metro.code,
        "z_metro": z_port.metro.code,
        "z_port": str(z_port.public_id),
        "bandwidth_mbps": bandwidth_mbps,
        "bandwidth_change": connection is not None,
    }
    audit_record(org=org, actor=actor, action="policy.deny", target=connection or z_port, after=evidence)
    alert, _ = alert_raise(
        org=org,
        category=AlertCategory.POLICY_DENIAL,
        severity=Severity.MEDIUM,
        source=AlertSource.POLICY,
        dedup_key=f"policy_denial:{z_port.public_id}",
        title=f"Connection to {z_port.metro.name} ({z_port.metro.code}) refused by policy",
        evidence=evidence,
        connection=connection,
    )
    return alert


# --- Scan profiles ---------------------------------------------------------------------------
_DOMAIN = re.compile(r"^(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
PROFILE_FIELDS = (
    "name",
    "description",
    "detectors",
    "thresholds",
    "severity_actions",
    "category_actions",
    "url_allow_domains",
    "url_block_domains",
    "is_default",
)


def _clean_detectors(names) -> list[str]:
    if not isinstance(names, (list, tuple)):
        raise DomainError("List the detectors to run.", field="detectors")
    unknown = sorted({str(name) for name in names} - set(detectors.DETECTORS))
    if unknown:
        raise DomainError(
            f"Unknown detector(s): {', '.join(unknown)}. Known: {', '.join(sorted(detectors.DETECTORS))}.",
            field="detectors",
        )
    return [name for name in detectors.DETECTORS if name in names]


def _clean_thresholds(thresholds) -> dict[str, float]:
    if not isinstance(thresholds, dict):
        raise DomainError("Thresholds map a detector to a score between 0 and 1.", field="thresholds")
    cleaned = {}
    for name, value in thresholds.items():
        if name not in detectors.DETECTORS:
            raise DomainError(f"Unknown detector {name!r} in thresholds.", field="thresholds")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise DomainError(f"The threshold of {name} must be a number between 0 and 1.", field="thresholds")
        cleaned[name] = float(value)
    return cleaned


def _clean_actions(mapping, *, field_name: str, keys: list[str] | None) -> dict[str, str]:
    if not isinstance(mapping, dict):
        raise DomainError("Map each key to block, alert or allow.", field=field_name)
    cleaned = {}
    for key, value in mapping.items():
        key = str(key).strip()
        if keys is not None:
            key = key.upper()
            if key not in keys:
                raise DomainError(f"Unknown severity {key!r}; use {', '.join(keys)}.", field=field_name)
        elif not key or len(key) > 60:
            raise DomainError("A category is 1 to 60 characters.", field=field_name)
        if value not in ScanAction.values:
            raise DomainError(f"The action for {key} must be block, alert or allow.", field=field_name)
        cleaned[key] = value
    return cleaned


def _clean_domains(domains, *, field_name: str) -> list[str]:
    if not isinstance(domains, (list, tuple)):
        raise DomainError("Give a list of domain names.", field=field_name)
    cleaned = []
    for domain in domains:
        name = str(domain).strip().lower().rstrip(".")
        if not _DOMAIN.match(name):
            raise DomainError(f"{domain!r} is not a domain name (e.g. example.com or *.example.com).", field=field_name)
        cleaned.append(name)
    return sorted(set(cleaned))


def _apply_profile_changes(profile: ScanProfile, changes: dict) -> None:
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise DomainError(f"Unknown profile field(s): {', '.join(sorted(unknown))}.")
    if "name" in changes:
        name = str(changes["name"]).strip()
        if not name or len(name) > 60:
            raise DomainError("Give the profile a name of at most 60 characters.", field="name")
        profile.name = name
    if "is_default" in changes:
        profile.is_default = bool(changes["is_default"])
    if "description" in changes:
        profile.description = str(changes["description"]).strip()[:300]
    if "detectors" in changes:
        profile.detectors = _clean_detectors(changes["detectors"])
    if "thresholds" in changes:
        profile.thresholds = _clean_thresholds(changes["thresholds"])
    if "severity_actions" in changes:
        actions = _clean_actions(changes["severity_actions"], field_name="severity_actions", keys=Severity.values)
        profile.severity_actions = {**default_severity_actions(), **actions}
    if "category_actions" in changes:
        profile.category_actions = _clean_actions(changes["category_actions"], field_name="category_actions", keys=None)
    for name in ("url_allow_domains", "url_block_domains"):
        if name in changes:
            setattr(profile, name, _clean_domains(changes[name], field_name=name))


def _profile_snapshot(profile: ScanProfile) -> dict:
    return {name: getattr(profile, name) for name in PROFILE_FIELDS}


def _name_taken(org, name: str, *, exclude_pk=None) -> bool:
    return ScanProfile.objects.for_org(org).filter(name=name).exclude(pk=exclude_pk).exists()


def _make_default(profile: ScanProfile) -> None:
    ScanProfile.objects.for_org(profile.organization).filter(is_default=True).exclude(pk=profile.pk).update(
        is_default=False
    )
    profiles_changed(profile.organization_id)


# The profiles a scan reads, kept in this process per organization by the name asked for ("" for
# the default). A scan's INSERT checks that the profile it used is still the one that name resolves
# to, unchanged (same id and ``updated_at``, which every save sets; still the default or still so
# named): a write in any process is seen by the next scan, and a scan whose profile changed reads
# the profiles again and scans again (scan_batch). Writes in this process forget the organization's
# entries at once (the signals below, _make_default). The cached instances are shared: read them,
# never change them.
_PROFILE_CACHE: dict[int, dict[str, ScanProfile]] = {}
_PROFILE_CACHE_MAX_ORGS = 10_000


def profiles_changed(org_id: int) -> None:
    """Forget the organization's cached profiles, now and again when the write commits."""

    def forget():
        _PROFILE_CACHE.pop(org_id, None)

    forget()
    transaction.on_commit(forget)


def _profile_changed(sender, instance, **kwargs):
    profiles_changed(instance.organization_id)


post_save.connect(_profile_changed, sender=ScanProfile, dispatch_uid="security.scan_profile_saved")
post_delete.connect(_profile_changed, sender=ScanProfile, dispatch_uid="security.scan_profile_deleted")


def _cached_profile(org: Organization, name: str, read) -> ScanProfile:
    """The profile ``read()`` returns (``name`` "" is the default one), from this process's cache
    when it holds it (the scan's INSERT checks it is still current)."""
    entry = _PROFILE_CACHE.get(org.pk)
    if entry is None:
        if len(_PROFILE_CACHE) >= _PROFILE_CACHE_MAX_ORGS:
            _PROFILE_CACHE.clear()
        entry = _PROFILE_CACHE[org.pk] = {}
    profile = entry.get(name)
    if profile is None:
        profile = read()
        if profile is not None and profile.organization_id == org.pk:
            entry[name] = profile
    return profile


def profile_default(*, org: Organization) -> ScanProfile:
    """The organization's default profile, created on first use (every detector, default actions)."""
    profile = ScanProfile.objects.for_org(org).filter(is_default=True).first()
    if profile is not None:
        return profile
    try:
        with transaction.atomic():
            name = DEFAULT_PROFILE_NAME
            if _name_taken(org, name):
                name = f"{DEFAULT_PROFILE_NAME}-{uuid.uuid4().hex[:6]}"
            return ScanProfile.objects.create(
                organization=org,
                name=name,
                description="All detectors; blocks high and critical findings, alerts on medium ones.",
                is_default=True,
                detectors=list(detectors.DETECTORS),
            )
    except IntegrityError:  # created concurrently
        return ScanProfile.objects.for_org(org).get(is_default=True)


@transaction.atomic
def profile_create(*, membership: Membership, name: str, **changes) -> ScanProfile:
    require_action(membership, Action.SECURITY_MANAGE)
    org = membership.organization
    profile = ScanProfile(organization=org, detectors=list(detectors.DETECTORS), created_by=membership.user)
    _apply_profile_changes(profile, {"name": name, **changes})
    if _name_taken(org, profile.name):
        raise Conflict(f"You already have a scan profile named {profile.name!r}.", field="name")
    if profile.is_default or not ScanProfile.objects.for_org(org).filter(is_default=True).exists():
        profile.is_default = True
        _make_default(profile)
    profile.save()
    audit_record(
        org=org, actor=membership.user, action="scan_profile.create", target=profile, after=_profile_snapshot(profile)
    )
    return profile


@transaction.atomic
def profile_update(*, membership: Membership, profile: ScanProfile, **changes) -> ScanProfile:
    require_action(membership, Action.SECURITY_MANAGE)
    org = membership.organization
    if profile.organization_id != org.pk:
        raise NotFound("No such scan profile.")
    profile = ScanProfile.objects.select_for_update().get(pk=profile.pk)
    before = _profile_snapshot(profile)
    if changes.get("is_default") is False and profile.is_default:
        raise Conflict("Make another profile the default instead.", field="is_default")
    _apply_profile_changes(profile, changes)
    if _name_taken(org, profile.name, exclude_pk=profile.pk):
        raise Conflict(f"You already have a scan profile named {profile.name!r}.", field="name")
    if profile.is_default:
        _make_default(profile)
    profile.save()
    after = _profile_snapshot(profile)
    audit_changes(
        org=org, actor=membership.user, action="scan_profile.update", target=profile, before=before, after=after
    )
    return profile


@transaction.atomic
def profile_delete(*, membership: Membership, profile: ScanProfile) -> None:
    """Delete a profile; its past scans keep the profile's name. The default cannot be deleted."""
    require_action(membership, Action.SECURITY_MANAGE)
    if profile.organization_id != membership.organization_id:
        raise NotFound("No such scan profile.")
    if profile.is_default:
        raise Conflict("The default profile cannot be deleted: make another profile the default first.")
    audit_record(
        org=membership.organization,
        actor=membership.user,
        action="scan_profile.delete",
        target=profile,
        before=_profile_snapshot(profile),
    )
    profile.delete()


def profile_resolve(
    *, org: Organization, name: str | None, field_name: str = "profile", cached: bool = True
) -> ScanProfile:
    """The profile a scan asks for by name, or the default one when it names none. ``cached``:
    from this process's cache (a scan's INSERT checks that it is still current)."""

    def read():
        if not name:
            return profile_default(org=org)
        return ScanProfile.objects.for_org(org).filter(name=name).first()

    profile = _cached_profile(org, name or "", read) if cached else read()
    if profile is None:
        known = ", ".join(ScanProfile.objects.for_org(org).values_list("name", flat=True)) or "none yet"
        raise NotFound(f"No scan profile named {name!r}. Your profiles: {known}.", field=field_name)
    return profile


# --- Scans -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScanContent:
    kind: str
    text: str
    tool_name: str = ""


@dataclass
class ScanRequest:
    """One scan: contents and the metadata that says where they came from."""

    contents: list[ScanContent]
    profile: str | None = None
    app: str = ""
    agent: str = ""
    model_name: str = ""
    connection: Connection | None = None


@dataclass
class _Outcome:
    findings: list[dict] = field(default_factory=list)
    action: str = ScanAction.ALLOW


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


def scan_validate(request: ScanRequest, *, prefix: str = "") -> int:
    """Check one scan request; returns its total size in bytes. Raises a DomainError naming the field."""
    if not request.contents:
        raise DomainError("Give at least one content to scan.", field=f"{prefix}contents")
    limit, total = settings.SECURITY_SCAN_MAX_CONTENT_BYTES, 0
    for index, content in enumerate(request.contents):
        where = f"{prefix}contents.{index}"
        if content.kind not in ContentKind.values:
            raise DomainError(
                f"Unknown content kind {content.kind!r}; use {', '.join(ContentKind.values)}.", field=f"{where}.kind"
            )
        if not isinstance(content.text, str):
            raise DomainError("The text must be a string.", field=f"{where}.text")
        try:
            size = len(content.text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise DomainError(
                "The text contains unpaired surrogates: send valid UTF-8 text.", field=f"{where}.text"
            ) from exc
        if size > limit:
            raise DomainError(
                f"This content is {size:,} bytes; the limit is {limit:,} bytes per content. Split it.",
                code="too_large",
                field=f"{where}.text",
            )
        if "\x00" in content.text:
            raise DomainError("The text contains NUL characters: send text, not binary data.", field=f"{where}.text")
        controls = len(_CONTROL.findall(content.text))
        if controls and controls > max(8, len(content.text) // 20):
            raise DomainError(
                "The text looks like binary data (many control or undecodable characters): send text.",
                code="binary_content",
                field=f"{where}.text",
            )
        total += size
    if total > settings.SECURITY_SCAN_MAX_TOTAL_BYTES:
        raise DomainError(
            f"The contents total {total:,} bytes; the limit is {settings.SECURITY_SCAN_MAX_TOTAL_BYTES:,} bytes per scan.",
            code="too_large",
            field=f"{prefix}contents",
        )
    return total


def _detector_options(profile: ScanProfile) -> dict:
    options: dict[str, dict] = {name: {"threshold": value} for name, value in profile.thresholds.items()}
    options.setdefault("urls", {}).update(
        {"allow_domains": profile.url_allow_domains, "block_domains": profile.url_block_domains}
    )
    return options


def _finding_action(profile: ScanProfile, finding) -> str:
    for key in (finding.category, finding.detector):
        if key in profile.category_actions:
            return profile.category_actions[key]
    return profile.severity_actions.get(finding.severity, default_severity_actions()[finding.severity])


def _run_detectors(profile: ScanProfile, contents: list[ScanContent]) -> _Outcome:
    outcome = _Outcome()
    options = _detector_options(profile)
    for index, content in enumerate(contents):
        if not content.text:
            continue
        found = detectors.scan(
            detectors.ScanInput(text=content.text, kind=content.kind, tool_name=content.tool_name),
            enabled=profile.detectors,
            options=options,
        )
        for finding in found:
            if finding.score < profile.thresholds.get(finding.detector, 0.0):
                continue
            action = _finding_action(profile, finding)
            if ACTION_RANK[action] > ACTION_RANK[outcome.action]:
                outcome.action = action
            outcome.findings.append(
                {
                    "content": index,
                    "kind": content.kind,
                    "detector": finding.detector,
                    "category": finding.category,
                    "severity": finding.severity,
                    "score": round(finding.score, 4),
                    "start": finding.start,
                    "end": finding.end,
                    "rule": finding.rule,
                    "excerpt": finding.excerpt,  # redacted by the detectors: sensitive spans masked
                    "action": action,
                }
            )
    return outcome


def _max_severity(findings: list[dict]) -> str:
    if not findings:
        return ""
    return max((f["severity"] for f in findings), key=lambda s: SEVERITY_RANK[Severity(s)])


def scan_build(*, org, membership, request: ScanRequest, profile: ScanProfile, total: int, batch_id=None) -> Scan:
    """Run the profile's detectors over a checked request and return the (unsaved) scan."""
    started = time.perf_counter()
    outcome = _run_detectors(profile, request.contents)
    findings = outcome.findings
    scan = Scan(
        organization=org,
        profile=profile,
        profile_name=profile.name,
        verdict=Verdict.BLOCK if outcome.action == ScanAction.BLOCK else Verdict.ALLOW,
        action=outcome.action,
        max_severity=_max_severity(findings),
        categories=sorted({f["category"] for f in findings}),
        detectors_hit=sorted({f["detector"] for f in findings}),
        findings=findings,
        finding_count=len(findings),
        contents=[
            {"kind": c.kind, "tool_name": c.tool_name, "bytes": len(c.text.encode("utf-8"))} for c in request.contents
        ],
        total_bytes=total,
        app=request.app[:100],
        agent=request.agent[:100],
        model_name=request.model_name[:100],
        connection=request.connection,
        batch_id=batch_id,
        created_by_id=membership.user_id,  # the id is enough: no query for the user
    )
    scan.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    return scan


def _scan_alerts(scan: Scan) -> dict[str, "_ScanAlert"]:
    """The alerts a scan raises, by dedup key: one per detector whose findings the profile blocks
    or alerts on. They are raised as :func:`alert_raise` would raise them one by one, in two
    statements for all of them (_scan_alert_statements, then _scan_alerts_raised)."""
    by_detector: dict[str, list[dict]] = {}
    for finding in scan.findings:
        if finding["action"] != ScanAction.ALLOW:
            by_detector.setdefault(finding["detector"], []).append(finding)
    if not by_detector:
        return {}
    source_label = scan.app or scan.agent or "an unnamed app"
    where = ":".join([scan.app or "-", scan.agent or "-", str(scan.connection.public_id) if scan.connection else "-"])
    raised = {}
    for detector_name, found in by_detector.items():
        key = f"scan:{detector_name}:{where}"[:200]
        raised[key] = _ScanAlert(
            category=detector_name[:40],
            severity=_max_severity(found),
            title=f"{category_label(detector_name)} in {found[0]['kind'].replace('_', ' ')} of {source_label}"[:200],
            dedup_key=key,
            evidence={
                "scan": str(scan.public_id),
                "verdict": scan.verdict,
                "app": scan.app,
                "agent": scan.agent,
                "model": scan.model_name,
                "profile": scan.profile_name,
                "findings": found[:10],
            },
        )
    return raised


def _scan_alert_statements(scan: Scan, raised: dict[str, "_ScanAlert"], now) -> list[tuple[str, list]]:
    """The locked lookup of the scan's unresolved alerts and the upsert of them all. The lookup
    locks the repeats first (in id order); the upsert then writes new keys in key order, so two
    scans never wait on each other's keys in opposite orders. They can go to the database together:
    the upsert does not need the lookup's answer, only what follows does (_scan_alerts_raised)."""
    return [
        _lock_unresolved_alerts(scan.organization, sorted(raised)),
        _alert_upsert(scan=scan, now=now, alerts=sorted(raised.values(), key=lambda alert: alert.dedup_key)),
    ]


def _scan_alerts_raised(scan: Scan, raised: dict[str, "_ScanAlert"], now, locked: list, upserted: list) -> None:
    """What the scan's alerts set off once written: alert.created for new ones, the dirty hour of
    a repeat that changed its connection, correlation with network alerts."""
    org = scan.organization
    existing = {key: (pk, connection_id) for pk, key, connection_id in locked}
    public_id_field = Alert._meta.get_field("public_id")
    for pk, uid, key, status, count, severity, connection_id, incident_id in upserted:
        public_id = public_id_field.to_python(uid)
        # A repeat that changes the alert's connection (one a concurrent scan raised after the
        # lookup counts as one that had none).
        before = existing[key][1] if key in existing else None
        if count > 1 and scan.connection_id is not None and before != scan.connection_id:
            created_at = Alert.objects.values_list("created_at", flat=True).get(pk=pk)
            rollups.mark_dirty(org.pk, [created_at])  # its hour's alerts by connection changed
        if count > 1 and connection_id is None:
            continue  # a repeat with nothing to correlate: no instance needed
        # The alert as this scan raised it; of a repeat, only what _correlate reads is as stored.
        new = raised[key]
        alert = Alert(
            pk=pk,
            public_id=public_id,
            organization=org,
            created_at=now,
            updated_at=now,
            category=new.category,
            severity=severity,
            status=status,
            source=AlertSource.SCAN,
            title=new.title,
            dedup_key=key,
            count=count,
            first_seen=now,
            last_seen=now,
            evidence=new.evidence,
            scan=scan,
            incident_id=incident_id,
        )
        if connection_id == scan.connection_id:
            alert.connection = scan.connection
        else:
            alert.connection_id = connection_id
        alert._state.adding = False
        if count == 1:
            _alert_created(alert)
        _correlate(alert)


@dataclass(frozen=True)
class _ScanAlert:
    category: str
    severity: str
    title: str
    dedup_key: str
    evidence: dict


_ALERTS = Alert._meta.db_table
_SCANS = Scan._meta.db_table
_UNRESOLVED_SQL = ", ".join(f"'{status}'" for status in sorted(UNRESOLVED_ALERT_STATUSES))


def _lock_unresolved_alerts(org: Organization, keys: list[str]) -> tuple[str, list]:
    """The statement of ``Alert.objects.for_org(org).unresolved().filter(dedup_key__in=keys)``
    locked to the commit in id order (as alert_bulk locks alerts, so the two never deadlock); its
    rows are (id, dedup key, connection id). Written out in SQL: the ORM takes longer to build this
    statement than the database to run it."""
    connection = transaction.get_connection()
    placeholders = ", ".join(["%s"] * len(keys))
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    sql = (
        f"SELECT id, dedup_key, connection_id FROM {_ALERTS} "  # noqa: S608 - constants; every value is a parameter
        f"WHERE organization_id = %s AND status IN ({_UNRESOLVED_SQL}) AND dedup_key IN ({placeholders}) "
        f"ORDER BY id{lock}"
    )
    return sql, [org.pk, *keys]


def _run_in_order(statements: list[tuple[str, list]]) -> list[list[tuple]]:
    """Run the statements one after the other and return the rows of each: on PostgreSQL in one
    round trip (psycopg's pipeline mode), elsewhere one by one."""
    connection = transaction.get_connection()
    cursors = [connection.cursor() for _ in statements]
    try:
        if connection.vendor == "postgresql":
            with connection.wrap_database_errors, connection.connection.pipeline():
                for cursor, (sql, params) in zip(cursors, statements, strict=True):
                    cursor.execute(sql, params)
        else:
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(sql, params)
        return [cursor.fetchall() for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def _severity_rank_sql(column: str) -> str:
    return f"CASE {column} " + " ".join(f"WHEN '{s}' THEN {SEVERITY_RANK[s]}" for s in Severity) + " END"


# A new alert's columns, and what a repeat (an unresolved alert with the same organization and
# dedup key) changes instead: what alert_raise does, in one statement for several alerts.
_ALERT_UPSERT_SQL = f"""
    INSERT INTO {_ALERTS} (
        created_at, updated_at, public_id, organization_id, category, severity, status, source, title, dedup_key,
        count, first_seen, last_seen, evidence, connection_id, scan_id
    )
    VALUES {{rows}}
    ON CONFLICT (organization_id, dedup_key) WHERE status IN ({_UNRESOLVED_SQL})
    DO UPDATE SET
        count = {_ALERTS}.count + 1,
        last_seen = EXCLUDED.last_seen,
        updated_at = EXCLUDED.updated_at,
        severity = CASE WHEN {_severity_rank_sql("EXCLUDED.severity")} > {_severity_rank_sql(f"{_ALERTS}.severity")}
            THEN EXCLUDED.severity ELSE {_ALERTS}.severity END,
        evidence = EXCLUDED.evidence,
        scan_id = EXCLUDED.scan_id,
        connection_id = COALESCE(EXCLUDED.connection_id, {_ALERTS}.connection_id)
    RETURNING id, public_id, dedup_key, status, count, severity, connection_id, incident_id
"""  # noqa: S608 - the table name comes from the model, enum values are constants, every value is a parameter


def _alert_upsert(*, scan: Scan, now, alerts: list[_ScanAlert]) -> tuple[str, list]:
    """The statement that raises each of ``alerts`` (new alerts of ``scan``, on its connection), or
    counts it as a repeat on its unresolved alert: ``count`` + 1, ``last_seen``, the higher severity,
    the latest evidence and scan, the connection if given. Its rows are (id, public id, dedup key,
    status, count (1: a new alert), severity, connection id, incident id) of each alert as stored."""
    connection = transaction.get_connection()
    field = Alert._meta.get_field
    at = field("created_at").get_db_prep_save(now, connection)
    public_id, evidence = field("public_id"), field("evidence")
    # The scan by its public id: its INSERT may go in the same round trip, before its id is known.
    scan_id = f"(SELECT id FROM {_SCANS} WHERE public_id = %s)"  # noqa: S608 - a constant table name
    row = f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s, %s, %s, {scan_id})"
    params = []
    for alert in alerts:
        params += [
            at,
            at,
            public_id.get_db_prep_save(uuid.uuid4(), connection),
            scan.organization_id,
            alert.category,
            alert.severity,
            AlertStatus.OPEN.value,
            AlertSource.SCAN.value,
            alert.title,
            alert.dedup_key,
            at,
            at,
            evidence.get_db_prep_save(alert.evidence, connection),
            scan.connection_id,
            public_id.get_db_prep_save(scan.public_id, connection),
        ]
    return _ALERT_UPSERT_SQL.format(rows=", ".join([row] * len(alerts))), params


def _check_connection(org, request: ScanRequest, *, prefix: str) -> None:
    if request.connection is not None and not Connection.objects.for_org(org).filter(pk=request.connection.pk).exists():
        raise NotFound("No such connection.", field=f"{prefix}connection")


def scan_run(*, membership: Membership, request: ScanRequest) -> Scan:
    """Scan contents against a profile: a verdict, findings with spans, and alerts for what the
    profile blocks or alerts on. The stored scan holds redacted excerpts only."""
    return scan_batch(membership=membership, requests=[request], batch=False)[0]


def scan_batch(*, membership: Membership, requests: list[ScanRequest], batch: bool = True) -> list[Scan]:
    """Scan up to ``SECURITY_SCAN_MAX_BATCH`` requests. Every request is checked before any is
    scanned, so a bad one refuses the whole batch and nothing is stored. The scans, the dashboard's
    dirty hours and the alerts are written in one transaction; scans that raise no alert and mark
    no hour are one INSERT, atomic by itself, so they need no transaction of their own (two round
    trips to the database fewer)."""
    require_action(membership, Action.SECURITY_MANAGE)
    org = membership.organization
    limit = settings.SECURITY_SCAN_MAX_BATCH
    if not 1 <= len(requests) <= limit:
        raise DomainError(f"A batch holds 1 to {limit} scans; this one has {len(requests)}.", field="items")
    # One scan uses the cached profile, which its INSERT checks; a batch reads each of its profiles.
    cached = len(requests) == 1
    read: dict[str, ScanProfile] = {}
    prepared = []
    for index, request in enumerate(requests):
        prefix = f"items.{index}." if batch else ""
        total = scan_validate(request, prefix=prefix)
        _check_connection(org, request, prefix=prefix)
        name = request.profile or ""
        if name not in read:
            read[name] = profile_resolve(org=org, name=name, field_name=f"{prefix}profile", cached=cached)
        prepared.append((request, read[name], total, prefix))
    batch_id = uuid.uuid4() if batch else None
    scans = _store_scans(org, membership, prepared, batch_id, check=cached)
    if scans is None:
        # The cached profile changed since this process read it: read it again and scan again.
        profiles_changed(org.pk)
        prepared = [
            (request, profile_resolve(org=org, name=request.profile, field_name=f"{prefix}profile"), total, prefix)
            for request, _, total, prefix in prepared
        ]
        scans = _store_scans(org, membership, prepared, batch_id, check=False)
    return scans


def _store_scans(org, membership, prepared: list[tuple], batch_id, *, check: bool) -> list[Scan] | None:
    """Run the detectors of the prepared requests and store the scans, their dirty hours and alerts.
    With ``check`` (one scan), None when its profile has changed since it was read: nothing stored."""
    scans = [
        scan_build(org=org, membership=membership, request=request, profile=profile, total=total, batch_id=batch_id)
        for request, profile, total, _ in prepared
    ]
    insert = _scans_insert(scans, check=(prepared[0][1], prepared[0][0].profile or "") if check else None)
    alerting = [(scan, raised) for scan in scans if (raised := _scan_alerts(scan))]
    moments = {scan.created_at for scan in scans}
    if not alerting and not rollups.ended_hours(moments):
        (stored,) = _run_in_order([insert])
        return scans if _scans_stored(scans, stored) else None
    with transaction.atomic():
        now = timezone.now()
        # The scans and their alerts' statements in one round trip (the alerts name their scan by
        # its public id); nothing of it stays if the profile check refused the scans.
        statements = [insert]
        for scan, raised in alerting:
            statements += _scan_alert_statements(scan, raised, now)
        stored, *alert_rows = _run_in_order(statements)
        if not _scans_stored(scans, stored):
            transaction.set_rollback(True)
            return None
        # Dashboard rollups: a no-op unless the batch began in an hour that has ended since.
        rollups.mark_dirty(org.pk, moments)
        for index, (scan, raised) in enumerate(alerting):
            _scan_alerts_raised(scan, raised, now, *alert_rows[2 * index : 2 * index + 2])
    return scans


_SCAN_FIELDS = [field for field in Scan._meta.concrete_fields if not field.primary_key]


def _scans_insert(scans: list[Scan], *, check: tuple[ScanProfile, str] | None = None) -> tuple[str, list]:
    """The statement that stores new scans, ``INSERT ... RETURNING id``: what ``bulk_create`` does,
    written out because the ORM takes longer to build the statement than the database to run it.

    ``check`` (one scan): its profile and the name it was asked for ("" for the default); the scan
    is stored only if that profile is unchanged and still the one the name resolves to."""
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in _SCAN_FIELDS)
    params = [
        field.get_db_prep_save(field.pre_save(scan, True), connection) for scan in scans for field in _SCAN_FIELDS
    ]
    placeholders = ", ".join(["%s"] * len(_SCAN_FIELDS))
    if check is None:
        rows = f"VALUES {', '.join([f'({placeholders})'] * len(scans))}"
    else:
        profile, name = check
        updated_at = ScanProfile._meta.get_field("updated_at").get_db_prep_save(profile.updated_at, connection)
        resolves = f"{quote('is_default')} = %s" if not name else f"{quote('name')} = %s"
        rows = (
            f"SELECT {placeholders} WHERE EXISTS (SELECT 1 FROM {quote(ScanProfile._meta.db_table)} "  # noqa: S608 - names from the models, every value is a parameter
            f"WHERE {quote('id')} = %s AND {quote('updated_at')} = %s AND {resolves})"
        )
        params += [profile.pk, updated_at, name or True]
    sql = f"INSERT INTO {quote(Scan._meta.db_table)} ({columns}) {rows} RETURNING {quote(Scan._meta.pk.column)}"
    return sql, params


def _scans_stored(scans: list[Scan], rows: list[tuple]) -> bool:
    """Give the scans the ids their INSERT returned; False when it stored none (the profile check)."""
    if not rows:
        return False
    connection = transaction.get_connection()
    for scan, (pk,) in zip(scans, rows, strict=True):
        scan.pk = pk
        scan._state.adding, scan._state.db = False, connection.alias
    return True


def scan_purge(*, older_than_days: int | None = None, batch_size: int = 5000) -> int:
    """Delete scans older than the retention period, in batches; returns how many went."""
    days = settings.SECURITY_SCAN_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(Scan.objects.filter(created_at__lt=cutoff).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            Alert.objects.filter(scan_id__in=ids).update(scan=None)
            deleted += Scan.objects.filter(pk__in=ids).delete()[0]
            rollups.scans_purged(cutoff)  # the dashboard's scan counts of the purged hours go too


# --- Alerts ----------------------------------------------------------------------------------
def _alert_link(alert: Alert) -> str:
    try:
        return reverse("security:alert-detail", args=[alert.public_id])
    except NoReverseMatch:  # the portal pages are optional for the API
        return ""


def _higher(first: str, second: str) -> str:
    return first if SEVERITY_RANK[Severity(first)] >= SEVERITY_RANK[Severity(second)] else second


@transaction.atomic(savepoint=False)  # inside a caller's transaction (a scan), no savepoint of its own
def alert_raise(
    *,
    org: Organization,
    category: str,
    severity: str,
    source: str,
    dedup_key: str,
    title: str,
    evidence: dict,
    connection: Connection | None = None,
    scan: Scan | None = None,
) -> tuple[Alert, bool]:
    """Raise an alert, or count a repeat on the unresolved alert with the same ``dedup_key``.

    Returns ``(alert, created)``. Only a new alert publishes ``alert.created`` (webhooks and
    notifications); a repeat raises ``count`` and ``last_seen``, keeps the higher severity and
    the latest evidence. Alerts about the same connection from content and network sources
    within ``SECURITY_CORRELATION_WINDOW_MINUTES`` are joined into one incident.
    """
    if severity not in Severity.values:
        raise ValueError(f"Unknown severity {severity!r}.")
    if source not in AlertSource.values:
        raise ValueError(f"Unknown alert source {source!r}.")
    now = timezone.now()
    existing = Alert.objects.select_for_update().for_org(org).unresolved().filter(dedup_key=dedup_key[:200]).first()
    created = False
    if existing is not None:
        alert = existing
        alert.count += 1  # the row is locked: no other raise can count in between
        alert.last_seen = alert.updated_at = now
        alert.severity = _higher(alert.severity, severity)
        alert.evidence = evidence
        alert.scan = scan or alert.scan
        if connection is not None and connection.pk != alert.connection_id:
            rollups.mark_dirty(org.pk, [alert.created_at])  # its hour's alerts by connection changed
        alert.connection = connection or alert.connection
        # One statement for the repeat; ``count`` is still incremented in SQL.
        Alert.objects.filter(pk=alert.pk).update(
            count=F("count") + 1,
            last_seen=now,
            updated_at=now,
            severity=alert.severity,
            evidence=evidence,
            scan=alert.scan,
            connection=alert.connection,
        )
    else:
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    organization=org,
                    category=category[:40],
                    severity=severity,
                    source=source,
                    title=title[:200],
                    dedup_key=dedup_key[:200],
                    evidence=evidence,
                    connection=connection,
                    scan=scan,
                    first_seen=now,
                    last_seen=now,
                )
        except IntegrityError:  # a concurrent raise created it first: count this one as a repeat
            return alert_raise(
                org=org,
                category=category,
                severity=severity,
                source=source,
                dedup_key=dedup_key,
                title=title,
                evidence=evidence,
                connection=connection,
                scan=scan,
            )
        created = True
        _alert_created(alert)
    _correlate(alert)
    return alert, created


def _alert_created(alert: Alert) -> None:
    """What a new alert sets off: ``alert.created`` (webhooks and notifications), and the dashboard's
    rollup of its hour marked dirty (a no-op unless that hour has ended)."""
    rollups.mark_dirty(alert.organization_id, [alert.created_at])
    publish(
        org=alert.organization,
        event_type=ALERT_CREATED,
        payload=alert_payload(alert),
        title=f"{Severity(alert.severity).label} alert: {alert.title}",
        link=_alert_link(alert),
    )


def alert_payload(alert: Alert) -> dict:
    return {
        "alert": str(alert.public_id),
        "category": alert.category,
        "severity": alert.severity,
        "status": alert.status,
        "source": alert.source,
        "title": alert.title,
        "count": alert.count,
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "connection": str(alert.connection.public_id) if alert.connection else None,
        "scan": str(alert.scan.public_id) if alert.scan else None,
    }


_CONTENT_SOURCES = (AlertSource.SCAN,)
_NETWORK_SOURCES = (AlertSource.NETWORK,)


def _correlate(alert: Alert) -> Incident | None:
    """Join a content alert and a network alert on the same connection, seen within the window."""
    if alert.connection_id is None or alert.source not in (*_CONTENT_SOURCES, *_NETWORK_SOURCES):
        return None
    others = _NETWORK_SOURCES if alert.source in _CONTENT_SOURCES else _CONTENT_SOURCES
    window = timedelta(minutes=settings.SECURITY_CORRELATION_WINDOW_MINUTES)
    partners = list(
        Alert.objects.for_org(alert.organization)
        .unresolved()
        .filter(
            connection_id=alert.connection_id,
            source__in=others,
            last_seen__gte=alert.last_seen - window,
            last_seen__lte=alert.last_seen + window,
        )
        .select_related("incident")
    )
    if not partners:
        return None
    incident = alert.incident or next((p.incident for p in partners if p.incident is not None), None)
    severity = alert.severity
    for partner in partners:
        severity = _higher(severity, partner.severity)
    if incident is None:
        incident = Incident.objects.create(
            organization=alert.organization,
            title=f"Content finding and network anomaly on {alert.connection.name}"[:200],
            severity=severity,
            connection_id=alert.connection_id,
        )
        audit_record(
            org=alert.organization,
            actor=None,
            action="incident.open",
            target=incident,
            after={"alerts": [str(a.public_id) for a in (alert, *partners)]},
        )
    elif SEVERITY_RANK[Severity(severity)] > SEVERITY_RANK[Severity(incident.severity)]:
        incident.severity = severity
        incident.save(update_fields=["severity", "updated_at"])
    ids = [alert.pk, *(p.pk for p in partners)]
    Alert.objects.filter(pk__in=ids, incident__isnull=True).update(incident=incident)
    alert.incident = incident
    return incident


def _alert_snapshot(alert: Alert) -> dict:
    return {"status": alert.status, "assignee": alert.assignee.email if alert.assignee else None}


def _require_alert(membership: Membership, alert: Alert) -> Alert:
    require_action(membership, Action.SECURITY_MANAGE)
    if alert.organization_id != membership.organization_id:
        raise NotFound("No such alert.")
    return Alert.objects.select_for_update(of=("self",)).select_related("assignee", "incident").get(pk=alert.pk)


def _change_status(membership: Membership, alert: Alert, target: str, note: str = "") -> Alert:
    alert = _require_alert(membership, alert)
    if alert.status == target:
        return alert
    if not can_transition(alert.status, target):
        raise Conflict(
            f"An alert that is {alert.get_status_display().lower()} cannot become {AlertStatus(target).label.lower()}.",
            code="invalid_state",
        )
    before = _alert_snapshot(alert)
    now = timezone.now()
    alert.status = target
    if target == AlertStatus.ACKNOWLEDGED:
        alert.acknowledged_at = now
    if target == AlertStatus.RESOLVED:
        alert.resolved_at = now
    alert.save(update_fields=["status", "acknowledged_at", "resolved_at", "updated_at"])
    if note.strip():
        _add_note(membership, alert, note)
    audit_record(
        org=alert.organization,
        actor=membership.user,
        action=f"alert.{AlertStatus(target).name.lower()}",
        target=alert,
        before=before,
        after=_alert_snapshot(alert),
    )
    if target == AlertStatus.RESOLVED and alert.incident_id:
        _maybe_resolve_incident(alert.incident)
    return alert


def _maybe_resolve_incident(incident: Incident) -> None:
    if not incident.alerts.unresolved().exists() and incident.status != IncidentStatus.RESOLVED:
        incident.status = IncidentStatus.RESOLVED
        incident.resolved_at = timezone.now()
        incident.save(update_fields=["status", "resolved_at", "updated_at"])


@transaction.atomic
def alert_acknowledge(*, membership: Membership, alert: Alert, note: str = "") -> Alert:
    return _change_status(membership, alert, AlertStatus.ACKNOWLEDGED, note)


@transaction.atomic
def alert_resolve(*, membership: Membership, alert: Alert, note: str = "") -> Alert:
    return _change_status(membership, alert, AlertStatus.RESOLVED, note)


@transaction.atomic
def alert_suppress(*, membership: Membership, alert: Alert, note: str = "") -> Alert:
    """Silence an alert: repeats keep counting on it, without notifications, until it is resolved."""
    return _change_status(membership, alert, AlertStatus.SUPPRESSED, note)


def _assignable(org: Organization, assignee: User | None) -> None:
    if assignee is not None and not Membership.objects.for_org(org).filter(user=assignee).exists():
        raise DomainError("The assignee must be a member of your organization.", field="assignee")


@transaction.atomic
def alert_assign(*, membership: Membership, alert: Alert, assignee: User | None) -> Alert:
    alert = _require_alert(membership, alert)
    _assignable(membership.organization, assignee)
    before = _alert_snapshot(alert)
    alert.assignee = assignee
    alert.save(update_fields=["assignee", "updated_at"])
    audit_record(
        org=alert.organization,
        actor=membership.user,
        action="alert.assign",
        target=alert,
        before=before,
        after=_alert_snapshot(alert),
    )
    return alert


def _add_note(membership: Membership, alert: Alert, body: str) -> AlertNote:
    body = body.strip()
    if not body:
        raise DomainError("Write something in the note.", field="body")
    if len(body) > 5000:
        raise DomainError("A note is at most 5,000 characters.", field="body")
    return AlertNote.objects.create(alert=alert, author=membership.user, author_label=membership.user.email, body=body)


@transaction.atomic
def alert_add_note(*, membership: Membership, alert: Alert, body: str) -> AlertNote:
    alert = _require_alert(membership, alert)
    note = _add_note(membership, alert, body)
    audit_record(
        org=alert.organization,
        actor=membership.user,
        action="alert.note",
        target=alert,
        after={"note": note.body[:500]},
    )
    return note


BULK_ACTIONS = ("acknowledge", "resolve", "suppress", "assign")
_BULK_TARGET = {
    "acknowledge": AlertStatus.ACKNOWLEDGED,
    "resolve": AlertStatus.RESOLVED,
    "suppress": AlertStatus.SUPPRESSED,
}
MAX_BULK_ALERTS = 500


@dataclass
class BulkResult:
    changed: list[Alert] = field(default_factory=list)
    skipped: list[tuple[Alert, str]] = field(default_factory=list)


@transaction.atomic
def alert_bulk(
    *, membership: Membership, alerts: list[Alert], action: str, assignee: User | None = None, note: str = ""
) -> BulkResult:
    """Apply one action to many alerts. Alerts the action does not apply to (e.g. acknowledging a
    resolved alert) are skipped with the reason; every change is audited like a single one."""
    require_action(membership, Action.SECURITY_MANAGE)
    if action not in BULK_ACTIONS:
        raise DomainError(f"Unknown action {action!r}; use {', '.join(BULK_ACTIONS)}.", field="action")
    if not alerts:
        raise DomainError("Choose at least one alert.", field="alerts")
    if len(alerts) > MAX_BULK_ALERTS:
        raise DomainError(f"At most {MAX_BULK_ALERTS} alerts at a time.", field="alerts")
    if action == "assign":
        _assignable(membership.organization, assignee)
    org = membership.organization
    if any(alert.organization_id != org.pk for alert in alerts):
        raise NotFound("One or more of these alerts do not exist.", field="alerts")
    # Locked and re-read in one order, so two bulk actions never deadlock or act on stale states.
    alerts = list(Alert.objects.select_for_update().filter(pk__in=[alert.pk for alert in alerts]).order_by("pk"))
    result = BulkResult()
    for alert in alerts:
        if action == "assign":
            result.changed.append(alert_assign(membership=membership, alert=alert, assignee=assignee))
            continue
        target = _BULK_TARGET[action]
        if alert.status != target and not can_transition(alert.status, target):
            result.skipped.append((alert, f"It is {alert.get_status_display().lower()}."))
            continue
        result.changed.append(_change_status(membership, alert, target, note))
    return result
