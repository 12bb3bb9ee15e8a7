"""Provider profiles, offerings, the access points where they are reachable, and orders."""

import uuid

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q

from fabric.choices import ConnectionState
from hub.models import OrgOwnedModel, OrgOwnedQuerySet, TimeStampedModel
from marketplace.choices import ApprovalMode, Category, OfferingStatus, PriceUnit


class SearchDocumentField(SearchVectorField):
    """A stored ``tsvector`` (PostgreSQL; SQLite keeps it NULL). Only the column type and the ``@@``
    lookup are used, and neither needs ``django.contrib.postgres`` in INSTALLED_APPS, so its check is off."""

    def _check_postgres_installed(self, *args):
        return []


class ProviderProfile(TimeStampedModel):
    """The public face of a provider organization (one per organization)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.OneToOneField("hub.Organization", on_delete=models.PROTECT, related_name="provider_profile")
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    website = models.URLField(blank=True)
    verified = models.BooleanField(default=False, help_text="Set by platform operators after checking the provider.")
    certifications = models.JSONField(default=list, blank=True, help_text="SOC 2, ISO 27001, GDPR, HIPAA, ...")
    hq_country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        # The provider's name is part of each of its offerings' search documents.
        from marketplace.search import refresh_search_documents

        refresh_search_documents(Offering.objects.filter(provider=self))


class OfferingQuerySet(OrgOwnedQuerySet):
    def published(self):
        return self.filter(status=OfferingStatus.PUBLISHED)

    def visible_to(self, org):
        """The catalog as ``org`` sees it: everything published, plus its own listings in any state."""
        if org is None:
            return self.published()
        return self.filter(Q(status=OfferingStatus.PUBLISHED) | Q(organization=org))


class Offering(OrgOwnedModel):
    """A listing owned by the provider organization. ``accelerator``, ``gpu_count`` and
    ``gpu_memory_gb`` are copies of attributes kept by the services, indexed for cheap facets."""

    provider = models.ForeignKey(ProviderProfile, on_delete=models.PROTECT, related_name="offerings")
    category = models.CharField(max_length=20, choices=Category.choices)
    name = models.CharField(max_length=150)
    slug = models.SlugField(max_length=120)
    summary = models.CharField(max_length=300, blank=True)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=OfferingStatus.choices, default=OfferingStatus.DRAFT)
    price_amount = models.DecimalField(max_digits=12, decimal_places=4)
    price_unit = models.CharField(max_length=16, choices=PriceUnit.choices)
    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217")
    tags = models.JSONField(default=list, blank=True)
    compliance = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    accelerator = models.CharField(max_length=40, blank=True, db_index=True)
    gpu_count = models.PositiveSmallIntegerField(null=True, blank=True, db_index=True)
    gpu_memory_gb = models.FloatField(null=True, blank=True, db_index=True)
    published_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    # Kept current by AccessPoint.save()/delete(): the regions (sorted codes, e.g. "AMER EMEA") of the
    # metros where the offering is reachable, so the region facet needs no join.
    regions = models.CharField(max_length=20, blank=True, default="", editable=False)
    # PostgreSQL only (NULL elsewhere): name, provider, accelerator, tags, summary and description,
    # weighted A to D; kept current by save() and searched through a GIN index (see marketplace/search.py).
    search_vector = SearchDocumentField(null=True, editable=False)

    objects = OfferingQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["status", "category"], name="offering_status_category"),
            # The catalog's default and price orders walk these, so a page does not sort the whole catalog.
            models.Index(fields=["name", "id"], name="offering_name_id"),
            models.Index(fields=["price_amount", "id"], name="offering_price_id"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["provider", "slug"], name="offering_slug_unique_per_provider"),
            models.CheckConstraint(condition=Q(price_amount__gte=0), name="offering_price_not_negative"),
            models.CheckConstraint(condition=Q(category__in=Category.values), name="offering_category_valid"),
            models.CheckConstraint(condition=Q(status__in=OfferingStatus.values), name="offering_status_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def price_display(self) -> str:
        """``23.92 USD per hour``: at least two decimals, at most four."""
        amount = f"{self.price_amount:,.4f}".rstrip("0")
        if len(amount.split(".")[1]) < 2:
            amount = f"{self.price_amount:,.2f}"
        return f"{amount} {self.currency} {self.get_price_unit_display()}"

    _SEARCHED = frozenset({"name", "summary", "description", "tags", "accelerator", "provider"})

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        update_fields = kwargs.get("update_fields")
        if update_fields is None or self._SEARCHED & set(update_fields):
            from marketplace.search import refresh_search_documents

            refresh_search_documents(Offering.objects.filter(pk=self.pk))


class AccessPoint(TimeStampedModel):
    """Where an offering is reachable: one of its provider's fabric ports."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    offering = models.ForeignKey(Offering, on_delete=models.CASCADE, related_name="access_points")
    port = models.ForeignKey("fabric.Port", on_delete=models.PROTECT, related_name="access_points")
    allowed_bandwidths_mbps = models.JSONField(default=list)
    approval_mode = models.CharField(max_length=10, choices=ApprovalMode.choices, default=ApprovalMode.MANUAL)

    class Meta:
        ordering = ["port__metro__code", "id"]
        constraints = [
            models.UniqueConstraint(fields=["offering", "port"], name="access_point_one_per_offering_and_port"),
            models.CheckConstraint(
                condition=Q(approval_mode__in=ApprovalMode.values), name="access_point_approval_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.offering} at {self.port.metro.code}"

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        refresh_regions([self.offering_id])

    def delete(self, *args, **kwargs):
        offering_id = self.offering_id
        result = super().delete(*args, **kwargs)
        refresh_regions([offering_id])
        return result


class CatalogVersion(models.Model):
    """One row (id 1) whose value changes, to a value never used before, in the same statement as any
    write to offerings, access points, provider profiles or metros: database triggers set it (migration 0003),
    whatever wrote (services, the admin, ``bulk_create``, ``QuerySet.update()``, raw SQL). Search reads
    it to know whether its in-process facet index (``marketplace.catalog_index``) is current."""

    id = models.PositiveSmallIntegerField(primary_key=True)
    value = models.BigIntegerField()

    def __str__(self) -> str:
        return f"catalog version {self.value}"


def refresh_regions(offering_ids) -> None:
    """Recompute ``Offering.regions`` from the offerings' access points."""
    reach: dict[int, set[str]] = {pk: set() for pk in offering_ids}
    rows = AccessPoint.objects.filter(offering_id__in=offering_ids).values_list("offering_id", "port__metro__region")
    for offering_id, region in rows:
        reach[offering_id].add(region)
    for offering_id, regions in reach.items():
        Offering.objects.filter(pk=offering_id).update(regions=regions_text(regions))


def regions_text(regions) -> str:
    return " ".join(sorted(regions))


# Order status as the customer reads it, from the connection's state.
ORDER_STATUS = {
    ConnectionState.PENDING_APPROVAL: "PENDING_PROVIDER",
    ConnectionState.APPROVED: "PROVISIONING",
    ConnectionState.PROVISIONING: "PROVISIONING",
    ConnectionState.ACTIVE: "ACTIVE",
    ConnectionState.MODIFYING: "ACTIVE",
    ConnectionState.DEPROVISIONING: "ENDING",
    ConnectionState.DEPROVISIONED: "ENDED",
    ConnectionState.REJECTED: "REJECTED",
    ConnectionState.CANCELLED: "CANCELLED",
    ConnectionState.FAILED: "FAILED",
}


class Order(OrgOwnedModel):
    """A customer's order of an offering; the fabric connection it created carries its lifecycle."""

    offering = models.ForeignKey(Offering, on_delete=models.PROTECT, related_name="orders")
    access_point = models.ForeignKey(AccessPoint, on_delete=models.PROTECT, related_name="orders")
    connection = models.OneToOneField("fabric.Connection", on_delete=models.PROTECT, related_name="order")
    quoted_monthly_price = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    quote = models.JSONField(default=dict, help_text="The quote lines as shown when ordering.")
    purchase_order = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quoted_monthly_price__gte=0), name="order_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"Order of {self.offering}"

    @property
    def status(self) -> str:
        return ORDER_STATUS[self.connection.state]

    @property
    def status_display(self) -> str:
        """``Pending provider``, ``Active``, ...: the status in words."""
        return self.status.replace("_", " ").capitalize()
