"""Writes of the marketplace: provider profiles, offerings, access points and orders.

Keyword-only, atomic and audited like every service. Provider writes need PROVIDER_MANAGE and
work only on the member's own organization's listings: another provider's offering is "not found".
Ordering goes through ``fabric.services.connection_request``; the marketplace never writes fabric
rows itself.
"""

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from fabric import pricing
from fabric import services as fabric_services
from fabric.choices import PortState
from fabric.models import Port
from fabric.services import ConnectionPlan
from hub.choices import OrganizationKind
from hub.errors import Conflict, DomainError, NotFound, PermissionDenied
from hub.models import Membership
from hub.roles import Action
from hub.services import audit_record, require_action
from marketplace.attributes import validate_attributes
from marketplace.choices import ApprovalMode, Category, OfferingStatus, PriceUnit, can_transition
from marketplace.models import AccessPoint, Offering, Order, ProviderProfile

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MONEY_PLACES = Decimal("0.0001")


# --- Providers -------------------------------------------------------------------------------
@transaction.atomic
def provider_profile_upsert(
    *,
    membership: Membership,
    name: str,
    slug: str | None = None,
    description: str = "",
    website: str = "",
    certifications: list[str] | None = None,
    hq_country: str = "",
) -> ProviderProfile:
    """Create or update the member's provider organization's public profile."""
    require_action(membership, Action.PROVIDER_MANAGE)
    org = membership.organization
    if org.kind != OrganizationKind.PROVIDER:
        raise PermissionDenied("Only provider organizations have a provider profile.", code="not_a_provider")
    name = name.strip()
    if not name:
        raise DomainError("Give the provider a name.", field="name")
    slug = slugify(slug or name)[:60]
    if not slug:
        raise DomainError("The slug needs at least one letter or digit.", field="slug")
    if ProviderProfile.objects.filter(slug=slug).exclude(organization=org).exists():
        raise Conflict(f"The slug {slug!r} is taken by another provider.", field="slug")
    hq_country = hq_country.strip().upper()
    if hq_country and not re.fullmatch(r"[A-Z]{2}", hq_country):
        raise DomainError("HQ country is a two-letter ISO 3166 code.", field="hq_country")
    profile = ProviderProfile.objects.select_for_update().filter(organization=org).first()
    before = _profile_snapshot(profile) if profile else None
    profile = profile or ProviderProfile(organization=org)
    profile.name, profile.slug, profile.description = name, slug, description.strip()
    profile.website, profile.hq_country = website.strip(), hq_country
    profile.certifications = _string_list(certifications or [], field="certifications")
    profile.save()
    audit_record(
        org=org,
        actor=membership.user,
        action="provider.update" if before else "provider.create",
        target=profile,
        before=before,
        after=_profile_snapshot(profile),
    )
    return profile


def _profile_snapshot(profile: ProviderProfile) -> dict:
    return {"name": profile.name, "slug": profile.slug, "hq_country": profile.hq_country}


# --- Offerings -------------------------------------------------------------------------------
def _require_provider(membership: Membership) -> ProviderProfile:
    require_action(membership, Action.PROVIDER_MANAGE)
    profile = ProviderProfile.objects.filter(organization=membership.organization).first()
    if profile is None:
        raise PermissionDenied(
            "Only provider organizations with a provider profile can list offerings.", code="not_a_provider"
        )
    return profile


def _require_own_offering(membership: Membership, offering: Offering) -> Offering:
    require_action(membership, Action.PROVIDER_MANAGE)
    if offering.organization_id != membership.organization_id:
        raise NotFound("No such offering.")
    return Offering.objects.select_for_update().get(pk=offering.pk)


def _price(value) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise DomainError("The price must be a number.", field="price_amount") from exc
    if not amount.is_finite():
        raise DomainError("The price must be a number.", field="price_amount")
    if amount < 0:
        raise DomainError("The price cannot be below zero.", field="price_amount")
    if amount >= Decimal("1e8"):
        raise DomainError("The price is too large.", field="price_amount")
    return amount.quantize(_MONEY_PLACES)


def _string_list(values, *, field: str) -> list[str]:
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise DomainError("A list of text values is expected.", field=field)
    cleaned = []
    for value in values:
        value = value.strip()
        if value and value not in cleaned:
            cleaned.append(value[:60])
    return cleaned


def _apply_facets(offering: Offering) -> None:
    """Copy the attributes that search facets on into their indexed columns."""
    attributes = offering.attributes if offering.category == Category.GPU_CLOUD else {}
    offering.accelerator = attributes.get("accelerator", "")
    offering.gpu_count = attributes.get("gpu_count")
    offering.gpu_memory_gb = attributes.get("gpu_memory_gb")


def _offering_snapshot(offering: Offering) -> dict:
    return {
        "name": offering.name,
        "slug": offering.slug,
        "category": offering.category,
        "status": offering.status,
        "price_amount": str(offering.price_amount),
        "price_unit": offering.price_unit,
        "currency": offering.currency,
        "attributes": offering.attributes,
    }


_EDITABLE = ("name", "slug", "summary", "description", "price_amount", "price_unit", "currency", "tags")
_EDITABLE += ("compliance", "attributes")


def _validate_into(offering: Offering, changes: dict) -> None:
    for key in changes:
        if key not in _EDITABLE:
            raise DomainError(f"{key} cannot be changed here.", field=key)
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name:
            raise DomainError("Give the offering a name.", field="name")
        offering.name = name[:150]
    if "slug" in changes or not offering.slug:
        slug = slugify(changes.get("slug") or offering.name)[:120]
        if not slug:
            raise DomainError("The slug needs at least one letter or digit.", field="slug")
        clash = Offering.objects.filter(provider=offering.provider, slug=slug).exclude(pk=offering.pk)
        if clash.exists():
            raise Conflict(f"You already have an offering with the slug {slug!r}.", field="slug")
        offering.slug = slug
    for key in ("summary", "description"):
        if key in changes:
            setattr(offering, key, (changes[key] or "").strip())
    if "price_amount" in changes:
        offering.price_amount = _price(changes["price_amount"])
    if "price_unit" in changes:
        if changes["price_unit"] not in PriceUnit.values:
            raise DomainError(f"Price unit must be one of {', '.join(PriceUnit.values)}.", field="price_unit")
        offering.price_unit = changes["price_unit"]
    if "currency" in changes:
        currency = (changes["currency"] or "").strip().upper()
        if not _CURRENCY.match(currency):
            raise DomainError("Currency is a three-letter ISO 4217 code such as USD.", field="currency")
        offering.currency = currency
    for key in ("tags", "compliance"):
        if key in changes:
            setattr(offering, key, _string_list(changes[key], field=key))
    if "attributes" in changes:
        offering.attributes = validate_attributes(offering.category, changes["attributes"])
    _apply_facets(offering)


@transaction.atomic
def offering_create(
    *,
    membership: Membership,
    category: str,
    name: str,
    price_amount,
    price_unit: str,
    attributes: dict | None = None,
    slug: str = "",
    summary: str = "",
    description: str = "",
    currency: str = "USD",
    tags: list[str] | None = None,
    compliance: list[str] | None = None,
    provider: ProviderProfile | None = None,
) -> Offering:
    """Create a DRAFT listing for the member's provider organization; nothing is written if any
    field is invalid. A ``provider`` named by the caller must be the member's own."""
    if provider is not None and provider.organization_id != membership.organization_id:
        raise NotFound("No such provider.", field="provider")
    provider = _require_provider(membership)
    if category not in Category.values:
        raise DomainError(f"Category must be one of {', '.join(Category.values)}.", field="category")
    offering = Offering(
        organization=membership.organization,
        provider=provider,
        category=category,
        status=OfferingStatus.DRAFT,
        created_by=membership.user,
    )
    _validate_into(
        offering,
        {
            "name": name,
            "slug": slug,
            "summary": summary,
            "description": description,
            "price_amount": price_amount,
            "price_unit": price_unit,
            "currency": currency,
            "tags": tags or [],
            "compliance": compliance or [],
            "attributes": attributes or {},
        },
    )
    try:
        with transaction.atomic():
            offering.save()
    except IntegrityError as exc:  # a concurrent create took the slug
        raise Conflict(f"You already have an offering with the slug {offering.slug!r}.", field="slug") from exc
    audit_record(
        org=offering.organization,
        actor=membership.user,
        action="offering.create",
        target=offering,
        after=_offering_snapshot(offering),
    )
    return offering


@transaction.atomic
def offering_update(*, membership: Membership, offering: Offering, **changes) -> Offering:
    """Change a listing's details. Status changes only through ``offering_publish`` / ``offering_retire``."""
    offering = _require_own_offering(membership, offering)
    if "status" in changes:
        raise DomainError("Publish or retire the offering to change its status.", field="status")
    before = _offering_snapshot(offering)
    _validate_into(offering, changes)
    offering.save()
    audit_record(
        org=offering.organization,
        actor=membership.user,
        action="offering.update",
        target=offering,
        before=before,
        after=_offering_snapshot(offering),
    )
    return offering


def _change_status(membership: Membership, offering: Offering, target: str) -> Offering:
    if not can_transition(offering.status, target):
        raise Conflict(
            f"A {offering.get_status_display().lower()} offering cannot be {OfferingStatus(target).label.lower()}.",
            code="invalid_state",
        )
    before = offering.status
    offering.status = target
    if target == OfferingStatus.PUBLISHED:
        offering.published_at = timezone.now()
    offering.save(update_fields=["status", "published_at", "updated_at"])
    audit_record(
        org=offering.organization,
        actor=membership.user,
        action=f"offering.{'publish' if target == OfferingStatus.PUBLISHED else 'retire'}",
        target=offering,
        before={"status": before},
        after={"status": target},
    )
    return offering


@transaction.atomic
def offering_publish(*, membership: Membership, offering: Offering) -> Offering:
    """Make a listing visible in the catalog; it needs at least one access point to be orderable."""
    offering = _require_own_offering(membership, offering)
    if not offering.access_points.exists():
        raise Conflict(
            "Add at least one access point (a port where customers can reach it) before publishing.",
            code="no_access_point",
        )
    return _change_status(membership, offering, OfferingStatus.PUBLISHED)


@transaction.atomic
def offering_retire(*, membership: Membership, offering: Offering) -> Offering:
    """Take a listing off the catalog; existing orders and their connections are not touched."""
    offering = _require_own_offering(membership, offering)
    return _change_status(membership, offering, OfferingStatus.RETIRED)


# --- Access points ---------------------------------------------------------------------------
@transaction.atomic
def access_point_create(
    *,
    membership: Membership,
    offering: Offering,
    port: Port,
    allowed_bandwidths_mbps: list[int],
    approval_mode: str = ApprovalMode.MANUAL,
) -> AccessPoint:
    """Make an offering reachable at one of its provider's active ports."""
    offering = _require_own_offering(membership, offering)
    if port.organization_id != offering.organization_id:
        raise NotFound("No such port.", field="port")
    if port.state != PortState.ACTIVE:
        raise Conflict(f"Port {port.name} is {port.get_state_display().lower()}, not active.", field="port")
    if approval_mode not in ApprovalMode.values:
        raise DomainError("Approval mode is MANUAL or AUTOMATIC.", field="approval_mode")
    bandwidths = allowed_bandwidths_mbps
    if (
        not isinstance(bandwidths, list | tuple)
        or not bandwidths
        or not all(isinstance(b, int) and not isinstance(b, bool) for b in bandwidths)
    ):
        raise DomainError("List the bandwidths customers may order, in Mbps.", field="allowed_bandwidths_mbps")
    bandwidths = sorted(set(bandwidths))
    if bandwidths[0] < 1 or bandwidths[-1] > min(port.speed_mbps, pricing.MAX_BANDWIDTH_MBPS):
        raise DomainError(
            f"Bandwidths must be between 1 and {port.speed_mbps:,} Mbps (the port's speed).",
            field="allowed_bandwidths_mbps",
        )
    if AccessPoint.objects.filter(offering=offering, port=port).exists():
        raise Conflict("This offering already has an access point on that port.", field="port")
    access_point = AccessPoint.objects.create(
        offering=offering, port=port, allowed_bandwidths_mbps=bandwidths, approval_mode=approval_mode
    )
    audit_record(
        org=offering.organization,
        actor=membership.user,
        action="access_point.create",
        target=access_point,
        after={"port": str(port.public_id), "allowed_bandwidths_mbps": bandwidths, "approval_mode": approval_mode},
    )
    return access_point


@transaction.atomic
def access_point_delete(*, membership: Membership, access_point: AccessPoint) -> None:
    """Remove an access point; refused while orders use it or if it is a published offering's last one."""
    offering = _require_own_offering(membership, access_point.offering)
    if access_point.orders.exists():
        raise Conflict("Orders were placed through this access point; it cannot be removed.", code="in_use")
    if offering.status == OfferingStatus.PUBLISHED and offering.access_points.count() <= 1:
        raise Conflict("A published offering needs at least one access point. Retire it first.", code="last_one")
    audit_record(
        org=offering.organization,
        actor=membership.user,
        action="access_point.delete",
        target=access_point,
        before={"port": str(access_point.port.public_id)},
    )
    access_point.delete()


# --- Orders ----------------------------------------------------------------------------------
@dataclass
class OrderResult:
    """An order (or, for a dry run, none) with the connection plan and the full quote."""

    plan: ConnectionPlan
    quote: pricing.Quote
    order: Order | None = None


def offering_quote_line(offering: Offering) -> pricing.QuoteLine:
    """The offering's own price as listed. Only a monthly price adds to the monthly total;
    usage prices (per hour, per token, ...) are billed by the provider and shown for information."""
    listed = f"{offering.price_amount.normalize():f} {offering.currency} {offering.get_price_unit_display()}"
    if offering.price_unit == PriceUnit.MONTH and offering.currency == pricing.CURRENCY:
        return pricing.QuoteLine(description=f"{offering.name}: {listed}", monthly=offering.price_amount)
    return pricing.QuoteLine(description=f"{offering.name}: {listed}, billed by the provider on use")


@transaction.atomic
def order_create(
    *,
    membership: Membership,
    offering: Offering,
    access_point: AccessPoint,
    a_port: Port,
    bandwidth_mbps: int,
    purchase_order: str = "",
    dry_run: bool = False,
) -> OrderResult:
    """Order an offering: a fabric connection from ``a_port`` to the access point's port.

    MANUAL access points leave the connection pending the provider; AUTOMATIC ones have it approved
    at once. With ``dry_run`` nothing is written and the result carries the quote and the checks.
    """
    require_action(membership, Action.MARKETPLACE_ORDER)
    if offering.status != OfferingStatus.PUBLISHED:
        raise Conflict("This offering is not published; it cannot be ordered.", code="not_orderable")
    if access_point.offering_id != offering.pk:
        raise NotFound("No such access point for this offering.", field="access_point")
    if bandwidth_mbps not in access_point.allowed_bandwidths_mbps:
        allowed = ", ".join(f"{b:,}" for b in access_point.allowed_bandwidths_mbps)
        raise DomainError(f"This access point offers {allowed} Mbps; choose one of those.", field="bandwidth_mbps")
    plan = fabric_services.connection_request(
        membership=membership,
        name=f"{offering.name} ({access_point.port.metro.code})"[:100],
        a_port=a_port,
        z_port=access_point.port,
        bandwidth_mbps=bandwidth_mbps,
        purchase_order=purchase_order,
        dry_run=dry_run,
        z_auto_approve=access_point.approval_mode == ApprovalMode.AUTOMATIC,
    )
    quote = pricing.Quote(lines=[*plan.quote.lines, offering_quote_line(offering)], currency=plan.quote.currency)
    if dry_run:
        return OrderResult(plan=plan, quote=quote)
    order = Order.objects.create(
        organization=membership.organization,
        offering=offering,
        access_point=access_point,
        connection=plan.connections[0],
        quoted_monthly_price=quote.monthly_total,
        currency=quote.currency,
        quote=quote.as_dict(),
        purchase_order=purchase_order.strip(),
        created_by=membership.user,
    )
    audit_record(
        org=membership.organization,
        actor=membership.user,
        action="order.create",
        target=order,
        after={
            "offering": str(offering.public_id),
            "access_point": str(access_point.public_id),
            "connection": str(order.connection.public_id),
            "bandwidth_mbps": bandwidth_mbps,
            "quoted_monthly_price": str(order.quoted_monthly_price),
        },
    )
    return OrderResult(plan=plan, quote=quote, order=order)


# --- Platform operators (added with the provider console: the Django admin's verify action) ---
@transaction.atomic
def provider_set_verified(*, actor, profiles, verified: bool) -> int:
    """Mark providers verified (or not) after a platform operator checked them; only staff may.

    Each change is audited in the provider's organization so its members see who vouched for it.
    Returns how many profiles changed.
    """
    if actor is None or not actor.is_staff:
        raise PermissionDenied("Only platform operators verify providers.", code="not_staff")
    changed = 0
    for profile in ProviderProfile.objects.select_for_update().filter(pk__in=[p.pk for p in profiles]):
        if profile.verified == verified:
            continue
        profile.verified = verified
        profile.save(update_fields=["verified", "updated_at"])
        audit_record(
            org=profile.organization,
            actor=actor,
            action="provider.verify" if verified else "provider.unverify",
            target=profile,
            before={"verified": not verified},
            after={"verified": verified},
        )
        changed += 1
    return changed
