from django.urls import path

from fabric import topology_views, views

app_name = "fabric"

urlpatterns = [
    path("metros/", views.MetroListView.as_view(), name="metro-list"),
    path("metros/<str:code>/", views.MetroDetailView.as_view(), name="metro-detail"),
    path("ports/", views.PortListView.as_view(), name="port-list"),
    path("ports/new/", views.PortOrderView.as_view(), name="port-order"),
    path("ports/<uuid:port_id>/", views.PortDetailView.as_view(), name="port-detail"),
    path("ports/<uuid:port_id>/utilisation/", views.PortUtilisationView.as_view(), name="port-utilisation"),
    path("connections/", views.ConnectionListView.as_view(), name="connection-list"),
    path("connections/new/", views.ConnectionRequestView.as_view(), name="connection-request"),
    path("connections/<uuid:connection_id>/", views.ConnectionDetailView.as_view(), name="connection-detail"),
    path(
        "connections/<uuid:connection_id>/utilisation/",
        views.ConnectionUtilisationView.as_view(),
        name="connection-utilisation",
    ),
    path(
        "connections/<uuid:connection_id>/<slug:verb>/",
        views.ConnectionActionView.as_view(),
        name="connection-action",
    ),
    path("requests/", views.IncomingRequestsView.as_view(), name="incoming-requests"),
    path("topology/", topology_views.TopologyMapView.as_view(), name="topology"),
    path("topology/logical/", topology_views.TopologyLogicalView.as_view(), name="topology-logical"),
]
