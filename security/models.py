"""Governance policies, AI scan profiles and scans, alerts and the incidents that correlate them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from hub.models import OrgOwnedModel, OrgOwnedQuerySet, TimeStampedModel
from security.choices import (
    UNRESOLVED_ALERT_STATUSES,
    AlertSource,
    AlertStatus,
    IncidentStatus,
    ScanAction,
    Severity,
    Verdict,
)


def default_severity_actions() -> dict:
    return {
        Severity.CRITICAL: ScanAction.BLOCK,
        Severity.HIGH: ScanAction.BLOCK,
        Severity.MEDIUM: ScanAction.ALERT,
        Severity.LOW: ScanAction.ALLOW,
    }


class Policy(TimeStampedModel):
    """An organization's governance policy (one per organization), enforced as a fabric guard.

    An empty ``allowed_zones`` allows every sovereignty zone. ``approval_bandwidth_mbps`` is the
    bandwidth above which a connection waits for an org admin's approval (none: never).
    """

    organization = models.OneToOneField("hub.Organization", on_delete=models.PROTECT, related_name="security_policy")
    allowed_zones = models.JSONField(default=list, blank=True, help_text="Sovereignty zones; empty allows all.")
    blocked_categories = models.JSONField(default=list, blank=True, help_text="Marketplace offering categories.")
    blocked_providers = models.ManyToManyField("marketplace.ProviderProfile", blank=True, related_name="+")
    approval_bandwidth_mbps = models.PositiveIntegerField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = OrgOwnedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(approval_bandwidth_mbps__isnull=True) | Q(approval_bandwidth_mbps__gt=0),
                name="policy_approval_bandwidth_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"Policy of {self.organization}"


class ScanProfile(OrgOwnedModel):
    """Which detectors run on a scan, how sensitive they are and what each finding leads to.

    ``thresholds`` maps a detector to the lowest score that counts; ``severity_actions`` maps a
    severity to an action and ``category_actions`` overrides it for a finding category.
    """

    name = models.CharField(max_length=60)
    description = models.CharField(max_length=300, blank=True)
    is_default = models.BooleanField(default=False)
    detectors = models.JSONField(default=list, help_text="Names of the enabled detectors.")
    thresholds = models.JSONField(default=dict, blank=True)
    severity_actions = models.JSONField(default=default_severity_actions)
    category_actions = models.JSONField(default=dict, blank=True)
    url_allow_domains = models.JSONField(default=list, blank=True)
    url_block_domains = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="scan_profile_name_unique_per_org"),
            models.UniqueConstraint(
                fields=["organization"], condition=Q(is_default=True), name="scan_profile_one_default_per_org"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Scan(OrgOwnedModel):
    """One scan request and its outcome. Findings keep redacted excerpts only, never the content."""

    profile = models.ForeignKey(ScanProfile, on_delete=models.SET_NULL, null=True, blank=True, related_name="scans")
    profile_name = models.CharField(max_length=60)
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    action = models.CharField(max_length=8, choices=ScanAction.choices)
    max_severity = models.CharField(max_length=10, choices=Severity.choices, blank=True)
    categories = models.JSONField(default=list, blank=True)
    detectors_hit = models.JSONField(default=list, blank=True)
    findings = models.JSONField(default=list, blank=True)
    finding_count = models.PositiveIntegerField(default=0)
    contents = models.JSONField(default=list, help_text="Kind, tool name and size of each content; never the text.")
    total_bytes = models.PositiveIntegerField(default=0)
    app = models.CharField(max_length=100, blank=True)
    agent = models.CharField(max_length=100, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    connection = models.ForeignKey(
        "fabric.Connection", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    batch_id = models.UUIDField(null=True, blank=True)
    duration_ms = models.FloatField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="scan_org_time"),
            models.Index(fields=["organization", "verdict", "-created_at"], name="scan_org_verdict_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(verdict__in=Verdict.values), name="scan_verdict_valid"),
            models.CheckConstraint(condition=Q(action__in=ScanAction.values), name="scan_action_valid"),
        ]

    def __str__(self) -> str:
        return f"Scan {self.public_id} ({self.verdict})"


class Incident(OrgOwnedModel):
    """Alerts of different sources about the same connection within a short window, seen as one."""

    title = models.CharField(max_length=200)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    status = models.CharField(max_length=10, choices=IncidentStatus.choices, default=IncidentStatus.OPEN)
    connection = models.ForeignKey(
        "fabric.Connection", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(severity__in=Severity.values), name="incident_severity_valid"),
            models.CheckConstraint(condition=Q(status__in=IncidentStatus.values), name="incident_status_valid"),
        ]

    def __str__(self) -> str:
        return self.title


class AlertQuerySet(OrgOwnedQuerySet):
    def unresolved(self):
        return self.filter(status__in=UNRESOLVED_ALERT_STATUSES)

    def open(self):
        return self.filter(status__in=(AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED))


class Alert(OrgOwnedModel):
    """Something a security analyst should look at. Repeats of the same problem (its
    ``dedup_key``) raise ``count`` and ``last_seen`` on the one unresolved alert."""

    category = models.CharField(max_length=40, db_index=True)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    status = models.CharField(max_length=14, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    source = models.CharField(max_length=14, choices=AlertSource.choices)
    title = models.CharField(max_length=200)
    dedup_key = models.CharField(max_length=200)
    count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    evidence = models.JSONField(default=dict, blank=True)
    connection = models.ForeignKey(
        "fabric.Connection", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    scan = models.ForeignKey(Scan, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts")
    incident = models.ForeignKey(Incident, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-last_seen", "-id"]
        indexes = [
            models.Index(fields=["organization", "status", "severity"], name="alert_org_status_severity"),
            models.Index(fields=["organization", "-last_seen"], name="alert_org_last_seen"),
            models.Index(fields=["organization", "-created_at"], name="alert_org_time"),
            # The open alerts of the top connections: a few index entries per connection.
            models.Index(
                fields=["organization", "connection"],
                condition=Q(status__in=[AlertStatus.ACKNOWLEDGED, AlertStatus.OPEN]),
                name="alert_org_open_connection",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "dedup_key"],
                condition=Q(status__in=sorted(UNRESOLVED_ALERT_STATUSES)),
                name="alert_dedup_key_unique_unresolved",
            ),
            models.CheckConstraint(condition=Q(severity__in=Severity.values), name="alert_severity_valid"),
            models.CheckConstraint(condition=Q(status__in=AlertStatus.values), name="alert_status_valid"),
            models.CheckConstraint(condition=Q(source__in=AlertSource.values), name="alert_source_valid"),
            models.CheckConstraint(condition=Q(count__gte=1), name="alert_count_positive"),
        ]

    def __str__(self) -> str:
        return self.title


class AlertNote(models.Model):
    """A note an analyst wrote on an alert (triage reasoning, follow-up)."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    author_label = models.CharField(max_length=254, blank=True)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Note on {self.alert_id} by {self.author_label}"


class DashboardRollup(models.Model):
    """Counts of one organization's scans or alerts in one hour (``hours`` 1) or one UTC day
    (``hours`` 24, the sum of its 24 hour rows), by one dimension (``kind``).

    Derived data, rebuilt from the raw rows by ``security.rollups``: a finished hour is rolled up
    once it is ``ROLLUP_DELAY`` old and recomputed whenever it is marked dirty; a day once all its
    hours are. ``flagged`` and ``blocked`` are counted for the app and agent kinds only.
    """

    class Kind(models.TextChoices):
        VERDICT = "verdict", "Scans by verdict"
        APP = "app", "Scans by app"
        AGENT = "agent", "Scans by agent"
        DETECTOR = "detector", "Scans flagged by detector"
        CATEGORY = "category", "New alerts by category"
        CONNECTION = "connection", "New alerts by connection"

    organization = models.ForeignKey("hub.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField(help_text="Start of the hour or day (UTC).")
    hours = models.PositiveSmallIntegerField(default=1, help_text="1: one hour; 24: one day.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    key = models.CharField(max_length=100, help_text="Verdict, app, agent, detector, category or connection id.")
    n = models.PositiveIntegerField()
    flagged = models.PositiveIntegerField(default=0)
    blocked = models.PositiveIntegerField(default=0)

    objects = OrgOwnedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "hours", "hour", "kind", "key"], name="dashboard_rollup_one_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} at {self.hour:%Y-%m-%d %H}:00: {self.n}"


class DashboardRollupState(models.Model):
    """Which hours of an organization the rollups hold: ``[rolled_from, rolled_until)`` except
    the dirty hours. ``version`` grows with every change of the rollups (cache keys use it)."""

    organization = models.OneToOneField("hub.Organization", on_delete=models.CASCADE, related_name="+")
    rolled_from = models.DateTimeField()
    rolled_until = models.DateTimeField()
    version = models.PositiveBigIntegerField(default=0)

    objects = OrgOwnedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Rollups of {self.organization_id}: {self.rolled_from} to {self.rolled_until}"


class DashboardDirtyHour(models.Model):
    """A rolled-up hour whose raw rows changed (written in the same transaction as the change):
    the dashboard reads it from the raw rows until the rollup task recomputes it."""

    organization = models.ForeignKey("hub.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField()
    marked_at = models.DateTimeField()

    objects = OrgOwnedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "hour"], name="dashboard_dirty_one_per_hour"),
        ]

    def __str__(self) -> str:
        return f"Dirty hour {self.hour} of {self.organization_id}"
