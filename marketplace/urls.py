"""Portal pages of the marketplace for enterprises: catalog, offering pages, compare, orders, advisor."""

from django.urls import path  # noqa: F401  (routes are added below)

app_name = "marketplace"

urlpatterns = [
    # catalog, offering pages, compare, ordering
    # placement advisor
]
