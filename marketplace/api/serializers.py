from django.conf import settings
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from fabric.api.serializers import ConnectionSerializer
from marketplace import search
from marketplace.choices import ApprovalMode, Category, OfferingStatus, PriceUnit
from marketplace.models import AccessPoint, Offering, Order, ProviderProfile


class ProviderSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    published_offerings = serializers.IntegerField(read_only=True)

    class Meta:
        model = ProviderProfile
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "website",
            "verified",
            "certifications",
            "hq_country",
            "published_offerings",
        ]
        read_only_fields = fields


class ProviderRefSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    verified = serializers.BooleanField()


class AccessPointSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    port = serializers.UUIDField(source="port.public_id", read_only=True)
    metro = serializers.CharField(source="port.metro.code", read_only=True)
    metro_name = serializers.CharField(source="port.metro.name", read_only=True)

    class Meta:
        model = AccessPoint
        fields = ["id", "port", "metro", "metro_name", "allowed_bandwidths_mbps", "approval_mode"]
        read_only_fields = fields


class AccessPointCreateSerializer(serializers.Serializer):
    port = serializers.UUIDField(help_text="One of your organization's active ports.")
    allowed_bandwidths_mbps = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)
    approval_mode = serializers.ChoiceField(choices=ApprovalMode.choices, default=ApprovalMode.MANUAL)


class OfferingSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    provider = ProviderRefSerializer(read_only=True)
    status = serializers.ChoiceField(choices=OfferingStatus.choices, read_only=True)
    price_amount = serializers.DecimalField(max_digits=12, decimal_places=4, read_only=True)

    class Meta:
        model = Offering
        fields = [
            "id",
            "provider",
            "category",
            "name",
            "slug",
            "summary",
            "description",
            "status",
            "price_amount",
            "price_unit",
            "currency",
            "tags",
            "compliance",
            "attributes",
            "published_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# The catalog list reads its page as tuples of these columns and shapes them by hand: the same JSON as
# OfferingSerializer (tests/marketplace/test_api_list.py compares them) for a seventh of its CPU.
OFFERING_LIST_COLUMNS = (
    "public_id",
    "provider__slug",
    "provider__name",
    "provider__verified",
    "category",
    "name",
    "slug",
    "summary",
    "description",
    "status",
    "price_amount",
    "price_unit",
    "currency",
    "tags",
    "compliance",
    "attributes",
    "published_at",
    "created_at",
    "updated_at",
)
_PRICE = serializers.DecimalField(max_digits=12, decimal_places=4)


def _time_formatter():
    """``DateTimeField().to_representation`` for the database's (aware) date-times: ISO 8601 in the
    current time zone, ``Z`` for UTC, as DRF writes them; DRF's own field under any other setting."""
    if settings.USE_TZ and api_settings.DATETIME_FORMAT == ISO_8601:
        zone = timezone.get_current_timezone()

        def iso(value):
            text = value.astimezone(zone).isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text

        return iso
    return serializers.DateTimeField().to_representation


def offering_list_data(rows) -> list[dict]:
    """``OfferingSerializer(offerings, many=True).data`` for rows of ``OFFERING_LIST_COLUMNS``."""
    price, time = _PRICE.to_representation, _time_formatter()
    return [
        {
            "id": str(public_id),
            "provider": {"slug": provider_slug, "name": provider_name, "verified": provider_verified},
            "category": category,
            "name": name,
            "slug": slug,
            "summary": summary,
            "description": description,
            "status": status,
            "price_amount": price(price_amount),
            "price_unit": price_unit,
            "currency": currency,
            "tags": tags,
            "compliance": compliance,
            "attributes": attributes,
            "published_at": None if published_at is None else time(published_at),
            "created_at": time(created_at),
            "updated_at": time(updated_at),
        }
        for (
            public_id,
            provider_slug,
            provider_name,
            provider_verified,
            category,
            name,
            slug,
            summary,
            description,
            status,
            price_amount,
            price_unit,
            currency,
            tags,
            compliance,
            attributes,
            published_at,
            created_at,
            updated_at,
        ) in rows
    ]


class OfferingDetailSerializer(OfferingSerializer):
    access_points = AccessPointSerializer(many=True, read_only=True)

    class Meta(OfferingSerializer.Meta):
        fields = [*OfferingSerializer.Meta.fields, "access_points"]


class _OfferingFields(serializers.Serializer):
    """Shapes only; the services validate values (attributes per category, price >= 0, ...)."""

    name = serializers.CharField(max_length=150)
    slug = serializers.CharField(max_length=120, required=False, allow_blank=True)
    summary = serializers.CharField(max_length=300, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    price_amount = serializers.DecimalField(max_digits=12, decimal_places=4)
    price_unit = serializers.ChoiceField(choices=PriceUnit.choices)
    currency = serializers.CharField(max_length=3, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=60), required=False)
    compliance = serializers.ListField(child=serializers.CharField(max_length=60), required=False)
    attributes = serializers.JSONField(required=False, help_text="Category-specific; see the category's schema.")


class OfferingCreateSerializer(_OfferingFields):
    category = serializers.ChoiceField(choices=Category.choices)
    provider = serializers.SlugField(
        required=False, help_text="Your provider profile's slug (optional: it is your organization's)."
    )


class OfferingUpdateSerializer(_OfferingFields):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


def _facet_param(help_text: str) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=60),
        required=False,
        max_length=20,
        help_text=f"{help_text} Repeat the parameter (or separate with commas) for any of several values.",
    )


class OfferingQuerySerializer(serializers.Serializer):
    """Search, facet filters and sort of the catalog; the same parameters as the catalog page's URL.

    An unknown facet value, sort or metro is a 400 with a field error, never a silently wider answer.
    """

    q = serializers.CharField(
        max_length=200, required=False, help_text="Full-text search (ranked on PostgreSQL); quotes and - work."
    )
    category = _facet_param(f"Category: {', '.join(Category.values)}.")
    provider = _facet_param("Provider slug.")
    region = _facet_param("Region of an access point's metro: AMER, EMEA or APAC.")
    metro = _facet_param("Metro code of an access point, e.g. FR.")
    accelerator = _facet_param("Accelerator, e.g. H100 (case-insensitive).")
    gpu_memory = _facet_param(f"GPU memory band: {', '.join(b.key for b in search.GPU_MEMORY_BANDS)}.")
    compliance = _facet_param("Compliance attestation, e.g. SOC 2.")
    price = _facet_param("Price band (per price unit), as listed by the facets endpoint, e.g. hour-1-5.")
    status = serializers.ChoiceField(choices=OfferingStatus.choices, required=False)
    min_gpu_count = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    sort = serializers.ChoiceField(
        choices=list(search.SORTS), required=False, help_text="Default: relevance with q, else name."
    )
    from_metro = serializers.CharField(
        max_length=4, required=False, help_text="Metro code latency is estimated from (needed by sort=latency)."
    )


class FacetValueSerializer(serializers.Serializer):
    value = serializers.CharField()
    label = serializers.CharField(required=False)
    count = serializers.IntegerField()


class FacetsSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Offerings matching every filter.")
    category = FacetValueSerializer(many=True)
    provider = FacetValueSerializer(many=True)
    region = FacetValueSerializer(many=True)
    metro = FacetValueSerializer(many=True)
    accelerator = FacetValueSerializer(many=True)
    gpu_memory = FacetValueSerializer(many=True)
    compliance = FacetValueSerializer(many=True)
    price = FacetValueSerializer(many=True)


class OrderConnectionSerializer(ConnectionSerializer):
    class Meta(ConnectionSerializer.Meta):
        fields = ["id", "name", "state", "pending_on", "bandwidth_mbps", "a_port", "z_port", "status_reason"]


class OrderSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id", read_only=True)
    offering = serializers.UUIDField(source="offering.public_id", read_only=True)
    offering_name = serializers.CharField(source="offering.name", read_only=True)
    provider = serializers.CharField(source="offering.provider.slug", read_only=True)
    access_point = AccessPointSerializer(read_only=True)
    connection = OrderConnectionSerializer(read_only=True)
    status = serializers.CharField(read_only=True, help_text="Follows the connection's state.")

    class Meta:
        model = Order
        fields = [
            "id",
            "offering",
            "offering_name",
            "provider",
            "access_point",
            "connection",
            "status",
            "quoted_monthly_price",
            "currency",
            "quote",
            "purchase_order",
            "created_at",
        ]
        read_only_fields = fields


class OrderCreateSerializer(serializers.Serializer):
    offering = serializers.UUIDField()
    access_point = serializers.UUIDField()
    a_port = serializers.UUIDField(help_text="Your port the connection starts from.")
    bandwidth_mbps = serializers.IntegerField(min_value=1)
    purchase_order = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
    dry_run = serializers.BooleanField(default=False)


class OrderResultSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    allowed = serializers.BooleanField()
    quote = serializers.JSONField()
    latency = serializers.JSONField()
    approvals = serializers.ListField(child=serializers.CharField())
    violations = serializers.JSONField()
    order = OrderSerializer(allow_null=True)
