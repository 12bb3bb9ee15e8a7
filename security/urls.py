"""Portal pages of security: threat dashboard, alerts, scan playground, policy and profiles."""

from django.urls import path

from security import views

app_name = "security"

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("live/", views.DashboardLiveView.as_view(), name="dashboard-live"),
    path("export/", views.DashboardExportView.as_view(), name="dashboard-export"),
    path("alerts/", views.AlertListView.as_view(), name="alert-list"),
    path("alerts/bulk/", views.AlertBulkView.as_view(), name="alert-bulk"),
    path("alerts/<uuid:alert_id>/", views.AlertDetailView.as_view(), name="alert-detail"),
    path("alerts/<uuid:alert_id>/<slug:verb>/", views.AlertActionView.as_view(), name="alert-action"),
    path("playground/", views.PlaygroundView.as_view(), name="playground"),
    path("policy/", views.PolicyView.as_view(), name="policy"),
    path("profiles/", views.ProfileListView.as_view(), name="profile-list"),
    path("profiles/<uuid:profile_id>/", views.ProfileDetailView.as_view(), name="profile-detail"),
]
