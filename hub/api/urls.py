from django.urls import path
from rest_framework.routers import SimpleRouter

from hub.api import views

router = SimpleRouter(trailing_slash=True)
router.register("tokens", views.APITokenViewSet, basename="token")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
router.register("webhooks", views.WebhookViewSet, basename="webhook")
router.register("notifications", views.NotificationViewSet, basename="notification")

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    *router.urls,
]
