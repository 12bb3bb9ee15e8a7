from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from hub import selectors, services
from hub.api.idempotency import run_idempotent
from hub.api.pagination import TimelineCursorPagination
from hub.api.serializers import (
    APITokenCreatedSerializer,
    APITokenCreateSerializer,
    APITokenSerializer,
    AuditEventSerializer,
    MeSerializer,
)
from hub.api.viewsets import OrgScopedMixin
from hub.filters import AuditEventFilter
from hub.models import APIToken, AuditEvent
from hub.roles import Action, role_allows


class MeView(APIView):
    """Who the request acts as: user, organization, role, allowed actions and (for tokens) the token."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        membership = request._request.membership
        data = {
            "user": request.user,
            "membership": membership,
            "memberships": selectors.user_memberships(user=request.user),
            "token": request.auth if isinstance(request.auth, APIToken) else None,
        }
        return Response(MeSerializer(data).data)


class APITokenViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """API tokens of the organization: a member sees their own, an admin sees all.

    `DELETE` revokes a token (it stays listed as revoked).
    """

    queryset = APIToken.objects.select_related("user")
    serializer_class = APITokenSerializer
    required_action = Action.TOKENS_USE
    ordering_fields = ["created_at", "name", "last_used_at"]
    filterset_fields = ["name"]

    def get_queryset(self):
        membership = self.request._request.membership
        see_all = role_allows(membership.role, Action.TOKENS_MANAGE)
        return selectors.token_list(org=membership.organization, user=self.request.user, see_all=see_all)

    @extend_schema(request=APITokenCreateSerializer, responses={201: APITokenCreatedSerializer})
    def create(self, request):
        def handler():
            payload = APITokenCreateSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            token, secret = services.api_token_create(membership=request._request.membership, **payload.validated_data)
            token.secret = secret
            return Response(APITokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

        return run_idempotent(request, handler)

    @extend_schema(responses={200: APITokenSerializer})
    def destroy(self, request, *args, **kwargs):
        token = services.api_token_revoke(token=self.get_object(), actor_membership=request._request.membership)
        return Response(APITokenSerializer(token).data)


class AuditEventViewSet(OrgScopedMixin, viewsets.ReadOnlyModelViewSet):
    """The organization's append-only audit log (org admins and security analysts), newest first.

    Paginated by cursor: follow `next` (`?limit=` sets the page size, at most 500).
    """

    queryset = AuditEvent.objects.select_related("token")
    serializer_class = AuditEventSerializer
    required_action = Action.AUDIT_VIEW
    filterset_class = AuditEventFilter
    pagination_class = TimelineCursorPagination
    filter_backends = [DjangoFilterBackend]
