import django_filters
from django import forms
from django.db.models import Q

from fabric.choices import ConnectionState, PendingOn, PortState, Region
from fabric.models import Connection, Metro, Port


class MetroFilter(django_filters.FilterSet):
    region = django_filters.ChoiceFilter(choices=Region.choices)
    sovereignty_zone = django_filters.CharFilter(lookup_expr="iexact")
    country = django_filters.CharFilter(lookup_expr="iexact")
    q = django_filters.CharFilter(method="search", label="Search")

    class Meta:
        model = Metro
        fields = ["region", "sovereignty_zone", "country", "q"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(code__iexact=value) | Q(name__icontains=value) | Q(country__iexact=value))


class PortFilter(django_filters.FilterSet):
    metro = django_filters.CharFilter(field_name="metro__code", lookup_expr="iexact")
    state = django_filters.ChoiceFilter(choices=PortState.choices)
    speed_mbps = django_filters.NumberFilter()

    class Meta:
        model = Port
        fields = ["metro", "state", "speed_mbps", "auto_approve"]


class ConnectionFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(
        choices=ConnectionState.choices, widget=forms.SelectMultiple(attrs={"size": len(ConnectionState)})
    )
    pending_on = django_filters.ChoiceFilter(choices=PendingOn.choices)
    metro = django_filters.CharFilter(method="filter_metro", label="A or Z metro code")
    direction = django_filters.ChoiceFilter(
        label="Direction",
        choices=[("outgoing", "Requested by us"), ("incoming", "To our ports")],
        method="filter_direction",
    )
    q = django_filters.CharFilter(method="search", label="Search")

    class Meta:
        model = Connection
        fields = ["state", "pending_on", "priority", "metro", "direction", "q"]

    def filter_metro(self, queryset, name, value):
        return queryset.filter(Q(a_port__metro__code__iexact=value) | Q(z_port__metro__code__iexact=value))

    def filter_direction(self, queryset, name, value):
        org = getattr(self.request, "org", None) if self.request else None
        if org is None:
            return queryset
        if value == "incoming":
            return queryset.filter(z_port__organization=org).exclude(organization=org)
        return queryset.filter(organization=org)

    def search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(purchase_order__icontains=value))
