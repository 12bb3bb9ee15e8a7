"""Security vocabularies: scan verdicts and actions, alert severities, statuses and sources."""

from django.db import models


class Verdict(models.TextChoices):
    ALLOW = "allow", "Allow"
    BLOCK = "block", "Block"


class ScanAction(models.TextChoices):
    """What a profile does with a finding: stop the content, let it through but raise an alert,
    or let it through quietly (still recorded in the scan)."""

    BLOCK = "block", "Block"
    ALERT = "alert", "Alert"
    ALLOW = "allow", "Allow"


# The strongest action wins when a scan has several findings.
ACTION_RANK = {ScanAction.ALLOW: 0, ScanAction.ALERT: 1, ScanAction.BLOCK: 2}


class ContentKind(models.TextChoices):
    PROMPT = "prompt", "Prompt"
    RESPONSE = "response", "Response"
    TOOL_INPUT = "tool_input", "Tool input"
    TOOL_OUTPUT = "tool_output", "Tool output"
    CONTEXT = "context", "Retrieved context"


class Severity(models.TextChoices):
    LOW = "LOW", "Low"
    MEDIUM = "MEDIUM", "Medium"
    HIGH = "HIGH", "High"
    CRITICAL = "CRITICAL", "Critical"


SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class AlertStatus(models.TextChoices):
    OPEN = "OPEN", "Open"
    ACKNOWLEDGED = "ACKNOWLEDGED", "Acknowledged"
    RESOLVED = "RESOLVED", "Resolved"
    SUPPRESSED = "SUPPRESSED", "Suppressed"


# An alert that is not resolved still absorbs repeats of the same problem (its dedup key):
# a suppressed alert keeps counting, silently.
UNRESOLVED_ALERT_STATUSES = frozenset({AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.SUPPRESSED})

ALERT_TRANSITIONS: dict[str, frozenset[str]] = {
    AlertStatus.OPEN: frozenset({AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED, AlertStatus.SUPPRESSED}),
    AlertStatus.ACKNOWLEDGED: frozenset({AlertStatus.RESOLVED, AlertStatus.SUPPRESSED}),
    AlertStatus.SUPPRESSED: frozenset({AlertStatus.RESOLVED}),
    AlertStatus.RESOLVED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return target in ALERT_TRANSITIONS.get(current, frozenset())


class AlertSource(models.TextChoices):
    SCAN = "SCAN", "AI runtime scan"
    NETWORK = "NETWORK", "Network telemetry"
    CONTROL_PLANE = "CONTROL_PLANE", "Control plane"
    POLICY = "POLICY", "Policy"


class AlertCategory(models.TextChoices):
    """Known alert categories. Content categories are the detector names."""

    PROMPT_INJECTION = "prompt_injection", "Prompt injection"
    SENSITIVE_DATA = "sensitive_data", "Sensitive data"
    SECRETS = "secrets", "Secrets"
    URLS = "urls", "Malicious URL"
    UNSAFE_CODE = "unsafe_code", "Unsafe code"
    EXFILTRATION = "exfiltration", "Exfiltration suspected"
    SOVEREIGNTY = "sovereignty", "Sovereignty"
    LOGIN_LOCKOUT = "login_lockout", "Login lockout"
    TOKEN_MISUSE = "token_misuse", "Token misuse"
    POLICY_DENIAL = "policy_denial", "Policy denial"
    APPROVAL_REQUIRED = "approval_required", "Approval required"


def category_label(category: str) -> str:
    try:
        return AlertCategory(category).label
    except ValueError:
        return category.replace("_", " ").capitalize()


class IncidentStatus(models.TextChoices):
    OPEN = "OPEN", "Open"
    RESOLVED = "RESOLVED", "Resolved"
