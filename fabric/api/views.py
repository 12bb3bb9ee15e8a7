from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from fabric import pricing, selectors, services
from fabric.api import serializers as s
from fabric.filters import ConnectionFilter, MetroFilter, PortFilter
from fabric.models import Connection, Metro, Port
from hub.api.idempotency import run_idempotent
from hub.api.viewsets import OrgScopedMixin
from hub.roles import Action


def plan_as_dict(plan: services.ConnectionPlan) -> dict:
    return {
        "dry_run": plan.dry_run,
        "allowed": plan.allowed,
        "quote": plan.quote.as_dict(),
        "latency": plan.latency,
        "approvals": plan.approvals,
        "violations": [v.as_dict() for v in plan.violations],
        "connections": s.ConnectionSerializer(plan.connections, many=True).data,
    }


class MetroViewSet(viewsets.ReadOnlyModelViewSet):
    """Data-center metros (reference data, the same for every organization)."""

    queryset = Metro.objects.all()
    serializer_class = s.MetroSerializer
    lookup_field = "code"
    required_action = Action.FABRIC_VIEW
    filterset_class = MetroFilter
    ordering_fields = ["code", "name", "region"]

    @extend_schema(responses=s.LatencySerializer(many=True))
    @action(detail=True)
    def latency(self, request, code=None):
        """Estimated round-trip latency from this metro to every other one, nearest first."""
        origin = self.get_object()
        rows = [services.latency_leg(origin, other) for other in Metro.objects.exclude(pk=origin.pk)]
        return Response(sorted(rows, key=lambda row: row["estimated_rtt_ms"]))


@extend_schema_view(
    create=extend_schema(request=s.PortCreateSerializer, responses={201: s.PortSerializer}),
    partial_update=extend_schema(request=s.PortUpdateSerializer, responses=s.PortSerializer),
    destroy=extend_schema(
        responses={202: s.PortSerializer}, description="Decommission the port (refused while connections use it)."
    ),
)
class PortViewSet(
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Your ports. Ordering one starts a provisioning workflow; it becomes ACTIVE when done."""

    queryset = Port.objects.select_related("metro", "organization")
    serializer_class = s.PortSerializer
    action_permissions = {"list": Action.FABRIC_VIEW, "retrieve": Action.FABRIC_VIEW}
    required_action = Action.FABRIC_MANAGE
    filterset_class = PortFilter
    ordering_fields = ["name", "created_at", "speed_mbps"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_class(self):
        return s.PortDetailSerializer if self.action == "retrieve" else s.PortSerializer

    def retrieve(self, request, *args, **kwargs):
        port = self.get_object()
        port.vlans_in_use = selectors.port_vlans(port=port)
        return Response(s.PortDetailSerializer(port).data)

    def create(self, request):
        def handler():
            payload = s.PortCreateSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            port = services.port_order(membership=request._request.membership, **payload.validated_data)
            return Response(s.PortSerializer(port).data, status=status.HTTP_201_CREATED)

        return run_idempotent(request, handler)

    def partial_update(self, request, *args, **kwargs):
        payload = s.PortUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        port = services.port_update(
            membership=request._request.membership, port=self.get_object(), **payload.validated_data
        )
        return Response(s.PortSerializer(port).data)

    def destroy(self, request, *args, **kwargs):
        port = services.port_decommission(membership=request._request.membership, port=self.get_object())
        return Response(s.PortSerializer(port).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    create=extend_schema(
        request=s.ConnectionCreateSerializer,
        responses={
            201: s.ConnectionPlanSerializer,
            200: OpenApiResponse(s.ConnectionPlanSerializer, description="dry run"),
        },
    ),
    partial_update=extend_schema(request=s.ConnectionUpdateSerializer, responses={202: s.ConnectionSerializer}),
    destroy=extend_schema(responses={202: s.ConnectionSerializer}, description="Deprovision the connection."),
)
class ConnectionViewSet(OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Connections you requested and requests that land on your ports.

    States and who each waits on (`pending_on`) are published in the `state` field's description.
    """

    queryset = Connection.objects.all()
    serializer_class = s.ConnectionSerializer
    action_permissions = {
        "list": Action.FABRIC_VIEW,
        "retrieve": Action.FABRIC_VIEW,
        "events": Action.FABRIC_VIEW,
        "workflows": Action.FABRIC_VIEW,
    }
    required_action = Action.FABRIC_MANAGE
    filterset_class = ConnectionFilter
    ordering_fields = ["created_at", "name", "bandwidth_mbps", "state"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.connection_list(org=self.request._request.org)

    def _membership(self):
        return self.request._request.membership

    def create(self, request):
        def handler():
            payload = s.ConnectionCreateSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            data = payload.validated_data
            org = request._request.org
            a_port = get_object_or_404(
                Port.objects.select_related("metro", "organization").for_org(org), public_id=data["a_port"]
            )
            z_ports = services.connectable_z_ports(org)
            z_port = get_object_or_404(z_ports, public_id=data["z_port"])
            secondary = None
            if data.get("secondary"):
                second = data["secondary"]
                secondary = services.ConnectionSpec(
                    a_port=get_object_or_404(
                        Port.objects.select_related("metro", "organization").for_org(org), public_id=second["a_port"]
                    ),
                    z_port=get_object_or_404(z_ports, public_id=second["z_port"]),
                    a_vlan=second.get("a_vlan"),
                )
            plan = services.connection_request(
                membership=self._membership(),
                name=data["name"],
                a_port=a_port,
                z_port=z_port,
                bandwidth_mbps=data["bandwidth_mbps"],
                a_vlan=data.get("a_vlan"),
                purchase_order=data["purchase_order"],
                secondary=secondary,
                dry_run=data["dry_run"],
            )
            return Response(plan_as_dict(plan), status=status.HTTP_200_OK if plan.dry_run else status.HTTP_201_CREATED)

        return run_idempotent(request, handler)

    def partial_update(self, request, *args, **kwargs):
        payload = s.ConnectionUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        connection = services.connection_modify_bandwidth(
            membership=self._membership(), connection=self.get_object(), **payload.validated_data
        )
        return Response(s.ConnectionSerializer(connection).data, status=status.HTTP_202_ACCEPTED)

    def destroy(self, request, *args, **kwargs):
        connection = services.connection_deprovision(membership=self._membership(), connection=self.get_object())
        return Response(s.ConnectionSerializer(connection).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.ApproveSerializer, responses=s.ConnectionSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, public_id=None):
        """Z side: accept the request (choose your VLAN, or omit it to allocate one)."""
        payload = s.ApproveSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        connection = services.connection_approve(
            membership=self._membership(), connection=self.get_object(), **payload.validated_data
        )
        return Response(s.ConnectionSerializer(connection).data)

    @extend_schema(request=s.RejectSerializer, responses=s.ConnectionSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, public_id=None):
        """Z side: refuse the request, saying why."""
        payload = s.RejectSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        connection = services.connection_reject(
            membership=self._membership(), connection=self.get_object(), **payload.validated_data
        )
        return Response(s.ConnectionSerializer(connection).data)

    @extend_schema(request=None, responses=s.ConnectionSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, public_id=None):
        """Requester: withdraw a request before provisioning starts."""
        connection = services.connection_cancel(membership=self._membership(), connection=self.get_object())
        return Response(s.ConnectionSerializer(connection).data)

    @extend_schema(request=None, responses={202: s.ConnectionSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, public_id=None):
        """Requester: run a failed connection's workflow again."""
        connection = services.connection_retry(membership=self._membership(), connection=self.get_object())
        return Response(s.ConnectionSerializer(connection).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.ConnectionEventSerializer(many=True))
    @action(detail=True)
    def events(self, request, public_id=None):
        """Every state change, who made it and why."""
        return Response(
            s.ConnectionEventSerializer(self.get_object().events.order_by("created_at", "id"), many=True).data
        )

    @extend_schema(responses=s.WorkflowSerializer(many=True))
    @action(detail=True)
    def workflows(self, request, public_id=None):
        """Provisioning workflows with their steps, attempts and errors, newest first."""
        workflows = self.get_object().workflows.prefetch_related("steps").order_by("-created_at", "-id")
        return Response(s.WorkflowSerializer(workflows, many=True).data)


class QuoteView(APIView):
    """Price and latency for a connection between two metros (and optionally a new port)."""

    required_action = Action.FABRIC_VIEW

    @extend_schema(request=s.QuoteRequestSerializer, responses={200: s.QuoteSerializer})
    def post(self, request):
        payload = s.QuoteRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        quote = pricing.connection_quote(
            a_metro=data["a_metro"], z_metro=data["z_metro"], bandwidth_mbps=data["bandwidth_mbps"]
        )
        if data.get("port_speed_mbps"):
            quote.lines += pricing.port_quote(speed_mbps=data["port_speed_mbps"]).lines
        return Response({**quote.as_dict(), "latency": services.latency_leg(data["a_metro"], data["z_metro"])})
