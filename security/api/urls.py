"""API of security under /api/v1/security/."""

from django.urls import path  # noqa: F401  (routes are added below)

urlpatterns = []
