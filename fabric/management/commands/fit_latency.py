from django.core.management.base import BaseCommand, CommandError

from fabric.latency import MODEL_PATH
from fabric.latency_fit import DEFAULT_SEED, DEFAULT_TEST_FRACTION, latency_fit, model_write


class Command(BaseCommand):
    help = (
        "Fit the latency model to fabric/data/latency_rtt_ms.csv, holding out whole cities, and print the "
        "held-out errors of the floor, the fixed-delay baseline and the model. --write saves the fit."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Chooses the held-out cities")
        parser.add_argument(
            "--test-fraction", type=float, default=DEFAULT_TEST_FRACTION, help="Share of cities held out"
        )
        parser.add_argument("--write", action="store_true", help=f"Save the fit to {MODEL_PATH.name}")

    def handle(self, *args, seed, test_fraction, write, **options):
        try:
            report = latency_fit(seed=seed, test_fraction=test_fraction)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        split = report.split
        self.stdout.write(
            f"Held out {len(split.held_out)} cities (seed {seed}): {', '.join(split.held_out)}\n"
            f"Train pairs {len(split.train)}, held-out pairs {len(split.test)} (directed)\n"
        )
        self.stdout.write(f"{'Held-out APE':<38} {'median':>8} {'p90':>8}")
        labels = {
            "floor": "floor only",
            "baseline": (f"baseline {report.baseline.fixed_ms:.2f} ms + {report.baseline.multiplier:.3f} x floor"),
            "model": "model (backbone route)",
        }
        for name, label in labels.items():
            errors = report.errors[name]
            self.stdout.write(f"{label:<38} {errors.median_pct:>7.1f}% {errors.p90_pct:>7.1f}%")
        self.stdout.write("Parameters: " + ", ".join(f"{k}={v:g}" for k, v in report.params.as_dict().items()))
        if write:
            model_write(report)
            self.stdout.write(self.style.SUCCESS(f"Wrote {MODEL_PATH}"))
