"""Marketplace vocabularies and the offering lifecycle."""

from django.db import models


class Category(models.TextChoices):
    GPU_CLOUD = "GPU_CLOUD", "GPU cloud"
    MODEL_VENDOR = "MODEL_VENDOR", "Model vendor"
    DATA_PLATFORM = "DATA_PLATFORM", "Data platform"
    NETWORK_SERVICE = "NETWORK_SERVICE", "Network service"
    SECURITY_SERVICE = "SECURITY_SERVICE", "Security service"


class OfferingStatus(models.TextChoices):
    DRAFT = "DRAFT", "Draft"
    PUBLISHED = "PUBLISHED", "Published"
    RETIRED = "RETIRED", "Retired"


class PriceUnit(models.TextChoices):
    HOUR = "HOUR", "per hour"
    MONTH = "MONTH", "per month"
    MTOK_INPUT = "MTOK_INPUT", "per million input tokens"
    GB_MONTH = "GB_MONTH", "per GB-month"
    GB = "GB", "per GB transferred"
    GBPS_MONTH = "GBPS_MONTH", "per Gbps-month"
    REQUEST_MILLION = "REQUEST_MILLION", "per million requests"


class ApprovalMode(models.TextChoices):
    MANUAL = "MANUAL", "Manual: the provider approves each request"
    AUTOMATIC = "AUTOMATIC", "Automatic: requests are approved at once"


# The offering lifecycle, written once: publish and retire are the only ways to change status.
OFFERING_TRANSITIONS: dict[str, frozenset[str]] = {
    OfferingStatus.DRAFT: frozenset({OfferingStatus.PUBLISHED, OfferingStatus.RETIRED}),
    OfferingStatus.PUBLISHED: frozenset({OfferingStatus.RETIRED}),
    OfferingStatus.RETIRED: frozenset({OfferingStatus.PUBLISHED}),
}


def can_transition(current: str, target: str) -> bool:
    return target in OFFERING_TRANSITIONS.get(current, frozenset())
