import hashlib

from django.core.cache import cache
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings

from fabric.models import Port
from hub.api.idempotency import run_idempotent
from hub.api.pagination import HubPagination
from hub.api.renderers import OrjsonRenderer
from hub.api.viewsets import OrgScopedMixin
from hub.errors import NotFound
from hub.roles import Action
from marketplace import catalog_index, selectors, services
from marketplace.api import serializers as s
from marketplace.models import Offering, Order, ProviderProfile
from marketplace.search import CatalogQueryError


class CatalogPagination(HubPagination):
    """A page of the catalog is keyed by what decides it: the catalog's version (a row database triggers
    change with every write to offerings, access points, providers and metros: ``marketplace.catalog_index``),
    the asking organization (a provider also sees its own drafts), the time zone dates are written in, and
    every parameter. Under that key this process keeps the page's rows, and the count of the question
    (the parameters but limit and offset) here and in the shared cache, since counting 100,000 offerings
    costs more than reading a page. Neither ever lags a write: the next request reads the new version.
    """

    COUNT_SECONDS = 600  # a count of an older version is never read again; this only frees the memory
    LOCAL_COUNTS = 1024  # entries this process keeps (cleared when full)
    LOCAL_ROWS = 5000  # rows of pages this process keeps (all dropped when full): about 15 MB
    _counts: dict[str, int] = {}
    _pages: dict[tuple, tuple[int, list]] = {}
    _kept_rows = 0
    version = None

    def page_key(self, request) -> tuple | None:
        """The key of the requested page (None without a catalog version: a flushed database)."""
        self.version = catalog_index.catalog_version()
        if self.version is None:
            return None
        org = _org(request)
        params = tuple(sorted((name, tuple(values)) for name, values in request.query_params.lists()))
        return self.version, org and org.pk, timezone.get_current_timezone_name(), params

    def cached_page(self, request, key: tuple | None) -> list | None:
        """The kept rows of the page, with the paginator set as ``paginate_queryset`` sets it; None if not kept."""
        page = self._pages.get(key) if key is not None else None
        if page is None:
            return None
        self.request = request
        self.limit, self.offset = self.get_limit(request), self.get_offset(request)
        self.count, results = page
        return results

    def keep_page(self, key: tuple | None, results: list) -> None:
        if key is None:
            return
        cls = CatalogPagination  # one store per process, whatever the subclass
        if cls._kept_rows + len(results) > self.LOCAL_ROWS:
            cls._pages.clear()
            cls._kept_rows = 0
        cls._pages[key] = (self.count, results)
        cls._kept_rows += len(results)

    def get_count(self, queryset):
        version = self.version if self.version is not None else catalog_index.catalog_version()
        if version is None:  # no version row yet (a flushed database): nothing to key the count by
            return queryset.count()
        request = self.request
        params = sorted((k, v) for k, v in request.query_params.lists() if k not in ("limit", "offset"))
        org = _org(request)
        digest = hashlib.sha256(repr((org and org.pk, params)).encode()).hexdigest()
        key = f"offering-count:{version}:{digest}"
        count = self._counts.get(key)
        if count is None:
            count = cache.get_or_set(key, queryset.count, self.COUNT_SECONDS)
            if len(self._counts) >= self.LOCAL_COUNTS:
                self._counts.clear()
            self._counts[key] = count
        return count


class ProviderViewSet(viewsets.ReadOnlyModelViewSet):
    """Provider profiles: public to every member."""

    serializer_class = s.ProviderSerializer
    lookup_field = "slug"
    required_action = Action.MARKETPLACE_VIEW
    ordering_fields = ["name"]

    def get_queryset(self):
        return selectors.provider_list()


_QUERY_FIELDS = frozenset(s.OfferingQuerySerializer().fields)


def _org(request):
    return request._request.org


def _membership(request):
    return request._request.membership


@extend_schema_view(
    list=extend_schema(parameters=[s.OfferingQuerySerializer]),
    create=extend_schema(request=s.OfferingCreateSerializer, responses={201: s.OfferingDetailSerializer}),
    partial_update=extend_schema(request=s.OfferingUpdateSerializer, responses=s.OfferingDetailSerializer),
)
class OfferingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The catalog: published offerings, plus your own listings in any state if you are a provider.

    Providers create drafts, add access points, then publish; only the owning provider writes.
    """

    queryset = Offering.objects.none()  # the real one is get_queryset's; this types the schema's path id
    lookup_field = "public_id"
    serializer_class = s.OfferingSerializer
    action_permissions = {
        "list": Action.MARKETPLACE_VIEW,
        "retrieve": Action.MARKETPLACE_VIEW,
        "facets": Action.MARKETPLACE_VIEW,
        "access_points": Action.MARKETPLACE_VIEW,
    }
    required_action = Action.PROVIDER_MANAGE
    ordering_fields = ["name", "price_amount", "published_at", "created_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    pagination_class = CatalogPagination
    # A page of 50 offerings is tens of kilobytes of JSON; the browsable API stays in DEBUG.
    renderer_classes = [OrjsonRenderer, *(r for r in api_settings.DEFAULT_RENDERER_CLASSES if r is not JSONRenderer)]

    def list(self, request, *args, **kwargs):
        # A page already read at this catalog version, for this organization and these parameters, is
        # served as kept (CatalogPagination). Otherwise it is read as plain rows and shaped without a
        # serializer per row: OfferingSerializer documents it, offering_list_data writes the same JSON.
        key = self.paginator.page_key(request)
        results = self.paginator.cached_page(request, key)
        if results is None:
            queryset = self.filter_queryset(self.get_queryset()).values_list(*s.OFFERING_LIST_COLUMNS)
            results = s.offering_list_data(self.paginate_queryset(queryset))
            self.paginator.keep_page(key, results)
        return self.get_paginated_response(results)

    def _catalog_params(self) -> dict:
        if not _QUERY_FIELDS.intersection(self.request.query_params):
            return {}  # what the serializer validates an absent question to, without building it
        query = s.OfferingQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data

    def get_queryset(self):
        params = self._catalog_params() if self.action == "list" else {}
        try:
            return selectors.offering_list(org=_org(self.request), params=params)
        except CatalogQueryError as exc:
            raise ValidationError({name: [message] for name, message in exc.errors.items()}) from exc

    def get_serializer_class(self):
        return s.OfferingDetailSerializer if self.action == "retrieve" else s.OfferingSerializer

    def _detail(self, offering, code=status.HTTP_200_OK):
        offering = Offering.objects.prefetch_related("access_points__port__metro").get(pk=offering.pk)
        return Response(s.OfferingDetailSerializer(offering).data, status=code)

    def create(self, request):
        def handler():
            payload = s.OfferingCreateSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            data = dict(payload.validated_data)
            if "provider" in data:
                data["provider"] = ProviderProfile.objects.filter(slug=data["provider"]).first()
                if data["provider"] is None:
                    raise NotFound("No such provider.", field="provider")
            offering = services.offering_create(membership=_membership(request), **data)
            return self._detail(offering, status.HTTP_201_CREATED)

        return run_idempotent(request, handler)

    def partial_update(self, request, *args, **kwargs):
        payload = s.OfferingUpdateSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        offering = services.offering_update(
            membership=_membership(request), offering=self.get_object(), **payload.validated_data
        )
        return self._detail(offering)

    @extend_schema(request=None, responses=s.OfferingDetailSerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request, public_id=None):
        """Put the listing in the catalog (it needs at least one access point)."""
        return self._detail(services.offering_publish(membership=_membership(request), offering=self.get_object()))

    @extend_schema(request=None, responses=s.OfferingDetailSerializer)
    @action(detail=True, methods=["post"])
    def retire(self, request, public_id=None):
        """Take the listing off the catalog; existing orders keep running."""
        return self._detail(services.offering_retire(membership=_membership(request), offering=self.get_object()))

    @extend_schema(parameters=[s.OfferingQuerySerializer], responses=s.FacetsSerializer)
    @action(detail=False)
    def facets(self, request):
        """Counts per category, provider, region, metro, accelerator, GPU memory band, compliance and price
        band under the same parameters as the list; each facet's counts ignore that facet's own selection."""
        try:
            return Response(selectors.offering_facets(org=_org(request), params=self._catalog_params()))
        except CatalogQueryError as exc:
            raise ValidationError({name: [message] for name, message in exc.errors.items()}) from exc

    @extend_schema(responses=s.AccessPointSerializer(many=True))
    @action(detail=True, url_path="access-points")
    def access_points(self, request, public_id=None):
        """Where the offering can be reached: a provider port in a metro, its bandwidths and approval mode."""
        offering = self.get_object()
        return Response(s.AccessPointSerializer(offering.access_points.select_related("port__metro"), many=True).data)

    @extend_schema(request=s.AccessPointCreateSerializer, responses={201: s.AccessPointSerializer})
    @access_points.mapping.post
    def access_point_create(self, request, public_id=None):
        def handler():
            payload = s.AccessPointCreateSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            data = payload.validated_data
            offering = self.get_object()
            port = Port.objects.select_related("metro").filter(public_id=data["port"]).first()
            if port is None:
                raise NotFound("No such port.", field="port")
            access_point = services.access_point_create(
                membership=_membership(request),
                offering=offering,
                port=port,
                allowed_bandwidths_mbps=data["allowed_bandwidths_mbps"],
                approval_mode=data["approval_mode"],
            )
            return Response(s.AccessPointSerializer(access_point).data, status=status.HTTP_201_CREATED)

        return run_idempotent(request, handler)


def order_result_as_dict(result: services.OrderResult) -> dict:
    plan = result.plan
    return {
        "dry_run": plan.dry_run,
        "allowed": plan.allowed,
        "quote": result.quote.as_dict(),
        "latency": plan.latency,
        "approvals": plan.approvals,
        "violations": [v.as_dict() for v in plan.violations],
        "order": s.OrderSerializer(result.order).data if result.order else None,
    }


@extend_schema_view(
    create=extend_schema(
        request=s.OrderCreateSerializer,
        responses={
            201: s.OrderResultSerializer,
            200: OpenApiResponse(s.OrderResultSerializer, description="dry run: the quote, nothing created"),
        },
    ),
)
class OrderViewSet(OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your organization's orders. Each created a fabric connection; its status follows that connection."""

    queryset = Order.objects.all()
    serializer_class = s.OrderSerializer
    action_permissions = {"list": Action.MARKETPLACE_VIEW, "retrieve": Action.MARKETPLACE_VIEW}
    required_action = Action.MARKETPLACE_ORDER
    ordering_fields = ["created_at", "quoted_monthly_price"]
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        return selectors.order_list(org=_org(self.request))

    def create(self, request):
        def handler():
            payload = s.OrderCreateSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            data = payload.validated_data
            org = _org(request)
            offering = get_object_or_404(selectors.offering_list(org=org), public_id=data["offering"])
            access_point = get_object_or_404(
                offering.access_points.select_related("port__metro", "port__organization"),
                public_id=data["access_point"],
            )
            a_port = get_object_or_404(
                Port.objects.select_related("metro", "organization").for_org(org), public_id=data["a_port"]
            )
            result = services.order_create(
                membership=_membership(request),
                offering=offering,
                access_point=access_point,
                a_port=a_port,
                bandwidth_mbps=data["bandwidth_mbps"],
                purchase_order=data["purchase_order"],
                dry_run=data["dry_run"],
            )
            code = status.HTTP_200_OK if data["dry_run"] else status.HTTP_201_CREATED
            return Response(order_result_as_dict(result), status=code)

        return run_idempotent(request, handler)
