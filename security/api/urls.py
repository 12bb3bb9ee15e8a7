"""API of security under /api/v1/security/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from security.api import views

router = SimpleRouter(trailing_slash=True)
router.register("scans", views.ScanViewSet, basename="security-scan")
router.register("profiles", views.ScanProfileViewSet, basename="security-profile")
router.register("alerts", views.AlertViewSet, basename="security-alert")

urlpatterns = [
    path("policy/", views.PolicyView.as_view(), name="security-policy"),
    path("summary/", views.SummaryView.as_view(), name="security-summary"),
    *router.urls,
]
