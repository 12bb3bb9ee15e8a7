from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketplace.choices import Category
from security.choices import ContentKind, ScanAction, Severity
from security.models import Alert, AlertNote, Incident, Policy, Scan, ScanProfile
from security.services import BULK_ACTIONS, known_zones


# --- Policy ----------------------------------------------------------------------------------
class PolicySerializer(serializers.ModelSerializer):
    blocked_providers = serializers.SerializerMethodField(help_text="Slugs of blocked provider profiles.")
    known_zones = serializers.SerializerMethodField(help_text="Zones of the fabric's metros: what may be allowed.")
    updated_by = serializers.SerializerMethodField()

    class Meta:
        model = Policy
        fields = [
            "allowed_zones",
            "blocked_categories",
            "blocked_providers",
            "approval_bandwidth_mbps",
            "known_zones",
            "updated_at",
            "updated_by",
        ]

    def get_blocked_providers(self, policy) -> list[str]:
        return sorted(policy.blocked_providers.values_list("slug", flat=True)) if policy.pk else []

    def get_known_zones(self, policy) -> list[str]:
        return known_zones()

    def get_updated_by(self, policy) -> str | None:
        return policy.updated_by.email if policy.updated_by_id else None


class PolicyUpdateSerializer(serializers.Serializer):
    allowed_zones = serializers.ListField(
        child=serializers.CharField(max_length=8), required=False, help_text="Empty: every zone is allowed."
    )
    blocked_categories = serializers.ListField(
        child=serializers.CharField(max_length=20),
        required=False,
        help_text=f"Marketplace categories: {', '.join(Category.values)}.",
    )
    blocked_providers = serializers.ListField(
        child=serializers.SlugField(), required=False, help_text="Provider profile slugs."
    )
    approval_bandwidth_mbps = serializers.IntegerField(
        min_value=1, allow_null=True, required=False, help_text="Above it an org admin must approve; null: never."
    )


# --- Profiles --------------------------------------------------------------------------------
class ScanProfileSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = ScanProfile
        fields = [
            "id",
            "name",
            "description",
            "is_default",
            "detectors",
            "thresholds",
            "severity_actions",
            "category_actions",
            "url_allow_domains",
            "url_block_domains",
            "created_at",
            "updated_at",
        ]


class ScanProfileWriteSerializer(serializers.Serializer):
    """Profile fields; the service checks detector names, scores, actions and domains."""

    name = serializers.CharField(max_length=60)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    is_default = serializers.BooleanField(required=False)
    detectors = serializers.ListField(child=serializers.CharField(), required=False)
    thresholds = serializers.DictField(child=serializers.FloatField(min_value=0, max_value=1), required=False)
    severity_actions = serializers.DictField(child=serializers.ChoiceField(ScanAction.choices), required=False)
    category_actions = serializers.DictField(child=serializers.ChoiceField(ScanAction.choices), required=False)
    url_allow_domains = serializers.ListField(child=serializers.CharField(max_length=253), required=False)
    url_block_domains = serializers.ListField(child=serializers.CharField(max_length=253), required=False)


# --- Scans -----------------------------------------------------------------------------------
class ScanContentSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(ContentKind.choices)
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)
    tool_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class ScanMetadataSerializer(serializers.Serializer):
    app = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    agent = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    model = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    connection = serializers.UUIDField(required=False, allow_null=True, help_text="A connection of yours.")


class ScanCreateSerializer(serializers.Serializer):
    contents = serializers.ListField(
        child=ScanContentSerializer(),
        help_text="Prompt, response, tool input/output (with tool_name) or retrieved context.",
    )
    metadata = ScanMetadataSerializer(required=False)
    profile = serializers.CharField(
        max_length=60, required=False, allow_blank=True, help_text="A scan profile's name; omit for the default."
    )


class ScanBatchSerializer(serializers.Serializer):
    items = serializers.ListField(child=ScanCreateSerializer(), help_text="1 to 100 scans, all or nothing.")


class FindingSerializer(serializers.Serializer):
    content = serializers.IntegerField(help_text="Index of the content in the request.")
    kind = serializers.CharField()
    detector = serializers.CharField()
    category = serializers.CharField()
    severity = serializers.ChoiceField(Severity.choices)
    score = serializers.FloatField()
    start = serializers.IntegerField(help_text="Span offsets into the content's text (end exclusive).")
    end = serializers.IntegerField()
    rule = serializers.CharField()
    excerpt = serializers.CharField(help_text="Redacted: personal data and secrets are masked.")
    action = serializers.ChoiceField(ScanAction.choices)


class ScanSerializer(serializers.ModelSerializer):
    """An AIRS-like report: ``scan_id``/``report_id``, ``category`` (benign or malicious),
    ``action``, ``prompt_detected``/``response_detected`` flags per detector, plus our findings."""

    scan_id = serializers.UUIDField(source="public_id", read_only=True)
    report_id = serializers.SerializerMethodField()
    category = serializers.SerializerMethodField(help_text="malicious when anything was blocked or alerted on.")
    prompt_detected = serializers.SerializerMethodField()
    response_detected = serializers.SerializerMethodField()
    findings = FindingSerializer(many=True, read_only=True)
    profile = serializers.CharField(source="profile_name", read_only=True)
    metadata = serializers.SerializerMethodField()

    class Meta:
        model = Scan
        fields = [
            "scan_id",
            "report_id",
            "verdict",
            "action",
            "category",
            "categories",
            "max_severity",
            "prompt_detected",
            "response_detected",
            "findings",
            "profile",
            "contents",
            "metadata",
            "duration_ms",
            "created_at",
        ]

    def get_report_id(self, scan) -> str:
        return f"R{scan.public_id.hex}"

    def get_category(self, scan) -> str:
        return "benign" if scan.action == ScanAction.ALLOW else "malicious"

    def _detected(self, scan, kinds) -> dict[str, bool]:
        return {
            detector: any(f["detector"] == detector and f["kind"] in kinds for f in scan.findings)
            for detector in sorted({f["detector"] for f in scan.findings})
        }

    @extend_schema_field(serializers.DictField(child=serializers.BooleanField()))
    def get_prompt_detected(self, scan):
        return self._detected(scan, {ContentKind.PROMPT, ContentKind.CONTEXT, ContentKind.TOOL_OUTPUT})

    @extend_schema_field(serializers.DictField(child=serializers.BooleanField()))
    def get_response_detected(self, scan):
        return self._detected(scan, {ContentKind.RESPONSE, ContentKind.TOOL_INPUT})

    @extend_schema_field(ScanMetadataSerializer)
    def get_metadata(self, scan):
        return {
            "app": scan.app,
            "agent": scan.agent,
            "model": scan.model_name,
            "connection": str(scan.connection.public_id) if scan.connection_id else None,
        }


class ScanBatchResultSerializer(serializers.Serializer):
    batch_id = serializers.UUIDField(allow_null=True)
    count = serializers.IntegerField()
    blocked = serializers.IntegerField()
    results = ScanSerializer(many=True)


# --- Alerts ----------------------------------------------------------------------------------
class AlertNoteSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author_label", read_only=True)

    class Meta:
        model = AlertNote
        fields = ["author", "body", "created_at"]


class IncidentSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    alerts = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = ["id", "title", "severity", "status", "created_at", "resolved_at", "alerts"]

    def get_alerts(self, incident) -> list[str]:
        return [str(public_id) for public_id in incident.alerts.values_list("public_id", flat=True)]


class AlertSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    assignee = serializers.SerializerMethodField()
    connection = serializers.SerializerMethodField()
    scan = serializers.SerializerMethodField()
    incident = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id",
            "title",
            "category",
            "severity",
            "status",
            "source",
            "count",
            "first_seen",
            "last_seen",
            "assignee",
            "connection",
            "scan",
            "incident",
            "acknowledged_at",
            "resolved_at",
        ]

    def get_assignee(self, alert) -> str | None:
        return alert.assignee.email if alert.assignee_id else None

    def get_connection(self, alert) -> str | None:
        return str(alert.connection.public_id) if alert.connection_id else None

    def get_scan(self, alert) -> str | None:
        return str(alert.scan.public_id) if alert.scan_id else None

    def get_incident(self, alert) -> str | None:
        return str(alert.incident.public_id) if alert.incident_id else None


class AlertDetailSerializer(AlertSerializer):
    notes = AlertNoteSerializer(many=True, read_only=True)
    incident_detail = serializers.SerializerMethodField()

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "dedup_key", "evidence", "notes", "incident_detail"]

    @extend_schema_field(IncidentSerializer(allow_null=True))
    def get_incident_detail(self, alert):
        return IncidentSerializer(alert.incident).data if alert.incident_id else None


class AlertUpdateSerializer(serializers.Serializer):
    assignee = serializers.EmailField(allow_null=True, help_text="A member's e-mail; null unassigns.")


class AlertActionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class AlertNoteCreateSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=5000)


class AlertBulkSerializer(serializers.Serializer):
    alerts = serializers.ListField(child=serializers.UUIDField(), max_length=500)
    action = serializers.ChoiceField(BULK_ACTIONS)
    assignee = serializers.EmailField(required=False, allow_null=True, help_text="For assign; null unassigns.")
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class AlertBulkResultSerializer(serializers.Serializer):
    changed = serializers.ListField(child=serializers.UUIDField())
    skipped = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))


# --- Summary ---------------------------------------------------------------------------------
class CategoryCountSerializer(serializers.Serializer):
    category = serializers.CharField()
    count = serializers.IntegerField()


class SummarySerializer(serializers.Serializer):
    window_hours = serializers.IntegerField()
    since = serializers.DateTimeField()
    open_alerts = serializers.IntegerField(help_text="OPEN and ACKNOWLEDGED alerts.")
    open_alerts_by_severity = serializers.DictField(child=serializers.IntegerField())
    unassigned_open_alerts = serializers.IntegerField()
    new_alerts = serializers.IntegerField()
    acknowledged_alerts = serializers.IntegerField()
    scans = serializers.IntegerField()
    blocked_scans = serializers.IntegerField()
    block_rate = serializers.FloatField()
    top_categories = CategoryCountSerializer(many=True)
