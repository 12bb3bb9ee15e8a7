"""Invariants the database holds for security: one unresolved alert per dedup key, one default
profile per organization, sane policy bandwidth."""

import pytest
from django.db import IntegrityError, transaction

from security.models import Alert, Policy, ScanProfile

pytestmark = pytest.mark.django_db


def _alert(org, status="OPEN"):
    return Alert.objects.create(
        organization=org, category="secrets", severity="HIGH", source="SCAN", title="t", dedup_key="k", status=status
    )


def test_one_unresolved_alert_per_dedup_key(org, other_org):
    _alert(org)
    with pytest.raises(IntegrityError), transaction.atomic():
        _alert(org, status="SUPPRESSED")
    _alert(other_org)  # another organization has its own keys


def test_resolved_alerts_do_not_hold_their_dedup_key(org):
    _alert(org, status="RESOLVED")
    _alert(org, status="RESOLVED")
    _alert(org)
    assert Alert.objects.filter(dedup_key="k").count() == 3


def test_one_default_profile_per_organization(org):
    ScanProfile.objects.create(organization=org, name="a", is_default=True)
    ScanProfile.objects.create(organization=org, name="b")
    with pytest.raises(IntegrityError), transaction.atomic():
        ScanProfile.objects.create(organization=org, name="c", is_default=True)


def test_profile_names_are_unique_per_organization(org, other_org):
    ScanProfile.objects.create(organization=org, name="strict")
    ScanProfile.objects.create(organization=other_org, name="strict")
    with pytest.raises(IntegrityError), transaction.atomic():
        ScanProfile.objects.create(organization=org, name="strict")


def test_the_approval_bandwidth_is_positive(org):
    with pytest.raises(IntegrityError), transaction.atomic():
        Policy.objects.create(organization=org, approval_bandwidth_mbps=0)


def test_an_alert_count_is_at_least_one(org):
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(
            organization=org, category="x", severity="LOW", source="SCAN", title="t", dedup_key="z", count=0
        )
