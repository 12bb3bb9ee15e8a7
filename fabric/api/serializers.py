from rest_framework import serializers

from fabric.choices import ConnectionState, PortSpeed, state_machine_markdown
from fabric.models import Connection, ConnectionEvent, Metro, Port, Workflow, WorkflowStep
from fabric.pricing import MAX_BANDWIDTH_MBPS


class MetroSerializer(serializers.ModelSerializer):
    class Meta:
        model = Metro
        fields = ["code", "name", "country", "region", "sovereignty_zone", "latitude", "longitude"]
        read_only_fields = fields


class PortSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    metro = serializers.SlugRelatedField(slug_field="code", queryset=Metro.objects.all())
    organization = serializers.CharField(source="organization.slug", read_only=True)
    available_mbps = serializers.IntegerField(read_only=True)

    class Meta:
        model = Port
        fields = [
            "id",
            "name",
            "organization",
            "metro",
            "speed_mbps",
            "capacity_mbps",
            "committed_mbps",
            "available_mbps",
            "state",
            "auto_approve",
            "created_at",
        ]
        read_only_fields = ["capacity_mbps", "committed_mbps", "state", "created_at"]


class PortCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    metro = serializers.SlugRelatedField(slug_field="code", queryset=Metro.objects.all())
    speed_mbps = serializers.ChoiceField(choices=PortSpeed.choices)
    auto_approve = serializers.BooleanField(default=False)


class PortUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    auto_approve = serializers.BooleanField(required=False)


class PortDetailSerializer(PortSerializer):
    vlans_in_use = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta(PortSerializer.Meta):
        fields = [*PortSerializer.Meta.fields, "vlans_in_use"]


class PortRefSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField()
    organization = serializers.CharField(source="organization.name")
    metro = serializers.CharField(source="metro.code")


class ConnectionSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    organization = serializers.CharField(source="organization.slug", read_only=True)
    a_port = PortRefSerializer(read_only=True)
    z_port = PortRefSerializer(read_only=True)
    state = serializers.ChoiceField(
        choices=ConnectionState.choices,
        read_only=True,
        help_text="The connection state machine:\n\n" + state_machine_markdown(),
    )

    class Meta:
        model = Connection
        fields = [
            "id",
            "name",
            "organization",
            "a_port",
            "a_vlan",
            "z_port",
            "z_vlan",
            "bandwidth_mbps",
            "requested_bandwidth_mbps",
            "state",
            "pending_on",
            "status_reason",
            "redundancy_group",
            "priority",
            "purchase_order",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SecondarySerializer(serializers.Serializer):
    a_port = serializers.UUIDField()
    z_port = serializers.UUIDField()
    a_vlan = serializers.IntegerField(min_value=2, max_value=4094, required=False, allow_null=True)


class ConnectionCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    a_port = serializers.UUIDField(help_text="Your port (id).")
    z_port = serializers.UUIDField(help_text="Another of your ports, or a provider's port (id).")
    bandwidth_mbps = serializers.IntegerField(min_value=1, max_value=MAX_BANDWIDTH_MBPS)
    a_vlan = serializers.IntegerField(
        min_value=2, max_value=4094, required=False, allow_null=True, help_text="Omit to allocate."
    )
    purchase_order = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    secondary = SecondarySerializer(required=False, help_text="A second connection on other ports: a redundant pair.")
    dry_run = serializers.BooleanField(
        default=False, help_text="Price, latency, approvals and violations; creates nothing."
    )


class ConnectionUpdateSerializer(serializers.Serializer):
    bandwidth_mbps = serializers.IntegerField(min_value=1, max_value=MAX_BANDWIDTH_MBPS)


class ApproveSerializer(serializers.Serializer):
    z_vlan = serializers.IntegerField(
        min_value=2, max_value=4094, required=False, allow_null=True, help_text="Omit to allocate."
    )


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ConnectionEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = ConnectionEvent
        fields = ["created_at", "from_state", "to_state", "actor", "message"]


class WorkflowStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = WorkflowStep
        fields = ["position", "name", "status", "attempts", "error", "started_at", "finished_at"]


class WorkflowSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")
    steps = WorkflowStepSerializer(many=True)

    class Meta:
        model = Workflow
        fields = ["id", "kind", "status", "error", "next_attempt_at", "created_at", "finished_at", "steps"]


class QuoteRequestSerializer(serializers.Serializer):
    a_metro = serializers.SlugRelatedField(slug_field="code", queryset=Metro.objects.all())
    z_metro = serializers.SlugRelatedField(slug_field="code", queryset=Metro.objects.all())
    bandwidth_mbps = serializers.IntegerField(min_value=1, max_value=MAX_BANDWIDTH_MBPS)
    port_speed_mbps = serializers.ChoiceField(
        choices=PortSpeed.choices, required=False, help_text="Add a new port's fees."
    )


class QuoteLineSerializer(serializers.Serializer):
    description = serializers.CharField()
    monthly = serializers.DecimalField(max_digits=12, decimal_places=2)
    one_off = serializers.DecimalField(max_digits=12, decimal_places=2)


class QuoteSerializer(serializers.Serializer):
    currency = serializers.CharField()
    monthly_total = serializers.DecimalField(max_digits=12, decimal_places=2)
    one_off_total = serializers.DecimalField(max_digits=12, decimal_places=2)
    lines = QuoteLineSerializer(many=True)


class LatencySerializer(serializers.Serializer):
    a_metro = serializers.CharField()
    z_metro = serializers.CharField()
    distance_km = serializers.FloatField()
    floor_rtt_ms = serializers.FloatField()
    estimated_rtt_ms = serializers.FloatField()


class ViolationSerializer(serializers.Serializer):
    guard = serializers.CharField()
    severity = serializers.ChoiceField(choices=["block", "approval", "warn"])
    message = serializers.CharField()


class ConnectionPlanSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    allowed = serializers.BooleanField()
    quote = QuoteSerializer()
    latency = LatencySerializer(many=True)
    approvals = serializers.ListField(child=serializers.CharField())
    violations = ViolationSerializer(many=True)
    connections = ConnectionSerializer(many=True)
