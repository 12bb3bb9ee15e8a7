from rest_framework.routers import SimpleRouter

from fabric.api import views

router = SimpleRouter(trailing_slash=True)
router.register("metros", views.MetroViewSet, basename="metro")

urlpatterns = router.urls
