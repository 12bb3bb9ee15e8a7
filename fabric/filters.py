import django_filters
from django.db.models import Q

from fabric.choices import Region
from fabric.models import Metro


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
