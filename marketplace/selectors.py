"""Reads of the marketplace: the catalog as an organization sees it, facets, orders."""

from django.db.models import Count, Q, QuerySet

from marketplace.choices import Category
from marketplace.models import AccessPoint, Offering, Order, ProviderProfile


def provider_list() -> QuerySet[ProviderProfile]:
    return ProviderProfile.objects.annotate(
        published_offerings=Count("offerings", filter=Q(offerings__status="PUBLISHED"))
    )


def offering_list(*, org, params: dict | None = None) -> QuerySet[Offering]:
    """Published offerings plus ``org``'s own listings, narrowed by simple filters.

    ``q`` is a plain case-insensitive match for now; ranked full-text search comes with the
    search issue.
    """
    params = params or {}
    qs = Offering.objects.visible_to(org).select_related("provider")
    if params.get("category"):
        qs = qs.filter(category=params["category"])
    if params.get("provider"):
        qs = qs.filter(provider__slug=params["provider"])
    if params.get("status"):
        qs = qs.filter(status=params["status"])
    if params.get("metro"):
        qs = qs.filter(access_points__port__metro__code=str(params["metro"]).upper()).distinct()
    if params.get("accelerator"):
        qs = qs.filter(accelerator__iexact=params["accelerator"])
    if params.get("min_gpu_count"):
        qs = qs.filter(gpu_count__gte=params["min_gpu_count"])
    if params.get("q"):
        term = params["q"]
        qs = qs.filter(
            Q(name__icontains=term)
            | Q(summary__icontains=term)
            | Q(description__icontains=term)
            | Q(provider__name__icontains=term)
            | Q(accelerator__icontains=term)
        )
    return qs


def offering_facets(*, offerings: QuerySet[Offering]) -> dict:
    """Counts per category, provider, accelerator and metro over an already filtered catalog."""
    ids = offerings.order_by().values("pk")
    base = Offering.objects.filter(pk__in=ids).order_by()
    categories = dict(base.values_list("category").annotate(n=Count("pk")))
    return {
        "category": [
            {"value": value, "label": label, "count": categories[value]}
            for value, label in Category.choices
            if value in categories
        ],
        "provider": [
            {"value": slug, "label": name, "count": n}
            for slug, name, n in base.values_list("provider__slug", "provider__name")
            .annotate(n=Count("pk"))
            .order_by("-n", "provider__name")
        ],
        "accelerator": [
            {"value": value, "count": n}
            for value, n in base.exclude(accelerator="")
            .values_list("accelerator")
            .annotate(n=Count("pk"))
            .order_by("-n", "accelerator")
        ],
        "metro": [
            {"value": code, "count": n}
            for code, n in AccessPoint.objects.filter(offering__in=ids)
            .order_by()
            .values_list("port__metro__code")
            .annotate(n=Count("offering", distinct=True))
            .order_by("-n", "port__metro__code")
        ],
    }


def order_list(*, org) -> QuerySet[Order]:
    return Order.objects.for_org(org).select_related(
        "offering__provider", "access_point__port__metro", "connection", "connection__a_port__metro"
    )
