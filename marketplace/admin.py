"""The Django admin of the marketplace, for platform operators: verify providers, find and fix listings
and orders. Verification goes through ``marketplace.services`` so it is audited."""

from django.contrib import admin, messages
from django.db.models import Count, Q

from hub.errors import DomainError
from marketplace import services
from marketplace.models import ORDER_STATUS, AccessPoint, Offering, Order, ProviderProfile


@admin.register(ProviderProfile)
class ProviderProfileAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "organization", "verified", "hq_country", "published_offerings", "created_at"]
    list_filter = ["verified", "hq_country"]
    search_fields = ["name", "slug", "organization__name", "organization__slug", "website"]
    readonly_fields = ["public_id", "verified"]
    raw_id_fields = ["organization"]
    actions = ["verify", "unverify"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("organization")
            .annotate(published=Count("offerings", filter=Q(offerings__status="PUBLISHED")))
        )

    @admin.display(description="Published offerings", ordering="published")
    def published_offerings(self, profile):
        return profile.published

    def _set_verified(self, request, queryset, verified: bool) -> None:
        try:
            changed = services.provider_set_verified(actor=request.user, profiles=list(queryset), verified=verified)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        word = "verified" if verified else "no longer verified"
        self.message_user(request, f"{changed} provider{'s' if changed != 1 else ''} {word}.", messages.SUCCESS)

    @admin.action(description="Verify the selected providers")
    def verify(self, request, queryset):
        self._set_verified(request, queryset, True)

    @admin.action(description="Withdraw verification of the selected providers")
    def unverify(self, request, queryset):
        self._set_verified(request, queryset, False)


class AccessPointInline(admin.TabularInline):
    model = AccessPoint
    extra = 0
    raw_id_fields = ["port"]


@admin.register(Offering)
class OfferingAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "provider",
        "category",
        "status",
        "price_amount",
        "price_unit",
        "currency",
        "accelerator",
        "gpu_count",
        "updated_at",
    ]
    list_filter = ["status", "category", "provider__verified", "price_unit", "currency", "accelerator"]
    search_fields = ["name", "slug", "summary", "provider__name", "provider__slug", "accelerator", "=public_id"]
    readonly_fields = ["public_id", "accelerator", "gpu_count", "gpu_memory_gb", "published_at"]
    raw_id_fields = ["organization", "provider", "created_by"]
    list_select_related = ["provider"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # no second COUNT(*) over a catalog of 100,000 listings
    inlines = [AccessPointInline]


class OrderStatusFilter(admin.SimpleListFilter):
    """The order's status as customers read it, from its connection's state."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        statuses = dict.fromkeys(ORDER_STATUS.values())
        return [(status, status.replace("_", " ").capitalize()) for status in statuses]

    def queryset(self, request, queryset):
        if self.value():
            states = [state for state, status in ORDER_STATUS.items() if status == self.value()]
            return queryset.filter(connection__state__in=states)
        return queryset


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "public_id",
        "organization",
        "offering",
        "provider",
        "order_status",
        "quoted_monthly_price",
        "currency",
        "created_at",
    ]
    list_filter = [OrderStatusFilter, "offering__category", "offering__provider", "created_at"]
    search_fields = [
        "=public_id",
        "offering__name",
        "offering__provider__name",
        "organization__name",
        "organization__slug",
        "purchase_order",
    ]
    raw_id_fields = ["organization", "offering", "access_point", "connection", "created_by"]
    readonly_fields = ["public_id", "quote"]
    list_select_related = ["organization", "offering__provider", "connection"]
    date_hierarchy = "created_at"

    @admin.display(description="Provider", ordering="offering__provider__name")
    def provider(self, order):
        return order.offering.provider

    @admin.display(description="Status", ordering="connection__state")
    def order_status(self, order):
        return order.status
