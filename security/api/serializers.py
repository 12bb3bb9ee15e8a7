import uuid

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


# The scan endpoint's lean path. ``ScanCreateSerializer`` documents the request and stays the judge
# of anything unusual: ``scan_create_data`` accepts, without building the serializer, only input
# that the serializer accepts unchanged (plain strings and lists, no NUL or surrogate characters,
# lengths within the limits) and returns the same validated data; every other input goes through
# the serializer, so the errors are its own.
_KINDS = frozenset(ContentKind.values)
_MISSING = object()


def _plain_text(value) -> bool:
    """True when CharField would take ``value`` as it is (a str without NUL or surrogates)."""
    if type(value) is not str or "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the serializer refuses it
        return False
    return True


def _short_text(mapping: dict, key: str, max_length: int, default=""):
    """The stripped value of an optional trimmed CharField, ``default`` when absent, or _MISSING
    when the serializer has to judge it."""
    value = mapping.get(key, _MISSING)
    if value is _MISSING:
        return default
    if not _plain_text(value):
        return _MISSING
    value = value.strip()
    return value if len(value) <= max_length else _MISSING


def _scan_create_fast(data):
    if type(data) is not dict:
        return None
    contents = data.get("contents")
    if type(contents) is not list:
        return None
    items = []
    for item in contents:
        if type(item) is not dict:
            return None
        kind, text = item.get("kind"), item.get("text")
        if type(kind) is not str or kind not in _KINDS or not _plain_text(text):
            return None
        tool_name = _short_text(item, "tool_name", 100)
        if tool_name is _MISSING:
            return None
        items.append({"kind": kind, "text": text, "tool_name": tool_name})
    validated = {"contents": items}
    if "metadata" in data:
        metadata = data["metadata"]
        if type(metadata) is not dict:
            return None
        cleaned = {}
        for key in ("app", "agent", "model"):
            cleaned[key] = _short_text(metadata, key, 100)
            if cleaned[key] is _MISSING:
                return None
        if "connection" in metadata:
            connection = metadata["connection"]
            if connection is not None:
                if type(connection) is not str:
                    return None
                try:
                    connection = uuid.UUID(hex=connection)
                except ValueError:
                    return None
            cleaned["connection"] = connection
        validated["metadata"] = cleaned
    profile = _short_text(data, "profile", 60, default=None)
    if profile is _MISSING:
        return None
    if profile is not None:
        validated["profile"] = profile
    return validated


def scan_create_data(data) -> dict:
    """The validated data of ``ScanCreateSerializer`` for ``data``; raises its ValidationError."""
    validated = _scan_create_fast(data)
    if validated is None:
        payload = ScanCreateSerializer(data=data)
        payload.is_valid(raise_exception=True)
        validated = payload.validated_data
    return validated


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


# ``ScanSerializer`` documents a scan; ``scan_data`` writes the same JSON without building it (the
# create endpoints answer with it; a test compares the two).
_DATETIME = serializers.DateTimeField()
_SCAN_KINDS = frozenset({ContentKind.PROMPT, ContentKind.CONTEXT, ContentKind.TOOL_OUTPUT})
_RESPONSE_KINDS = frozenset({ContentKind.RESPONSE, ContentKind.TOOL_INPUT})


def _choice(value):
    return value if value in ("", None) else str(value)


def scan_data(scan: Scan) -> dict:
    findings = [
        {
            "content": int(f["content"]),
            "kind": str(f["kind"]),
            "detector": str(f["detector"]),
            "category": str(f["category"]),
            "severity": _choice(f["severity"]),
            "score": float(f["score"]),
            "start": int(f["start"]),
            "end": int(f["end"]),
            "rule": str(f["rule"]),
            "excerpt": str(f["excerpt"]),
            "action": _choice(f["action"]),
        }
        for f in scan.findings
    ]
    hit = sorted({f["detector"] for f in findings})
    return {
        "scan_id": str(scan.public_id),
        "report_id": f"R{scan.public_id.hex}",
        "verdict": _choice(scan.verdict),
        "action": _choice(scan.action),
        "category": "benign" if scan.action == ScanAction.ALLOW else "malicious",
        "categories": scan.categories,
        "max_severity": _choice(scan.max_severity),
        "prompt_detected": {d: any(f["detector"] == d and f["kind"] in _SCAN_KINDS for f in findings) for d in hit},
        "response_detected": {
            d: any(f["detector"] == d and f["kind"] in _RESPONSE_KINDS for f in findings) for d in hit
        },
        "findings": findings,
        "profile": str(scan.profile_name),
        "contents": scan.contents,
        "metadata": {
            "app": scan.app,
            "agent": scan.agent,
            "model": scan.model_name,
            "connection": str(scan.connection.public_id) if scan.connection_id else None,
        },
        "duration_ms": float(scan.duration_ms),
        "created_at": _DATETIME.to_representation(scan.created_at),
    }
