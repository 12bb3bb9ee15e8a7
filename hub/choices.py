from django.db import models


class OrganizationKind(models.TextChoices):
    ENTERPRISE = "ENTERPRISE", "Enterprise"
    PROVIDER = "PROVIDER", "Provider"
    OPERATOR = "OPERATOR", "Operator"


class Role(models.TextChoices):
    OWNER = "OWNER", "Owner"
    ADMIN = "ADMIN", "Admin"
    NETWORK_ENGINEER = "NETWORK_ENGINEER", "Network engineer"
    SECURITY_ANALYST = "SECURITY_ANALYST", "Security analyst"
    VIEWER = "VIEWER", "Viewer"


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"
    SECURITY = "security", "Security"


class IdempotencyState(models.TextChoices):
    IN_PROGRESS = "IN_PROGRESS", "In progress"
    COMPLETED = "COMPLETED", "Completed"


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    SUCCEEDED = "SUCCEEDED", "Succeeded"
    FAILED = "FAILED", "Failed"
