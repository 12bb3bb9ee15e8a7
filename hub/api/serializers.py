from rest_framework import serializers

from hub.choices import TokenScope
from hub.models import APIToken, AuditEvent, Membership, Organization, User
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
