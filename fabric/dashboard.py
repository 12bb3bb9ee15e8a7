from django.db.models import Count
from django.urls import reverse

from fabric.models import Metro
from hub.dashboard import Tile


def metros_tile(request) -> Tile:
    by_region = dict(Metro.objects.values_list("region").annotate(n=Count("id")).order_by("region"))
    return Tile(
        title="Metros",
        template="fabric/partials/metros_tile.html",
        context={"total": sum(by_region.values()), "by_region": by_region},
        link=reverse("fabric:metro-list"),
    )
