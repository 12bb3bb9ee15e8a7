import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from fabric.choices import (
    LIVE_CONNECTION_STATES,
    ConnectionState,
    PendingOn,
    PortSpeed,
    PortState,
    Priority,
    Region,
    StepStatus,
    WorkflowKind,
    WorkflowStatus,
)
from hub.models import OrgOwnedModel, OrgOwnedQuerySet


class Metro(models.Model):
    """A data-center metro where ports can be ordered. Reference data shared by all organizations."""

    code = models.CharField(max_length=4, unique=True)
    name = models.CharField(max_length=100)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    region = models.CharField(max_length=4, choices=Region.choices)
    sovereignty_zone = models.CharField(max_length=8, help_text="EU, UK, CH, or the country code")
    latitude = models.FloatField()
    longitude = models.FloatField()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(latitude__gte=-90, latitude__lte=90), name="metro_latitude_range"),
            models.CheckConstraint(condition=Q(longitude__gte=-180, longitude__lte=180), name="metro_longitude_range"),
            models.CheckConstraint(condition=Q(region__in=Region.values), name="metro_region_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.code} · {self.name}"


class Port(OrgOwnedModel):
    """An organization's physical port in a metro.

    ``committed_mbps`` is the bandwidth of the live connections on the port; it is changed only
    under a row lock, and a check constraint keeps it within ``capacity_mbps`` (speed times the
    oversubscription factor when the port was ordered), so the port is never oversubscribed.
    """

    metro = models.ForeignKey(Metro, on_delete=models.PROTECT, related_name="ports")
    name = models.CharField(max_length=100)
    speed_mbps = models.PositiveIntegerField(choices=PortSpeed.choices)
    capacity_mbps = models.PositiveIntegerField()
    committed_mbps = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=PortState.choices, default=PortState.PROVISIONING)
    auto_approve = models.BooleanField(
        default=False, help_text="Approve inbound connection requests from other organizations automatically."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")

    class Meta:
        ordering = ["metro__code", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(committed_mbps__lte=F("capacity_mbps")), name="port_not_oversubscribed"),
            models.CheckConstraint(condition=Q(speed_mbps__in=PortSpeed.values), name="port_speed_valid"),
            models.UniqueConstraint(
                fields=["organization", "name"],
                condition=~Q(state=PortState.DECOMMISSIONED),
                name="port_name_unique_per_org",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.metro.code}, {self.get_speed_mbps_display()})"

    @property
    def available_mbps(self) -> int:
        return self.capacity_mbps - self.committed_mbps


class ConnectionQuerySet(OrgOwnedQuerySet):
    def for_org(self, org):
        """Both ends see a connection: the requester and the owner of the Z-side port."""
        if org is None:
            return self.none()
        return self.filter(Q(organization=org) | Q(z_port__organization=org))

    def live(self):
        return self.filter(state__in=LIVE_CONNECTION_STATES)


class Connection(OrgOwnedModel):
    """A private interconnect from the requester's A-side port to a Z-side port."""

    name = models.CharField(max_length=100)
    a_port = models.ForeignKey(Port, on_delete=models.PROTECT, related_name="a_connections")
    a_vlan = models.PositiveSmallIntegerField()
    z_port = models.ForeignKey(Port, on_delete=models.PROTECT, related_name="z_connections")
    z_vlan = models.PositiveSmallIntegerField(null=True, blank=True)
    bandwidth_mbps = models.PositiveIntegerField()
    requested_bandwidth_mbps = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=ConnectionState.choices, default=ConnectionState.PENDING_APPROVAL)
    pending_on = models.CharField(max_length=12, choices=PendingOn.choices, default=PendingOn.PROVIDER)
    redundancy_group = models.UUIDField(null=True, blank=True, db_index=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.PRIMARY)
    purchase_order = models.CharField(max_length=64, blank=True)
    status_reason = models.CharField(max_length=500, blank=True, help_text="Why it was rejected or failed.")
    z_preapproved = models.BooleanField(
        default=False,
        help_text="The Z side's owner approved in advance (a marketplace access point in automatic mode): "
        "once the requester's own admins approve a held request, it provisions without waiting on the Z side.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(bandwidth_mbps__gt=0), name="connection_bandwidth_positive"),
            models.CheckConstraint(condition=Q(a_vlan__gte=2, a_vlan__lte=4094), name="connection_a_vlan_range"),
            models.CheckConstraint(
                condition=Q(z_vlan__isnull=True) | Q(z_vlan__gte=2, z_vlan__lte=4094), name="connection_z_vlan_range"
            ),
            models.CheckConstraint(condition=~Q(a_port=F("z_port")), name="connection_ports_differ"),
            models.CheckConstraint(condition=Q(state__in=ConnectionState.values), name="connection_state_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_CONNECTION_STATES


class VlanAssignment(models.Model):
    """One VLAN tag in use on one port. The unique constraint makes a double booking impossible."""

    port = models.ForeignKey(Port, on_delete=models.PROTECT, related_name="vlans")
    vlan = models.PositiveSmallIntegerField()
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="vlan_assignments")

    class Meta:
        ordering = ["port_id", "vlan"]
        constraints = [
            models.UniqueConstraint(fields=["port", "vlan"], name="vlan_unique_per_port"),
            models.CheckConstraint(condition=Q(vlan__gte=2, vlan__lte=4094), name="vlan_range"),
        ]

    def __str__(self) -> str:
        return f"VLAN {self.vlan} on {self.port_id}"


class ConnectionEvent(models.Model):
    """One state transition (or a note) in a connection's life, shown to both ends."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=254, blank=True)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state or '·'} -> {self.to_state}"


class Workflow(models.Model):
    """An asynchronous piece of fabric work made of recorded steps (DESIGN §4)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=32, choices=WorkflowKind.choices)
    port = models.ForeignKey(Port, on_delete=models.CASCADE, null=True, blank=True, related_name="workflows")
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, null=True, blank=True, related_name="workflows"
    )
    status = models.CharField(max_length=12, choices=WorkflowStatus.choices, default=WorkflowStatus.PENDING)
    error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When a scheduled retry is due.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(port__isnull=False, connection__isnull=True)
                | Q(port__isnull=True, connection__isnull=False),
                name="workflow_has_one_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.status})"


class WorkflowStep(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=40)
    status = models.CharField(max_length=12, choices=StepStatus.choices, default=StepStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["workflow_id", "position"]
        constraints = [models.UniqueConstraint(fields=["workflow", "position"], name="workflow_step_position_unique")]

    def __str__(self) -> str:
        return f"{self.position}. {self.name} ({self.status})"

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


# --- Telemetry (docs/TELEMETRY.md) ---------------------------------------------------------------


class TelemetrySample(models.Model):
    """Traffic counted on a connection during the ``interval_seconds`` that end at ``time``.

    Counters are deltas for the interval, not running totals. Samples are additive: several for the
    same time (one per destination country, say) add up. Raw samples are kept for
    ``FABRIC_TELEMETRY_RETENTION_DAYS``; the rollups below keep the history longer.

    The connection has no database foreign key on purpose: the table takes tens of thousands of
    rows a second, and a key would run a trigger per row. Ingest checks the connection instead,
    and connections are never deleted in the product (they end DEPROVISIONED).
    """

    connection = models.ForeignKey(
        Connection,
        on_delete=models.CASCADE,
        related_name="telemetry_samples",
        db_constraint=False,
        db_index=False,  # the (connection, time) index serves it
    )
    time = models.DateTimeField()
    interval_seconds = models.PositiveIntegerField(default=60)
    bytes_in = models.PositiveBigIntegerField()
    bytes_out = models.PositiveBigIntegerField()
    packets_in = models.PositiveBigIntegerField()
    packets_out = models.PositiveBigIntegerField()
    drops = models.PositiveBigIntegerField(default=0)
    country = models.CharField(max_length=2, blank=True, help_text="Destination, ISO 3166-1 alpha-2.")

    class Meta:
        indexes = [
            models.Index(fields=["connection", "time"], name="telemetry_sample_conn_time"),
            models.Index(fields=["time"], name="telemetry_sample_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(interval_seconds__gt=0), name="telemetry_sample_interval_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.connection_id} @ {self.time:%Y-%m-%d %H:%M:%S}"


class TelemetryRollup(models.Model):
    """Sums of a connection's samples over one bucket of ``resolution_seconds`` (300 or 3600)."""

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="telemetry_rollups", db_index=False
    )  # the unique (connection, resolution, bucket) index serves it
    resolution_seconds = models.PositiveIntegerField()
    bucket = models.DateTimeField(help_text="Start of the bucket.")
    bytes_in = models.PositiveBigIntegerField()
    bytes_out = models.PositiveBigIntegerField()
    packets_in = models.PositiveBigIntegerField()
    packets_out = models.PositiveBigIntegerField()
    drops = models.PositiveBigIntegerField()
    max_bps_in = models.FloatField(help_text="Highest rate of one sample in the bucket.")
    max_bps_out = models.FloatField(help_text="Highest rate of one sample in the bucket.")
    samples = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "resolution_seconds", "bucket"], name="telemetry_rollup_one_per_bucket"
            ),
            models.CheckConstraint(condition=Q(resolution_seconds__in=[300, 3600]), name="telemetry_rollup_resolution"),
        ]
        indexes = [models.Index(fields=["resolution_seconds", "bucket"], name="telemetry_rollup_res_bucket")]

    def __str__(self) -> str:
        return f"{self.connection_id} {self.resolution_seconds}s @ {self.bucket:%Y-%m-%d %H:%M}"


class TelemetryDirtyBucket(models.Model):
    """A 5-minute bucket that received samples since it was last rolled up.

    Written in the same transaction as the samples; the rollup task recomputes the bucket (and its
    hour) and deletes the marker only if no newer sample marked it meanwhile (``marked_at``).
    """

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+", db_index=False)
    bucket = models.DateTimeField()
    marked_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "bucket"], name="telemetry_dirty_one_per_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.connection_id} @ {self.bucket:%Y-%m-%d %H:%M}"
