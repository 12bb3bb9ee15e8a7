from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from security.detectors.evaluation import DEV_FILE, ENTITIES_FILE, evaluate_entities, evaluate_injection

TARGETS = {"balanced_accuracy": 0.95, "fpr": 0.02, "precision": 0.98, "recall": 0.98}


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


class Command(BaseCommand):
    help = (
        "Measure the detectors: prompt injection on dev.jsonl (balanced accuracy, false-positive rate, "
        "latency) and sensitive data + secrets on entities.jsonl (entity-level precision and recall)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--injection-file", type=Path, default=DEV_FILE)
        parser.add_argument("--entities-file", type=Path, default=ENTITIES_FILE)
        parser.add_argument("--limit", type=int, default=None, help="Only the first N injection rows")
        parser.add_argument("--verbose-errors", action="store_true", help="List every entity mistake")

    def handle(self, *args, injection_file, entities_file, limit, verbose_errors, **options):
        try:
            injection = evaluate_injection(injection_file, limit=limit)
            entities = evaluate_entities(entities_file)
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(str(exc)) from exc
        out = self.stdout.write
        out(f"Prompt injection on {injection_file.name} ({injection.rows} rows; documents scanned as context)")
        out(
            f"  balanced accuracy {injection.balanced_accuracy:.1%} (target >= 95%: "
            f"{_met(injection.balanced_accuracy >= TARGETS['balanced_accuracy'])})"
        )
        out(f"  false-positive rate {injection.fpr:.1%} (target <= 2%: {_met(injection.fpr <= TARGETS['fpr'])})")
        out(f"  true-positive rate {injection.tpr:.1%}")
        out(
            f"  every row scanned as a prompt: balanced accuracy {injection.as_prompt['balanced_accuracy']:.1%}, "
            f"FPR {injection.as_prompt['fpr']:.1%}, TPR {injection.as_prompt['tpr']:.1%}"
        )
        out(f"  latency per scan: p50 {injection.p50_ms:.2f} ms, p99 {injection.p99_ms:.2f} ms")
        if injection.errors_by_source:
            out("  errors by source: " + ", ".join(f"{k}: {v}" for k, v in injection.errors_by_source.most_common()))
        overall = entities.overall
        out(
            f"Sensitive data + secrets on {entities_file.name} ({entities.cases} cases, {overall.tp + overall.fn} entities)"
        )
        out(
            f"  precision {overall.precision:.3f} (target >= 0.98: {_met(overall.precision >= TARGETS['precision'])}), "
            f"recall {overall.recall:.3f} (target >= 0.98: {_met(overall.recall >= TARGETS['recall'])})"
        )
        for split, score in entities.by_split.items():
            out(
                f"  split {split}: precision {score.precision:.3f}, recall {score.recall:.3f} (tp {score.tp}, fp {score.fp}, fn {score.fn})"
            )
        for category, score in entities.by_category.items():
            out(
                f"    {category:<32} P {score.precision:.3f}  R {score.recall:.3f}  (tp {score.tp}, fp {score.fp}, fn {score.fn})"
            )
        for mistake in entities.mistakes if verbose_errors else entities.mistakes[:10]:
            out(f"  {mistake}")
