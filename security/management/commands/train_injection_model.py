from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from security.detectors.injection_model import META_FILE, WEIGHTS_FILE, Settings
from security.detectors.training import TRAIN_FILE, build_model


class Command(BaseCommand):
    help = (
        "Train the prompt-injection model on security/data/prompt-injection/train.jsonl, choose its "
        "threshold by k-fold cross-validation on that file, and write security/detectors/data/"
        "injection_model.{bin,json}. Deterministic: the same data and options give the same bytes."
    )

    def add_arguments(self, parser):
        defaults = Settings()
        parser.add_argument("--train", type=Path, default=TRAIN_FILE, help="Labelled JSON-lines file")
        parser.add_argument("--folds", type=int, default=3, help="Cross-validation folds for the threshold")
        parser.add_argument("--epochs", type=int, default=defaults.epochs)
        parser.add_argument("--bits", type=int, default=defaults.bits, help="log2 of the number of hash buckets")
        parser.add_argument(
            "--word-ngrams", type=int, choices=(2, 3), default=defaults.word_ngrams, help="Longest word n-gram"
        )
        parser.add_argument("--limit", type=int, default=None, help="Train on the first N rows only (quick runs)")
        parser.add_argument(
            "--output-dir", type=Path, default=None, help="Write the artefact here instead of the shipped location"
        )

    def handle(self, *args, train, folds, epochs, bits, word_ngrams, limit, output_dir, **options):
        if folds < 2:
            raise CommandError("--folds must be at least 2.")
        if not 10 <= bits <= 22:
            raise CommandError("--bits must be between 10 and 22.")
        settings = Settings(epochs=epochs, bits=bits, word_ngrams=word_ngrams)
        try:
            model = build_model(train, settings=settings, folds=folds, limit=limit)
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        weights, meta = WEIGHTS_FILE, META_FILE
        if output_dir is not None:
            weights, meta = output_dir / WEIGHTS_FILE.name, output_dir / META_FILE.name
        model.save(weights, meta)
        cv = model.meta["cv"]
        self.stdout.write(
            f"Trained on {model.meta['rows']} rows (+{model.meta['planted_instructions']} planted instructions), "
            f"threshold {model.threshold:.2f} chosen by {folds}-fold CV: balanced accuracy "
            f"{cv['balanced_accuracy']:.1%}, TPR {cv['tpr']:.1%}, FPR {cv['fpr']:.1%}"
        )
        self.stdout.write(
            self.style.SUCCESS(f"Wrote {weights} and {meta} (weights sha256 {model.meta['weights_sha256'][:12]}…)")
        )
