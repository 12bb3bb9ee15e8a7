"""Portal pages of security: threat dashboard, alerts, scan playground, policy and profiles."""

from django.urls import path  # noqa: F401  (routes are added below)

app_name = "security"

urlpatterns = []
