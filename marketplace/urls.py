"""Portal pages of the marketplace for enterprises: catalog, offering pages, compare, orders, advisor."""

from django.urls import path

from marketplace import advisor_views, views

app_name = "marketplace"

urlpatterns = [
    path("", views.CatalogView.as_view(), name="catalog"),
    path("offerings/<uuid:offering_id>/", views.OfferingDetailView.as_view(), name="offering-detail"),
    path("offerings/<uuid:offering_id>/connect/", views.OrderCreateView.as_view(), name="order-create"),
    path("compare/", views.CompareView.as_view(), name="compare"),
    path("orders/", views.OrderListView.as_view(), name="order-list"),
    # placement advisor
    path("advisor/", advisor_views.AdvisorView.as_view(), name="advisor"),
]
