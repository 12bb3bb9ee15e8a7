import os

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from django.db import transaction

from fabric.demo import seed_fabric_demo
from fabric.services import metros_load
from fabric.telemetry_simulation import seed_demo_telemetry
from hub.choices import OrganizationKind, Role
from hub.models import Membership, Organization, User
from marketplace.demo import seed_marketplace_demo
from security.demo import seed_security_demo
from security.network import analyse_recent

DEMO_PASSWORD = "interconnect-demo"

ORGANIZATIONS = [
    ("acme", "Acme Corporation", OrganizationKind.ENTERPRISE),
    ("globex", "Globex", OrganizationKind.ENTERPRISE),
    ("demo-provider", "Demo Provider", OrganizationKind.PROVIDER),
]

# (e-mail, full name, organization slug, role)
PEOPLE = [
    ("owner@acme.example", "Ada Owner", "acme", Role.OWNER),
    ("neteng@acme.example", "Nate Engineer", "acme", Role.NETWORK_ENGINEER),
    ("secops@acme.example", "Sam Analyst", "acme", Role.SECURITY_ANALYST),
    ("viewer@acme.example", "Vic Viewer", "acme", Role.VIEWER),
    ("owner@globex.example", "Gina Owner", "globex", Role.OWNER),
    ("admin@demo-provider.example", "Pat Provider", "demo-provider", Role.ADMIN),
]


class Command(BaseCommand):
    help = "Load metros and the demo identities. Safe to run again: it updates rather than duplicates."

    @transaction.atomic
    def handle(self, *args, **options):
        created, updated = metros_load()
        self.stdout.write(f"Metros: {created} created, {updated} updated.")
        # Hashed once per run: PBKDF2 takes about a second, and every demo identity has the same password.
        self._password_hash = make_password(DEMO_PASSWORD)
        orgs = {}
        for slug, name, kind in ORGANIZATIONS:
            orgs[slug], _ = Organization.objects.update_or_create(slug=slug, defaults={"name": name, "kind": kind})
        for email, full_name, slug, role in PEOPLE:
            user = self._user(email, full_name)
            Membership.objects.update_or_create(user=user, organization=orgs[slug], defaults={"role": role})
        ops = self._user("ops@hub.example", "Olga Operator", is_staff=True, is_superuser=True)
        operator_org, _ = Organization.objects.update_or_create(
            slug="hub-operations", defaults={"name": "Hub Operations", "kind": OrganizationKind.OPERATOR}
        )
        Membership.objects.update_or_create(user=ops, organization=operator_org, defaults={"role": Role.OWNER})
        ports, connections = seed_fabric_demo()
        self.stdout.write(f"Fabric: {ports} ports and {connections} connections created (the worker provisions them).")
        counts = seed_marketplace_demo(password_hash=self._password_hash)
        self.stdout.write(
            f"Marketplace: {counts['providers']} provider profiles, {counts['ports']} provider ports, "
            f"{counts['offerings']} offerings and {counts['access_points']} access points created; "
            f"{counts['published']} offerings published."
        )
        self.stdout.write(f"Telemetry: {seed_demo_telemetry()} samples of the demo's connections, rolled up.")
        security = seed_security_demo()
        self.stdout.write(f"Security: {security['scans']} scans and {security['alerts']} alerts created.")
        self.stdout.write(f"Network detection: {analyse_recent()} findings in the telemetry raised as alerts.")
        address = f"{os.environ.get('HUB_HOST', '127.0.0.1')}:{os.environ.get('HUB_PORT', '8000')}"
        self.stdout.write(self.style.SUCCESS(f"Demo data ready. Log in at http://{address}/ with:"))
        for email, _, slug, role in [*PEOPLE, ("ops@hub.example", "", "hub-operations", "OPERATOR (staff, /admin/)")]:
            self.stdout.write(f"  {email:<32} {slug:<16} {role}")
        self.stdout.write(
            "  ...and admin@<provider>.example for each marketplace provider (e.g. admin@lambda.example), ADMIN"
        )
        self.stdout.write(f"Password for all of them: {DEMO_PASSWORD}")

    def _user(self, email, full_name, **flags):
        user = User.objects.filter(email__iexact=email).first() or User(email=email)
        user.full_name = full_name
        for name, value in flags.items():
            setattr(user, name, value)
        user.password = self._password_hash
        user.save()
        return user
