from rest_framework.pagination import CursorPagination, LimitOffsetPagination


class HubPagination(LimitOffsetPagination):
    """Limit/offset, with the offset capped so a huge one is an empty page, never a database error
    (PostgreSQL's OFFSET is a bigint)."""

    default_limit = 50
    max_limit = 500
    max_offset = 10**9

    def get_offset(self, request):
        return min(super().get_offset(request), self.max_offset)


class TimelineCursorPagination(CursorPagination):
    """Newest first, stable under inserts, and as fast on the thousandth page as on the first
    (no OFFSET, no COUNT). For append-only logs such as the audit log."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500
