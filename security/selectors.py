"""Reads of the security app: the policy as it stands, scans, alerts and the summary KPIs."""

from collections import Counter
from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from security.choices import AlertStatus, Severity, Verdict
from security.models import Alert, Policy, Scan, ScanProfile

# Top categories are counted over at most this many of the window's most recent flagged scans.
SUMMARY_CATEGORY_SAMPLE = 20_000


def policy_for(*, org) -> Policy:
    """The organization's policy, or an unsaved empty one (allows everything) if it has none yet."""
    return Policy.objects.filter(organization=org).first() or Policy(organization=org)


def profile_list(*, org) -> QuerySet[ScanProfile]:
    return ScanProfile.objects.for_org(org)


def scan_list(*, org) -> QuerySet[Scan]:
    return Scan.objects.for_org(org).select_related("connection")


def alert_list(*, org) -> QuerySet[Alert]:
    return Alert.objects.for_org(org).select_related("assignee", "connection", "scan", "incident")


def security_summary(*, org, hours: int = 24) -> dict:
    """KPIs of the last ``hours``: open alerts by severity, scans and blocks, top categories."""
    since = timezone.now() - timedelta(hours=hours)
    open_by_severity = dict(
        Alert.objects.for_org(org).open().values_list("severity").annotate(n=Count("id")).order_by()
    )
    scans = Scan.objects.for_org(org).filter(created_at__gte=since)
    totals = scans.aggregate(total=Count("id"), blocked=Count("id", filter=Q(verdict=Verdict.BLOCK)))
    flagged = scans.filter(finding_count__gt=0).order_by("-created_at").values_list("categories", flat=True)
    categories: Counter[str] = Counter()
    for hit in flagged[:SUMMARY_CATEGORY_SAMPLE]:
        categories.update(hit)
    new_alerts = Alert.objects.for_org(org).filter(created_at__gte=since).count()
    return {
        "window_hours": hours,
        "since": since,
        "open_alerts": sum(open_by_severity.values()),
        "open_alerts_by_severity": {severity: open_by_severity.get(severity, 0) for severity in Severity.values},
        "unassigned_open_alerts": Alert.objects.for_org(org).open().filter(assignee__isnull=True).count(),
        "new_alerts": new_alerts,
        "acknowledged_alerts": Alert.objects.for_org(org).filter(status=AlertStatus.ACKNOWLEDGED).count(),
        "scans": totals["total"],
        "blocked_scans": totals["blocked"],
        "block_rate": round(totals["blocked"] / totals["total"], 4) if totals["total"] else 0.0,
        "top_categories": [{"category": name, "count": count} for name, count in categories.most_common(10)],
    }
