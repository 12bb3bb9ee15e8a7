"""Base API views: tenancy scoping in one place, idempotent creates, the error envelope."""

from rest_framework import mixins, viewsets

from hub.api.idempotency import run_idempotent


class OrgScopedMixin:
    """``get_queryset`` is the model's ``for_org`` scope for the request's organization.

    Another organization's object is simply not in the queryset, so it answers 404.
    """

    lookup_field = "public_id"

    def get_queryset(self):
        return super().get_queryset().for_org(self.request._request.org)


class IdempotentCreateMixin:
    def create(self, request, *args, **kwargs):
        return run_idempotent(request, lambda: super(IdempotentCreateMixin, self).create(request, *args, **kwargs))


class OrgReadOnlyViewSet(OrgScopedMixin, viewsets.ReadOnlyModelViewSet):
    pass


class OrgModelViewSet(OrgScopedMixin, IdempotentCreateMixin, viewsets.ModelViewSet):
    pass


__all__ = ["IdempotentCreateMixin", "OrgModelViewSet", "OrgReadOnlyViewSet", "OrgScopedMixin", "mixins"]
