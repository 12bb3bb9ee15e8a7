from django.urls import path
from rest_framework.routers import SimpleRouter

from fabric.api import telemetry, topology, views

router = SimpleRouter(trailing_slash=True)
router.register("metros", views.MetroViewSet, basename="metro")
router.register("ports", views.PortViewSet, basename="port")
router.register("connections", views.ConnectionViewSet, basename="connection")

urlpatterns = [
    path("quotes/", views.QuoteView.as_view(), name="quote"),
    path("topology/", topology.TopologyView.as_view(), name="topology"),
    path("telemetry/", telemetry.BulkTelemetryView.as_view(), name="telemetry-bulk"),
    path(
        "connections/<uuid:public_id>/telemetry/",
        telemetry.ConnectionTelemetryView.as_view(),
        name="connection-telemetry",
    ),
    path("connections/<uuid:public_id>/stats/", telemetry.ConnectionStatsView.as_view(), name="connection-stats"),
    *router.urls,
]
