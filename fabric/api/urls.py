from django.urls import path
from rest_framework.routers import SimpleRouter

from fabric.api import views

router = SimpleRouter(trailing_slash=True)
router.register("metros", views.MetroViewSet, basename="metro")
router.register("ports", views.PortViewSet, basename="port")
router.register("connections", views.ConnectionViewSet, basename="connection")

urlpatterns = [path("quotes/", views.QuoteView.as_view(), name="quote"), *router.urls]
