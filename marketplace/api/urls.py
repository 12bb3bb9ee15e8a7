from django.urls import path
from rest_framework.routers import SimpleRouter

from marketplace.api import views
from marketplace.api.advisor import AdvisorView

router = SimpleRouter(trailing_slash=True)
router.register("providers", views.ProviderViewSet, basename="provider")
router.register("offerings", views.OfferingViewSet, basename="offering")
router.register("orders", views.OrderViewSet, basename="order")

urlpatterns = [path("advisor/", AdvisorView.as_view(), name="advisor"), *router.urls]
