from django.contrib import admin

from fabric.models import Metro


@admin.register(Metro)
class MetroAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "country", "region", "sovereignty_zone"]
    list_filter = ["region", "sovereignty_zone"]
    search_fields = ["code", "name", "country"]
