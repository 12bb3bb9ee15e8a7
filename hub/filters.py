from datetime import UTC

import django_filters
from django import forms

from hub.models import AuditEvent, Notification


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time, compared in UTC. Python accepts offsets up to ±24 h but PostgreSQL
    only up to ±15:59, so an exotic offset would otherwise reach the database and fail there."""

    def filter(self, qs, value):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return super().filter(qs, value)


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(lookup_expr="istartswith", help_text="Action, or its prefix (e.g. 'token.').")
    actor = django_filters.CharFilter(field_name="actor_email", lookup_expr="icontains")
    object_type = django_filters.CharFilter(lookup_expr="iexact")
    object_id = django_filters.CharFilter()
    request_id = django_filters.CharFilter()
    since = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "object_type", "object_id", "request_id", "since", "until"]


class AuditEventPortalFilter(AuditEventFilter):
    """The portal's date pickers: whole days, both ends included."""

    since = django_filters.DateFilter(
        field_name="created_at__date", lookup_expr="gte", label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = django_filters.DateFilter(
        field_name="created_at__date", lookup_expr="lte", label="To", widget=forms.DateInput(attrs={"type": "date"})
    )


class NotificationFilter(django_filters.FilterSet):
    unread = django_filters.BooleanFilter(
        field_name="read_at", lookup_expr="isnull", help_text="`true`: only unread; `false`: only read."
    )
    event_type = django_filters.CharFilter()

    class Meta:
        model = Notification
        fields = ["unread", "event_type"]
