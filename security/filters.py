"""Filters of the alert list and the dashboard's live table (django-filter)."""

import django_filters
from django.db.models import Q

from security.choices import AlertCategory, AlertSource, AlertStatus, Severity
from security.models import Alert


class AlertFilter(django_filters.FilterSet):
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
    status = django_filters.ChoiceFilter(choices=AlertStatus.choices)
    category = django_filters.ChoiceFilter(choices=AlertCategory.choices)
    source = django_filters.ChoiceFilter(choices=AlertSource.choices)
    assignee = django_filters.ChoiceFilter(
        choices=[("me", "Assigned to me"), ("none", "Unassigned")], method="filter_assignee", label="Assignee"
    )
    q = django_filters.CharFilter(method="search", label="Search")

    class Meta:
        model = Alert
        fields = ["severity", "status", "category", "source", "assignee", "q"]

    def filter_assignee(self, queryset, name, value):
        if value == "me":
            return queryset.filter(assignee=self.request.user)
        return queryset.filter(assignee__isnull=True)

    def search(self, queryset, name, value):
        return queryset.filter(Q(title__icontains=value) | Q(connection__name__icontains=value))
