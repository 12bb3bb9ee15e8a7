"""``python manage.py simulate_telemetry``: realistic traffic for ACTIVE connections, with anomalies."""

import uuid

from django.core.management.base import BaseCommand, CommandError

from fabric.models import Connection
from fabric.telemetry import COUNTRY_CODES, MAX_INTERVAL_SECONDS
from fabric.telemetry_simulation import Anomaly, active_connections, simulate


class Command(BaseCommand):
    help = (
        "Add simulated telemetry (daily cycle plus noise) for ACTIVE connections over the last DAYS, "
        "continuing after each connection's latest sample, and roll it up. Optionally inject an "
        "anomaly: a sustained egress spike, or egress to a given country."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=float, default=3.0, help="How far back to start (default 3).")
        parser.add_argument("--interval", type=int, default=60, help="Seconds between samples (default 60).")
        parser.add_argument("--org", help="Only this organization's connections (its slug).")
        parser.add_argument(
            "--connection", action="append", default=[], help="Only this connection (id or name); repeatable."
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the noise (default 0).")
        parser.add_argument("--spike", metavar="CONNECTION", help="Inject a sustained egress spike on this connection.")
        parser.add_argument("--spike-factor", type=float, default=6.0, help="Egress multiplier (default 6).")
        parser.add_argument("--spike-minutes", type=int, default=90, help="Length of the spike (default 90).")
        parser.add_argument("--country", metavar="ISO2", help="Inject egress to this country (ISO 3166-1 alpha-2).")
        parser.add_argument(
            "--country-connection", metavar="CONNECTION", help="Where to inject it (default: --spike's or the first)."
        )
        parser.add_argument("--country-minutes", type=int, default=60, help="How long (default 60).")
        parser.add_argument("--country-share", type=float, default=0.05, help="Share of the bandwidth (default 0.05).")

    def handle(self, *args, **options):
        if options["days"] < 0 or options["days"] > 366:
            raise CommandError("--days must be between 0 and 366.")
        if not 1 <= options["interval"] <= MAX_INTERVAL_SECONDS:
            raise CommandError(f"--interval must be between 1 and {MAX_INTERVAL_SECONDS} seconds.")
        connections = active_connections(organization_slug=options["org"])
        if options["connection"]:
            connections = [self._find(connections, ref) for ref in options["connection"]]
        connections = list(connections)
        if not connections:
            raise CommandError("No ACTIVE connection matches; nothing to simulate.")
        anomalies = []
        if options["spike"]:
            if options["spike_factor"] <= 1:
                raise CommandError("--spike-factor must be above 1.")
            anomalies.append(
                Anomaly(
                    connection=self._find(connections, options["spike"]),
                    minutes=options["spike_minutes"],
                    egress_factor=options["spike_factor"],
                )
            )
        if options["country"]:
            country = options["country"].upper()
            if country not in COUNTRY_CODES:
                raise CommandError(f"{options['country']!r} is not an ISO 3166-1 alpha-2 country code.")
            target = options["country_connection"] or options["spike"]
            anomalies.append(
                Anomaly(
                    connection=self._find(connections, target) if target else connections[0],
                    minutes=options["country_minutes"],
                    country=country,
                    country_share=options["country_share"],
                )
            )
        stored = simulate(
            connections,
            days=options["days"],
            interval_seconds=options["interval"],
            anomalies=anomalies,
            seed=options["seed"],
        )
        self.stdout.write(f"Telemetry: {stored} samples added for {len(connections)} connections, rolled up.")
        for anomaly in anomalies:
            what = f"{anomaly.egress_factor:g}x egress" if anomaly.egress_factor > 1 else f"egress to {anomaly.country}"
            self.stdout.write(f"  anomaly: {what} on {anomaly.connection.name} for the last {anomaly.minutes} minutes")

    @staticmethod
    def _find(connections, reference: str) -> Connection:
        """An ACTIVE connection by public id or by name."""
        try:
            matches = [c for c in connections if c.public_id == uuid.UUID(reference)]
        except ValueError:
            matches = [c for c in connections if c.name == reference]
        if len(matches) != 1:
            raise CommandError(f"No single ACTIVE connection is {reference!r}.")
        return matches[0]
