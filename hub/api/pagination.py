from rest_framework.pagination import CursorPagination, LimitOffsetPagination


class HubPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class TimelineCursorPagination(CursorPagination):
    """Newest first, stable under inserts, and as fast on the thousandth page as on the first
    (no OFFSET, no COUNT). For append-only logs such as the audit log."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500
