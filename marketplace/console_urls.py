"""Portal pages of the provider console (members of a provider organization)."""

from django.urls import path  # noqa: F401  (routes are added below)

app_name = "console"

urlpatterns = []
