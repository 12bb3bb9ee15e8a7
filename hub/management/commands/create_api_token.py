from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from hub.errors import DomainError
from hub.models import Membership
from hub.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a member of an organization and print its secret (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug")
        parser.add_argument("--user", required=True, help="Member's e-mail")
        parser.add_argument("--scopes", default="read", help="Comma-separated: read,write,security")
        parser.add_argument("--name", default="cli", help="A name to recognise the token by")
        parser.add_argument("--expires-days", type=int, default=None, help="Expire after N days (default: never)")

    def handle(self, *args, org, user, scopes, name, expires_days, **options):
        membership = (
            Membership.objects.select_related("organization", "user")
            .filter(organization__slug=org, user__email__iexact=user)
            .first()
        )
        if membership is None:
            raise CommandError(f"{user} is not a member of an organization with slug {org!r}.")
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1.")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        try:
            _, secret = api_token_create(
                membership=membership, name=name, scopes=scopes.split(","), expires_at=expires_at
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(secret)
