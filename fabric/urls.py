from django.urls import path

from fabric import views

app_name = "fabric"

urlpatterns = [
    path("metros/", views.MetroListView.as_view(), name="metro-list"),
]
