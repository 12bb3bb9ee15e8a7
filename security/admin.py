from django.contrib import admin

from security.models import Alert, AlertNote, Incident, Policy, Scan, ScanProfile


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ["organization", "allowed_zones", "blocked_categories", "approval_bandwidth_mbps", "updated_at"]
    search_fields = ["organization__name", "organization__slug"]
    filter_horizontal = ["blocked_providers"]


@admin.register(ScanProfile)
class ScanProfileAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "is_default", "updated_at"]
    list_filter = ["is_default"]
    search_fields = ["name", "organization__name"]


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    """Read-only: scans are evidence."""

    list_display = ["public_id", "organization", "verdict", "action", "max_severity", "app", "agent", "created_at"]
    list_filter = ["verdict", "action", "max_severity"]
    search_fields = ["public_id", "app", "agent", "organization__name"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AlertNoteInline(admin.TabularInline):
    model = AlertNote
    extra = 0
    readonly_fields = ["author_label", "body", "created_at"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["title", "organization", "category", "severity", "status", "source", "count", "last_seen"]
    list_filter = ["status", "severity", "source", "category"]
    search_fields = ["title", "dedup_key", "organization__name"]
    raw_id_fields = ["connection", "scan", "incident", "assignee"]
    inlines = [AlertNoteInline]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["title", "organization", "severity", "status", "created_at"]
    list_filter = ["status", "severity"]
    raw_id_fields = ["connection"]
