from django.contrib import admin

from marketplace.models import AccessPoint, Offering, Order, ProviderProfile


@admin.register(ProviderProfile)
class ProviderProfileAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "organization", "verified", "hq_country"]
    list_filter = ["verified"]
    search_fields = ["name", "slug", "organization__name"]
    list_editable = ["verified"]


class AccessPointInline(admin.TabularInline):
    model = AccessPoint
    extra = 0
    raw_id_fields = ["port"]


@admin.register(Offering)
class OfferingAdmin(admin.ModelAdmin):
    list_display = ["name", "provider", "category", "status", "price_amount", "price_unit", "currency"]
    list_filter = ["category", "status", "provider"]
    search_fields = ["name", "slug", "provider__name", "accelerator"]
    readonly_fields = ["public_id", "accelerator", "gpu_count", "gpu_memory_gb", "published_at"]
    raw_id_fields = ["organization", "provider", "created_by"]
    inlines = [AccessPointInline]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["public_id", "organization", "offering", "quoted_monthly_price", "currency", "created_at"]
    search_fields = ["offering__name", "organization__name", "purchase_order"]
    raw_id_fields = ["organization", "offering", "access_point", "connection", "created_by"]
    readonly_fields = ["public_id", "quote"]
