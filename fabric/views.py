from django.shortcuts import render

from fabric.filters import MetroFilter
from fabric.models import Metro
from hub.roles import Action
from hub.views import OrgView


class MetroListView(OrgView):
    required_action = Action.FABRIC_VIEW

    def get(self, request):
        filterset = MetroFilter(request.GET, queryset=Metro.objects.all())
        metros = filterset.qs if filterset.is_valid() else Metro.objects.none()
        template = "fabric/metro_list.html#metro-table" if request.htmx else "fabric/metro_list.html"
        return render(request, template, {"filter": filterset, "metros": metros})
