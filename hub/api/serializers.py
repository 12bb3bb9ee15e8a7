from rest_framework import serializers

from hub.choices import TokenScope
from hub.models import APIToken, AuditEvent, Membership, Notification, Organization, User, Webhook, WebhookDelivery
from hub.roles import ROLE_ACTIONS


class OrganizationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "kind"]


class MembershipSerializer(serializers.ModelSerializer):
    organization = OrganizationSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["organization", "role"]


class MeSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="user.public_id")
    email = serializers.EmailField(source="user.email")
    full_name = serializers.CharField(source="user.full_name")
    organization = OrganizationSerializer(source="membership.organization", allow_null=True)
    role = serializers.CharField(source="membership.role", allow_null=True)
    allowed_actions = serializers.SerializerMethodField()
    memberships = MembershipSerializer(many=True)
    token = serializers.SerializerMethodField()

    def get_allowed_actions(self, obj) -> list[str]:
        membership = obj["membership"]
        return sorted(ROLE_ACTIONS[membership.role]) if membership else []

    def get_token(self, obj) -> dict | None:
        token = obj.get("token")
        if token is None:
            return None
        return {"id": str(token.public_id), "name": token.name, "scopes": token.scopes, "expires_at": token.expires_at}


class APITokenSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    user = serializers.EmailField(source="user.email", read_only=True)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = APIToken
        fields = [
            "id",
            "name",
            "prefix",
            "user",
            "scopes",
            "status",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]
        read_only_fields = fields


class APITokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TokenScope.choices), allow_empty=False, max_length=len(TokenScope)
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class APITokenCreatedSerializer(APITokenSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once. Store it now; it cannot be retrieved.")

    class Meta(APITokenSerializer.Meta):
        fields = [*APITokenSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    actor = serializers.CharField(source="actor_email", read_only=True)
    token = serializers.CharField(source="token.prefix", read_only=True, allow_null=True, default=None)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "action",
            "actor",
            "token",
            "object_type",
            "object_id",
            "object_repr",
            "before",
            "after",
            "request_id",
            "ip_address",
        ]
        read_only_fields = fields


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["email", "full_name"]


_EVENT_TYPES_HELP = (
    "Event types to receive, e.g. `connection.state_changed`, `port.state_changed`. "
    "`GET /api/v1/webhooks/event-types/` lists them all."
)


class WebhookSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    created_by = serializers.EmailField(source="created_by.email", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Webhook
        fields = ["id", "url", "description", "event_types", "is_active", "created_by", "created_at", "updated_at"]
        read_only_fields = fields


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The signing secret. Shown once: store it now (rotate it if it is lost)."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, help_text="http(s) URL of your endpoint; https in production.")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    event_types = serializers.ListField(child=serializers.CharField(max_length=64), help_text=_EVENT_TYPES_HELP)
    is_active = serializers.BooleanField(required=False, default=True)


class WebhookUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, help_text=_EVENT_TYPES_HELP
    )
    is_active = serializers.BooleanField(required=False)


class EventTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()


class WebhookDeliverySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    webhook = serializers.UUIDField(source="webhook.public_id", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "response_excerpt",
            "created_at",
            "delivered_at",
            "payload",
        ]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    read = serializers.BooleanField(source="is_read", read_only=True)

    class Meta:
        model = Notification
        fields = ["id", "event_type", "event_id", "title", "body", "link", "read", "read_at", "created_at"]
        read_only_fields = fields


class MarkedReadSerializer(serializers.Serializer):
    marked_read = serializers.IntegerField()
