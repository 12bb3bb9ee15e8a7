"""Security API: scans, scan profiles, the policy, alerts and the summary. Views are thin: they
parse, call a service or a selector, and serialize."""

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from fabric.models import Connection
from hub.api.idempotency import run_idempotent
from hub.api.renderers import OrjsonRenderer
from hub.api.viewsets import OrgScopedMixin
from hub.errors import DomainError, NotFound
from hub.models import Membership, User
from hub.roles import Action
from marketplace.models import ProviderProfile
from security import selectors, services
from security.api import serializers as s
from security.api.filters import AlertFilter, ScanFilter
from security.choices import Verdict
from security.models import Alert, Scan, ScanProfile


def _membership(request):
    return request._request.membership


def build_scan_request(data: dict, *, org, prefix: str = "") -> services.ScanRequest:
    metadata = data.get("metadata") or {}
    connection = None
    if metadata.get("connection"):
        connection = Connection.objects.for_org(org).filter(public_id=metadata["connection"]).first()
        if connection is None:
            raise NotFound("No such connection.", field=f"{prefix}metadata.connection")
    return services.ScanRequest(
        contents=[
            services.ScanContent(kind=c["kind"], text=c["text"], tool_name=c.get("tool_name", ""))
            for c in data["contents"]
        ],
        profile=data.get("profile") or None,
        app=metadata.get("app", ""),
        agent=metadata.get("agent", ""),
        model_name=metadata.get("model", ""),
        connection=connection,
    )


@extend_schema_view(
    list=extend_schema(description="Scans, newest first. Findings hold redacted excerpts only."),
    create=extend_schema(request=s.ScanCreateSerializer, responses={201: s.ScanSerializer}),
)
class ScanViewSet(OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """AI runtime scanning: send prompts, responses, tool events or retrieved context and get a
    verdict (allow or block), the action, categories and findings with span offsets."""

    queryset = Scan.objects.all()
    serializer_class = s.ScanSerializer
    action_permissions = {"list": Action.SECURITY_VIEW, "retrieve": Action.SECURITY_VIEW}
    required_action = Action.SECURITY_MANAGE
    filterset_class = ScanFilter
    ordering_fields = ["created_at", "duration_ms", "finding_count"]
    renderer_classes = [OrjsonRenderer, *(r for r in api_settings.DEFAULT_RENDERER_CLASSES if r is not JSONRenderer)]

    def get_queryset(self):
        return selectors.scan_list(org=self.request._request.org)

    def create(self, request):
        def handler():
            # ScanCreateSerializer and ScanSerializer document this; the lean functions do the same.
            scan_request = build_scan_request(s.scan_create_data(request.data), org=request._request.org)
            scan = services.scan_run(membership=_membership(request), request=scan_request)
            return Response(s.scan_data(scan), status=status.HTTP_201_CREATED)

        return run_idempotent(request, handler)

    @extend_schema(request=s.ScanBatchSerializer, responses={201: s.ScanBatchResultSerializer})
    @action(detail=False, methods=["post"])
    def batch(self, request):
        """Up to 100 scans in one call, all or nothing: one bad item refuses the batch."""

        def handler():
            payload = s.ScanBatchSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            org = request._request.org
            items = payload.validated_data["items"]
            requests = [build_scan_request(item, org=org, prefix=f"items.{i}.") for i, item in enumerate(items)]
            scans = services.scan_batch(membership=_membership(request), requests=requests)
            body = {
                "batch_id": str(scans[0].batch_id),
                "count": len(scans),
                "blocked": sum(scan.verdict == Verdict.BLOCK for scan in scans),
                "results": [s.scan_data(scan) for scan in scans],
            }
            return Response(body, status=status.HTTP_201_CREATED)

        return run_idempotent(request, handler)


@extend_schema_view(
    create=extend_schema(request=s.ScanProfileWriteSerializer, responses={201: s.ScanProfileSerializer}),
    update=extend_schema(request=s.ScanProfileWriteSerializer, responses=s.ScanProfileSerializer),
    partial_update=extend_schema(request=s.ScanProfileWriteSerializer, responses=s.ScanProfileSerializer),
)
class ScanProfileViewSet(OrgScopedMixin, viewsets.ModelViewSet):
    """Scan profiles: detectors on or off, thresholds, actions per severity or category, URL lists.
    The default profile (created on first use) scans requests that name none."""

    queryset = ScanProfile.objects.all()
    serializer_class = s.ScanProfileSerializer
    action_permissions = {"list": Action.SECURITY_VIEW, "retrieve": Action.SECURITY_VIEW}
    required_action = Action.SECURITY_MANAGE
    ordering_fields = ["name", "created_at"]

    def list(self, request, *args, **kwargs):
        services.profile_default(org=request._request.org)
        return super().list(request, *args, **kwargs)

    def create(self, request, *args, **kwargs):
        def handler():
            payload = s.ScanProfileWriteSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            profile = services.profile_create(membership=_membership(request), **payload.validated_data)
            return Response(s.ScanProfileSerializer(profile).data, status=status.HTTP_201_CREATED)

        return run_idempotent(request, handler)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        payload = s.ScanProfileWriteSerializer(data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        profile = services.profile_update(
            membership=_membership(request), profile=self.get_object(), **payload.validated_data
        )
        return Response(s.ScanProfileSerializer(profile).data)

    def destroy(self, request, *args, **kwargs):
        services.profile_delete(membership=_membership(request), profile=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class PolicyView(APIView):
    """The organization's governance policy, enforced on every connection request and bandwidth
    increase: allowed sovereignty zones, blocked categories and providers, approval bandwidth."""

    def get_permissions(self):
        self.required_action = Action.SECURITY_VIEW if self.request.method == "GET" else Action.SECURITY_MANAGE
        return super().get_permissions()

    @extend_schema(responses=s.PolicySerializer)
    def get(self, request):
        return Response(s.PolicySerializer(selectors.policy_for(org=request._request.org)).data)

    @extend_schema(request=s.PolicyUpdateSerializer, responses=s.PolicySerializer)
    def put(self, request):
        """Replace the policy: fields left out are reset (no zone limit, nothing blocked, no approval)."""
        return self._update(request, partial=False)

    @extend_schema(request=s.PolicyUpdateSerializer, responses=s.PolicySerializer)
    def patch(self, request):
        """Change only the fields given."""
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        payload = s.PolicyUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        if not partial:
            data = {
                "allowed_zones": [],
                "blocked_categories": [],
                "blocked_providers": [],
                "approval_bandwidth_mbps": None,
                **data,
            }
        if "blocked_providers" in data:
            slugs = data["blocked_providers"]
            providers = list(ProviderProfile.objects.filter(slug__in=slugs))
            unknown = sorted(set(slugs) - {p.slug for p in providers})
            if unknown:
                raise DomainError(f"Unknown provider(s): {', '.join(unknown)}.", field="blocked_providers")
            data["blocked_providers"] = providers
        policy = services.policy_update(membership=_membership(request), **data)
        return Response(s.PolicySerializer(policy).data)


def _member_user(request, email: str | None) -> User | None:
    if email is None:
        return None
    member = (
        Membership.objects.for_org(request._request.org)
        .filter(user__email__iexact=email)
        .select_related("user")
        .first()
    )
    if member is None:
        raise DomainError("The assignee must be a member of your organization.", field="assignee")
    return member.user


@extend_schema_view(
    list=extend_schema(description="Alerts, most recently seen first."),
    retrieve=extend_schema(responses=s.AlertDetailSerializer),
    partial_update=extend_schema(request=s.AlertUpdateSerializer, responses=s.AlertDetailSerializer),
)
class AlertViewSet(OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alerts from scans, network telemetry, the control plane and policy denials. Repeats of the
    same problem raise ``count`` and ``last_seen`` instead of new alerts."""

    queryset = Alert.objects.all()
    serializer_class = s.AlertSerializer
    action_permissions = {"list": Action.SECURITY_VIEW, "retrieve": Action.SECURITY_VIEW}
    required_action = Action.SECURITY_MANAGE
    filterset_class = AlertFilter
    ordering_fields = ["last_seen", "first_seen", "severity", "count", "created_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        queryset = selectors.alert_list(org=self.request._request.org)
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("notes")
        return queryset

    def get_serializer_class(self):
        return s.AlertDetailSerializer if self.action == "retrieve" else s.AlertSerializer

    def _detail(self, alert: Alert) -> Response:
        return Response(s.AlertDetailSerializer(self.get_queryset().prefetch_related("notes").get(pk=alert.pk)).data)

    def partial_update(self, request, *args, **kwargs):
        payload = s.AlertUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        alert = services.alert_assign(
            membership=_membership(request),
            alert=self.get_object(),
            assignee=_member_user(request, payload.validated_data["assignee"]),
        )
        return self._detail(alert)

    def _status_action(self, request, service):
        payload = s.AlertActionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        alert = service(membership=_membership(request), alert=self.get_object(), note=payload.validated_data["note"])
        return self._detail(alert)

    @extend_schema(request=s.AlertActionSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, public_id=None):
        """Someone is on it (an optional note says what)."""
        return self._status_action(request, services.alert_acknowledge)

    @extend_schema(request=s.AlertActionSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, public_id=None):
        """Done: a repeat after this opens a new alert."""
        return self._status_action(request, services.alert_resolve)

    @extend_schema(request=s.AlertActionSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def suppress(self, request, public_id=None):
        """Silence it: repeats keep counting here without notifying anyone, until resolved."""
        return self._status_action(request, services.alert_suppress)

    @extend_schema(request=s.AlertNoteCreateSerializer, responses={201: s.AlertNoteSerializer})
    @action(detail=True, methods=["post"])
    def notes(self, request, public_id=None):
        """Add a note to the alert (the alert's detail lists them)."""
        payload = s.AlertNoteCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        note = services.alert_add_note(
            membership=_membership(request), alert=self.get_object(), body=payload.validated_data["body"]
        )
        return Response(s.AlertNoteSerializer(note).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.AlertBulkSerializer, responses=s.AlertBulkResultSerializer)
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        """One action on many alerts: acknowledge, resolve, suppress or assign. Alerts the action
        does not apply to are listed under ``skipped`` with the reason."""
        payload = s.AlertBulkSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        ids = list(dict.fromkeys(data["alerts"]))
        with transaction.atomic():
            alerts = list(self.get_queryset().filter(public_id__in=ids))
            if len(alerts) != len(ids):
                raise NotFound("One or more of these alerts do not exist.", field="alerts")
            assignee = _member_user(request, data.get("assignee")) if data["action"] == "assign" else None
            result = services.alert_bulk(
                membership=_membership(request),
                alerts=alerts,
                action=data["action"],
                assignee=assignee,
                note=data["note"],
            )
        return Response(
            {
                "changed": [str(alert.public_id) for alert in result.changed],
                "skipped": [{"alert": str(alert.public_id), "reason": reason} for alert, reason in result.skipped],
            }
        )


class SummaryView(APIView):
    """Security KPIs over a window: open alerts by severity, scans and blocks, top categories."""

    required_action = Action.SECURITY_VIEW

    @extend_schema(
        parameters=[OpenApiParameter("hours", OpenApiTypes.INT, description="Window in hours, 1 to 720 (default 24).")],
        responses=s.SummarySerializer,
    )
    def get(self, request):
        raw = request.query_params.get("hours", "24")
        try:
            hours = int(raw)
        except ValueError:
            hours = 0
        if not 1 <= hours <= 720:
            raise DomainError("hours is a whole number from 1 to 720.", field="hours")
        summary = selectors.security_summary(org=request._request.org, hours=hours)
        return Response(s.SummarySerializer(summary).data)
