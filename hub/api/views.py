from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from hub import selectors, services
from hub.api import serializers as s
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
from hub.choices import DeliveryStatus
from hub.errors import DomainError
from hub.events import subscribable_event_types
from hub.filters import AuditEventFilter, NotificationFilter
from hub.models import APIToken, AuditEvent, Notification, Webhook, WebhookDelivery
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


@extend_schema_view(
    create=extend_schema(request=s.WebhookCreateSerializer, responses={201: s.WebhookCreatedSerializer}),
    partial_update=extend_schema(request=s.WebhookUpdateSerializer, responses=s.WebhookSerializer),
    destroy=extend_schema(responses={204: None}, description="Delete the webhook and its delivery log."),
)
class WebhookViewSet(OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Endpoints that receive the organization's events (org owners and admins).

    Every delivery is a JSON `POST` with `X-Hub-Event`, `X-Hub-Delivery`, `X-Hub-Timestamp` and
    `X-Hub-Signature: sha256=<hex>`, the HMAC-SHA256 of `"{timestamp}.{raw body}"` keyed with the
    webhook's secret. The secret is returned only by create and `rotate-secret`. Non-2xx answers are
    retried with exponential backoff; each webhook's `deliveries` are its log.
    """

    queryset = Webhook.objects.select_related("created_by")
    serializer_class = s.WebhookSerializer
    required_action = Action.WEBHOOKS_MANAGE
    ordering_fields = ["created_at", "url"]
    filterset_fields = ["is_active"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _membership(self):
        return self.request._request.membership

    def create(self, request):
        def handler():
            payload = s.WebhookCreateSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            webhook, secret = services.webhook_create(membership=self._membership(), **payload.validated_data)
            webhook.secret = secret
            return Response(s.WebhookCreatedSerializer(webhook).data, status=status.HTTP_201_CREATED)

        return run_idempotent(request, handler)

    def partial_update(self, request, *args, **kwargs):
        payload = s.WebhookUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        webhook = services.webhook_update(
            membership=self._membership(), webhook=self.get_object(), **payload.validated_data
        )
        return Response(s.WebhookSerializer(webhook).data)

    def destroy(self, request, *args, **kwargs):
        services.webhook_delete(membership=self._membership(), webhook=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: s.WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, public_id=None):
        """Send a `webhook.test` event to this webhook only; follow it in `deliveries`."""
        delivery = services.webhook_send_test(membership=self._membership(), webhook=self.get_object())
        return Response(s.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=s.WebhookCreatedSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret", url_name="rotate-secret")
    def rotate_secret(self, request, public_id=None):
        """Replace the signing secret; the new one is in the response, once."""
        webhook, secret = services.webhook_rotate_secret(membership=self._membership(), webhook=self.get_object())
        webhook.secret = secret
        return Response(s.WebhookCreatedSerializer(webhook).data)

    @extend_schema(
        responses=s.WebhookDeliverySerializer(many=True),
        parameters=[OpenApiParameter("status", enum=DeliveryStatus.values, required=False)],
    )
    @action(detail=True, filter_backends=[])
    def deliveries(self, request, public_id=None):
        """The webhook's delivery log, newest first (`?status=FAILED` for the failed ones)."""
        deliveries = selectors.webhook_deliveries(webhook=self.get_object()).select_related("webhook")
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in DeliveryStatus.values:
                raise DomainError(f"Use one of {', '.join(DeliveryStatus.values)}.", field="status")
            deliveries = deliveries.filter(status=wanted)
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(s.WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: s.WebhookDeliverySerializer})
    @action(
        detail=True,
        methods=["post"],
        url_path=r"deliveries/(?P<delivery_id>[0-9a-fA-F-]{36})/redeliver",
        url_name="redeliver",
    )
    def redeliver(self, request, public_id=None, delivery_id=None):
        """Send a failed delivery again (same event id and payload, fresh attempts)."""
        delivery = get_object_or_404(
            WebhookDelivery.objects.for_org(request._request.org), webhook=self.get_object(), public_id=delivery_id
        )
        delivery = services.webhook_redeliver(membership=self._membership(), delivery=delivery)
        return Response(s.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.EventTypeSerializer(many=True))
    @action(detail=False, url_path="event-types", url_name="event-types", pagination_class=None, filter_backends=[])
    def event_types(self, request):
        """Event types a webhook can subscribe to."""
        rows = [{"name": name, "description": text} for name, text in subscribable_event_types().items()]
        return Response(s.EventTypeSerializer(rows, many=True).data)


class NotificationViewSet(OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your in-app notifications in the organization, newest first (`?unread=true` for the unread ones)."""

    queryset = Notification.objects.all()
    serializer_class = s.NotificationSerializer
    required_action = Action.ORG_VIEW
    filterset_class = NotificationFilter
    ordering_fields = ["created_at"]

    def get_queryset(self):
        return selectors.notification_list(org=self.request._request.org, user=self.request.user)

    @extend_schema(request=None, responses=s.NotificationSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request, public_id=None):
        """Mark the notification read."""
        notification = services.notification_mark_read(
            membership=request._request.membership, notification=self.get_object()
        )
        return Response(s.NotificationSerializer(notification).data)

    @extend_schema(request=None, responses=s.MarkedReadSerializer)
    @action(detail=False, methods=["post"], url_path="read-all", url_name="read-all", filter_backends=[])
    def read_all(self, request):
        """Mark all your unread notifications read."""
        count = services.notification_mark_all_read(membership=request._request.membership)
        return Response({"marked_read": count})
