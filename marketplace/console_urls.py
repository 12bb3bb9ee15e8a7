"""Portal pages of the provider console (members of a provider organization)."""

from django.urls import path

from marketplace import console_views as views

app_name = "console"

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("profile/", views.ProfileView.as_view(), name="profile"),
    path("offerings/", views.OfferingListView.as_view(), name="offering-list"),
    path("offerings/new/", views.OfferingCreateView.as_view(), name="offering-create"),
    path("offerings/<uuid:offering_id>/", views.OfferingDetailView.as_view(), name="offering-detail"),
    path("offerings/<uuid:offering_id>/edit/", views.OfferingEditView.as_view(), name="offering-edit"),
    path(
        "offerings/<uuid:offering_id>/publish/",
        views.OfferingStatusView.as_view(),
        {"verb": "publish"},
        name="offering-publish",
    ),
    path(
        "offerings/<uuid:offering_id>/retire/",
        views.OfferingStatusView.as_view(),
        {"verb": "retire"},
        name="offering-retire",
    ),
    path(
        "offerings/<uuid:offering_id>/access-points/",
        views.AccessPointAddView.as_view(),
        name="access-point-add",
    ),
    path(
        "access-points/<uuid:access_point_id>/remove/",
        views.AccessPointRemoveView.as_view(),
        name="access-point-remove",
    ),
    path("requests/", views.RequestListView.as_view(), name="requests"),
    path("requests/<uuid:connection_id>/approve/", views.RequestApproveView.as_view(), name="request-approve"),
    path("requests/<uuid:connection_id>/reject/", views.RequestRejectView.as_view(), name="request-reject"),
    path("customers/", views.CustomerListView.as_view(), name="customers"),
]
