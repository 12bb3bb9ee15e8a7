import django_filters

from hub.filters import UTCDateTimeFilter
from security.choices import AlertSource, AlertStatus, ScanAction, Severity, Verdict
from security.models import Alert, Scan


class ScanFilter(django_filters.FilterSet):
    verdict = django_filters.ChoiceFilter(choices=Verdict.choices)
    action = django_filters.ChoiceFilter(choices=ScanAction.choices)
    severity = django_filters.ChoiceFilter(field_name="max_severity", choices=Severity.choices)
    app = django_filters.CharFilter()
    agent = django_filters.CharFilter()
    model = django_filters.CharFilter(field_name="model_name")
    profile = django_filters.CharFilter(field_name="profile_name")
    connection = django_filters.UUIDFilter(field_name="connection__public_id")
    batch = django_filters.UUIDFilter(field_name="batch_id")
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Scan
        fields = [
            "verdict",
            "action",
            "severity",
            "app",
            "agent",
            "model",
            "profile",
            "connection",
            "batch",
            "created_after",
            "created_before",
        ]


class AlertFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=AlertStatus.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    source = django_filters.ChoiceFilter(choices=AlertSource.choices)
    category = django_filters.CharFilter()
    assignee = django_filters.CharFilter(field_name="assignee__email", lookup_expr="iexact")
    unassigned = django_filters.BooleanFilter(field_name="assignee", lookup_expr="isnull")
    connection = django_filters.UUIDFilter(field_name="connection__public_id")
    incident = django_filters.UUIDFilter(field_name="incident__public_id")
    seen_after = UTCDateTimeFilter(field_name="last_seen", lookup_expr="gte")
    seen_before = UTCDateTimeFilter(field_name="last_seen", lookup_expr="lt")

    class Meta:
        model = Alert
        fields = [
            "status",
            "severity",
            "source",
            "category",
            "assignee",
            "unassigned",
            "connection",
            "incident",
            "seen_after",
            "seen_before",
        ]
