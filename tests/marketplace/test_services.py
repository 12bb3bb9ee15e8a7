"""Marketplace rules through its services: attributes, publishing, access points, ordering."""

from decimal import Decimal

import pytest

from fabric.choices import ConnectionState
from fabric.models import Connection
from fabric.services import connection_approve, connection_reject
from hub.choices import Role
from hub.errors import Conflict, DomainError, NotFound, PermissionDenied
from hub.models import AuditEvent
from marketplace import services
from marketplace.attributes import validate_attributes
from marketplace.choices import ApprovalMode, Category, OfferingStatus, PriceUnit
from marketplace.models import AccessPoint, Offering, Order
from tests.marketplace.conftest import GPU_ATTRIBUTES

pytestmark = pytest.mark.django_db


# --- Attributes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("category", "attributes", "field"),
    [
        (Category.GPU_CLOUD, {**GPU_ATTRIBUTES, "gpu_count": "eight"}, "attributes.gpu_count"),
        (Category.GPU_CLOUD, {**GPU_ATTRIBUTES, "gpu_count": 0}, "attributes.gpu_count"),
        (Category.GPU_CLOUD, {**GPU_ATTRIBUTES, "gpu_count": True}, "attributes.gpu_count"),
        (Category.GPU_CLOUD, {"gpu_count": 8, "gpu_memory_gb": 80}, "attributes.accelerator"),
        (Category.GPU_CLOUD, {**GPU_ATTRIBUTES, "gpu_memory_gb": 0}, "attributes.gpu_memory_gb"),
        (Category.GPU_CLOUD, {**GPU_ATTRIBUTES, "spot_price_per_hour": -1}, "attributes.spot_price_per_hour"),
        (Category.GPU_CLOUD, {**GPU_ATTRIBUTES, "colour": "green"}, "attributes.colour"),
        (Category.MODEL_VENDOR, {"context_window": 128000, "input_price_per_mtok": 1}, "attributes.modality"),
        (
            Category.MODEL_VENDOR,
            {"context_window": 128000, "input_price_per_mtok": 1, "modality": "text"},
            "attributes.output_price_per_mtok",
        ),
        (
            Category.MODEL_VENDOR,
            {"context_window": 1.5, "input_price_per_mtok": 1, "output_price_per_mtok": 2, "modality": "text"},
            "attributes.context_window",
        ),
        (Category.DATA_PLATFORM, {"egress_price_per_gb": 0.05}, "attributes.storage_type"),
        (
            Category.DATA_PLATFORM,
            {"storage_type": "object", "egress_price_per_gb": -0.1},
            "attributes.egress_price_per_gb",
        ),
        (
            Category.NETWORK_SERVICE,
            {"service_type": "transit", "sla_availability_pct": 101},
            "attributes.sla_availability_pct",
        ),
        (Category.SECURITY_SERVICE, {"service_type": ["waf"]}, "attributes.service_type"),
    ],
)
def test_a_bad_attribute_is_a_field_error(category, attributes, field):
    with pytest.raises(DomainError) as caught:
        validate_attributes(category, attributes)
    assert caught.value.field == field
    assert caught.value.message.startswith(field.split(".")[1])


def test_embeddings_need_no_output_price():
    cleaned = validate_attributes(
        Category.MODEL_VENDOR, {"context_window": 8192, "input_price_per_mtok": 0.02, "modality": "embedding"}
    )
    assert cleaned == {"context_window": 8192, "input_price_per_mtok": 0.02, "modality": "embedding"}


def test_create_validates_and_writes_nothing_on_a_bad_attribute(gpu_cloud):
    with pytest.raises(DomainError) as caught:
        services.offering_create(
            membership=gpu_cloud.member,
            category=Category.GPU_CLOUD,
            name="Bad",
            price_amount="1",
            price_unit=PriceUnit.HOUR,
            attributes={**GPU_ATTRIBUTES, "gpu_count": "many"},
        )
    assert caught.value.field == "attributes.gpu_count"
    assert not Offering.objects.exists()


def test_a_negative_price_is_refused(gpu_cloud):
    with pytest.raises(DomainError) as caught:
        services.offering_create(
            membership=gpu_cloud.member,
            category=Category.GPU_CLOUD,
            name="Cheap",
            price_amount="-0.01",
            price_unit=PriceUnit.HOUR,
            attributes=GPU_ATTRIBUTES,
        )
    assert caught.value.field == "price_amount"
    assert not Offering.objects.exists()


def test_create_fills_facets_and_audits(gpu_cloud):
    offering = services.offering_create(
        membership=gpu_cloud.member,
        category=Category.GPU_CLOUD,
        name="8x H100 SXM",
        price_amount="23.92",
        price_unit=PriceUnit.HOUR,
        attributes=GPU_ATTRIBUTES,
        tags=["training", "training", " "],
    )
    assert (offering.status, offering.slug) == (OfferingStatus.DRAFT, "8x-h100-sxm")
    assert (offering.accelerator, offering.gpu_count, offering.gpu_memory_gb) == ("H100", 8, 80)
    assert offering.price_amount == Decimal("23.92")
    assert offering.tags == ["training"]
    assert AuditEvent.objects.filter(action="offering.create", object_id=str(offering.public_id)).exists()


def test_an_enterprise_cannot_list_offerings(customer):
    with pytest.raises(PermissionDenied):
        services.offering_create(
            membership=customer.member,
            category=Category.GPU_CLOUD,
            name="x",
            price_amount="1",
            price_unit=PriceUnit.HOUR,
            attributes=GPU_ATTRIBUTES,
        )


# --- Publishing and ownership ----------------------------------------------------------------
def test_publish_without_an_access_point_is_refused(gpu_cloud):
    offering = services.offering_create(
        membership=gpu_cloud.member,
        category=Category.GPU_CLOUD,
        name="Lonely",
        price_amount="1",
        price_unit=PriceUnit.HOUR,
        attributes=GPU_ATTRIBUTES,
    )
    with pytest.raises(Conflict) as caught:
        services.offering_publish(membership=gpu_cloud.member, offering=offering)
    assert "access point" in caught.value.message
    offering.refresh_from_db()
    assert offering.status == OfferingStatus.DRAFT
    assert offering.published_at is None


def test_publish_then_retire(gpu_cloud, make_offering):
    offering, _ = make_offering(gpu_cloud)
    assert offering.status == OfferingStatus.PUBLISHED
    assert offering.published_at
    offering = services.offering_retire(membership=gpu_cloud.member, offering=offering)
    assert offering.status == OfferingStatus.RETIRED
    actions = set(AuditEvent.objects.filter(object_id=str(offering.public_id)).values_list("action", flat=True))
    assert {"offering.create", "offering.publish", "offering.retire"} <= actions


def test_status_changes_only_through_publish_and_retire(gpu_cloud, make_offering):
    offering, _ = make_offering(gpu_cloud, published=False)
    with pytest.raises(DomainError) as caught:
        services.offering_update(membership=gpu_cloud.member, offering=offering, status=OfferingStatus.PUBLISHED)
    assert caught.value.field == "status"


def test_a_provider_cannot_edit_another_providers_offering(gpu_cloud, rival, make_offering):
    offering, _ = make_offering(gpu_cloud, published=False)
    for attempt in (
        lambda: services.offering_update(membership=rival.member, offering=offering, name="Hijacked"),
        lambda: services.offering_publish(membership=rival.member, offering=offering),
        lambda: services.offering_retire(membership=rival.member, offering=offering),
        lambda: services.access_point_create(
            membership=rival.member, offering=offering, port=rival.fra, allowed_bandwidths_mbps=[1000]
        ),
    ):
        with pytest.raises(NotFound):
            attempt()
    offering.refresh_from_db()
    assert (offering.name, offering.status, offering.access_points.count()) == ("8x H100", OfferingStatus.DRAFT, 1)


def test_a_viewer_of_the_provider_cannot_edit(gpu_cloud, make_offering, member_factory):
    offering, _ = make_offering(gpu_cloud, published=False)
    viewer = member_factory(Role.VIEWER, organization=gpu_cloud.org)
    with pytest.raises(PermissionDenied):
        services.offering_update(membership=viewer, offering=offering, name="x")


def test_update_validates_attributes_against_the_category(gpu_cloud, make_offering):
    offering, _ = make_offering(gpu_cloud, published=False)
    with pytest.raises(DomainError) as caught:
        services.offering_update(
            membership=gpu_cloud.member, offering=offering, attributes={**GPU_ATTRIBUTES, "ram_gb": "lots"}
        )
    assert caught.value.field == "attributes.ram_gb"
    updated = services.offering_update(
        membership=gpu_cloud.member, offering=offering, attributes={**GPU_ATTRIBUTES, "accelerator": "H200"}
    )
    assert updated.accelerator == "H200"


# --- Access points ---------------------------------------------------------------------------
def test_an_access_point_on_another_orgs_port_is_refused(gpu_cloud, rival, customer, make_offering):
    offering, _ = make_offering(gpu_cloud, published=False)
    for port in (rival.fra, customer.fra):
        with pytest.raises(NotFound) as caught:
            services.access_point_create(
                membership=gpu_cloud.member, offering=offering, port=port, allowed_bandwidths_mbps=[1000]
            )
        assert caught.value.field == "port"
    assert offering.access_points.count() == 1


def test_an_access_point_needs_an_active_port_and_sane_bandwidths(gpu_cloud, make_offering):
    offering, _ = make_offering(gpu_cloud, published=False)
    with pytest.raises(Conflict):
        services.access_point_create(
            membership=gpu_cloud.member, offering=offering, port=gpu_cloud.down, allowed_bandwidths_mbps=[1000]
        )
    with pytest.raises(DomainError) as caught:
        services.access_point_create(
            membership=gpu_cloud.member, offering=offering, port=gpu_cloud.dc, allowed_bandwidths_mbps=[100_000]
        )
    assert caught.value.field == "allowed_bandwidths_mbps"


def test_the_last_access_point_of_a_published_offering_stays(gpu_cloud, make_offering):
    _, access_point = make_offering(gpu_cloud)
    with pytest.raises(Conflict):
        services.access_point_delete(membership=gpu_cloud.member, access_point=access_point)
    assert AccessPoint.objects.filter(pk=access_point.pk).exists()


# --- Orders ----------------------------------------------------------------------------------
def _order(customer, offering, access_point, **kwargs):
    return services.order_create(
        membership=customer.member,
        offering=offering,
        access_point=access_point,
        a_port=customer.fra,
        bandwidth_mbps=kwargs.pop("bandwidth_mbps", 1000),
        purchase_order="PO-42",
        **kwargs,
    )


def test_an_order_with_a_bandwidth_the_access_point_does_not_allow_is_refused(gpu_cloud, customer, make_offering):
    offering, access_point = make_offering(gpu_cloud)
    with pytest.raises(DomainError) as caught:
        _order(customer, offering, access_point, bandwidth_mbps=500)
    assert caught.value.field == "bandwidth_mbps"
    assert "1,000, 10,000" in caught.value.message
    assert not Order.objects.exists()
    assert not Connection.objects.exists()
    customer.fra.refresh_from_db()
    assert customer.fra.committed_mbps == 0


def test_a_draft_cannot_be_ordered(gpu_cloud, customer, make_offering):
    offering, access_point = make_offering(gpu_cloud, published=False)
    with pytest.raises(Conflict):
        _order(customer, offering, access_point)
    assert not Connection.objects.exists()


def test_a_manual_access_point_leaves_the_connection_pending_the_provider(
    gpu_cloud, customer, make_offering, django_capture_on_commit_callbacks
):
    offering, access_point = make_offering(gpu_cloud)
    with django_capture_on_commit_callbacks(execute=True):
        result = _order(customer, offering, access_point)
    order = result.order
    assert order.organization == customer.org
    assert order.connection.z_port == gpu_cloud.fra
    assert order.connection.state == ConnectionState.PENDING_APPROVAL
    assert order.status == "PENDING_PROVIDER"
    assert order.purchase_order == "PO-42"
    assert AuditEvent.objects.filter(action="order.create", organization=customer.org).exists()
    # The order's status follows the connection as the provider approves and the fabric provisions.
    with django_capture_on_commit_callbacks(execute=True):
        connection_approve(membership=gpu_cloud.member, connection=order.connection)
    order.connection.refresh_from_db()
    assert order.status == "ACTIVE"


def test_a_rejected_connection_shows_on_the_order(gpu_cloud, customer, make_offering):
    offering, access_point = make_offering(gpu_cloud)
    order = _order(customer, offering, access_point).order
    connection_reject(membership=gpu_cloud.member, connection=order.connection, reason="Capacity held back")
    order.refresh_from_db()
    assert Order.objects.get(pk=order.pk).status == "REJECTED"


def test_an_automatic_access_point_provisions_without_the_provider(
    gpu_cloud, customer, make_offering, django_capture_on_commit_callbacks
):
    offering, access_point = make_offering(gpu_cloud, approval_mode=ApprovalMode.AUTOMATIC)
    assert not gpu_cloud.fra.auto_approve  # the port itself still asks; the access point approves
    with django_capture_on_commit_callbacks(execute=False):
        order = _order(customer, offering, access_point).order
    assert order.connection.state == ConnectionState.PROVISIONING
    assert order.status == "PROVISIONING"
    assert order.connection.z_vlan is not None


def test_a_dry_run_quotes_and_writes_nothing(gpu_cloud, customer, make_offering):
    offering, access_point = make_offering(gpu_cloud, price_amount="1200", price_unit=PriceUnit.MONTH, name="Reserved")
    result = _order(customer, offering, access_point, dry_run=True)
    assert result.order is None
    assert result.plan.dry_run
    assert result.plan.approvals  # manual: the provider must approve
    descriptions = [line.description for line in result.quote.lines]
    assert any("Reserved: 1200 USD per month" in d for d in descriptions)
    assert result.quote.monthly_total == Decimal("500") + Decimal("1200")  # 1 Gbps same metro + the offering
    assert not Order.objects.exists()
    assert not Connection.objects.exists()


def test_an_hourly_price_is_shown_but_not_added_to_the_monthly_total(gpu_cloud, customer, make_offering):
    offering, access_point = make_offering(gpu_cloud)
    order = _order(customer, offering, access_point).order
    assert order.quoted_monthly_price == Decimal("500.00")
    assert any("23.92 USD per hour" in line["description"] for line in order.quote["lines"])


def test_a_viewer_cannot_order(gpu_cloud, customer, make_offering, member_factory):
    offering, access_point = make_offering(gpu_cloud)
    viewer = member_factory(Role.VIEWER, organization=customer.org)
    with pytest.raises(PermissionDenied):
        services.order_create(
            membership=viewer, offering=offering, access_point=access_point, a_port=customer.fra, bandwidth_mbps=1000
        )
