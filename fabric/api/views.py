from rest_framework import viewsets

from fabric.api.serializers import MetroSerializer
from fabric.filters import MetroFilter
from fabric.models import Metro
from hub.roles import Action


class MetroViewSet(viewsets.ReadOnlyModelViewSet):
    """Data-center metros (reference data, the same for every organization)."""

    queryset = Metro.objects.all()
    serializer_class = MetroSerializer
    lookup_field = "code"
    required_action = Action.FABRIC_VIEW
    filterset_class = MetroFilter
    ordering_fields = ["code", "name", "region"]
