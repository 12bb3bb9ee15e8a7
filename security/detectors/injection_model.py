"""A small logistic-regression model over hashed word and character n-grams.

It is trained offline (``python manage.py train_injection_model``) on the labelled prompts in
``security/data/prompt-injection/`` and shipped as ``data/injection_model.bin`` (zlib-compressed
float32 weights) plus ``data/injection_model.json`` (settings, bias, threshold, data digest).
Training is pure Python and deterministic: same data and settings, same bytes.

Features of a text, read as its normalised sentences (see :mod:`security.detectors.normalize`):
words, word pairs (and triples with ``word_ngrams=3``) and the 3- to 5-character n-grams of each
word, hashed with CRC-32 into ``2**bits`` buckets, binary, scaled to unit length. Character n-grams carry the model across
languages and spelling tricks. A document's features are the union of its sentences', so the
detector scores a document and each of its sentences from one pass of feature extraction.
At run time the same bucket ids come as numpy arrays (:func:`sentences_ids`) and are summed in
one gather; training keeps the pure-Python sets.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
import threading
import zlib
from array import array
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
WEIGHTS_FILE = DATA_DIR / "injection_model.bin"
META_FILE = DATA_DIR / "injection_model.json"

_WORD = re.compile(r"\w+")
MAX_WORD = 24  # longer runs (CJK sentences, hashes) only contribute their first characters
MAX_MODEL_CHARS = 6_000  # the model reads the start of very long texts (rules read everything)


@dataclass(frozen=True)
class Settings:
    bits: int = 18
    char_min: int = 3
    char_max: int = 5
    epochs: int = 6
    learning_rate: float = 0.4
    l2: float = 2e-6
    seed: int = 20240611
    word_ngrams: int = 3  # word pairs (2), or pairs and triples (3); an artefact that names none has pairs


WORD_CACHE_SIZE = 200_000  # words whose bucket ids are kept (a vocabulary, not the texts)
_word_cache: dict[tuple[int, int, int], dict[str, tuple[int, ...]]] = {}


def _word_buckets(word: str, mask: int, char_min: int, char_max: int) -> tuple[int, ...]:
    """The bucket ids of one word: the word itself and its character n-grams."""
    crc = zlib.crc32
    buckets = [crc(b"w:" + word.encode()) & mask]
    padded = f" {word[:MAX_WORD]} ".encode()
    for n in range(char_min, char_max + 1):
        for i in range(len(padded) - n + 1):
            buckets.append(crc(padded[i : i + n]) & mask)
    return tuple(buckets)


def features(text: str, settings: Settings) -> set[int]:
    """Distinct bucket ids of one normalised sentence (word pairs do not cross lines)."""
    mask = (1 << settings.bits) - 1
    char_min, char_max = settings.char_min, settings.char_max
    cache = _word_cache.get((mask, char_min, char_max))
    if cache is None or len(cache) > WORD_CACHE_SIZE:
        cache = _word_cache[(mask, char_min, char_max)] = {}
    cached = cache.get
    buckets: set[int] = set()
    update = buckets.update
    crc = zlib.crc32
    for line in text.split("\n") if "\n" in text else (text,):
        words = _WORD.findall(line)
        for word in words:
            found = cached(word)
            if found is None:
                found = cache[word] = _word_buckets(word, mask, char_min, char_max)
            update(found)
        if len(words) > 1:
            update([crc(f"b:{first} {second}".encode()) & mask for first, second in pairwise(words)])
        if settings.word_ngrams >= 3 and len(words) > 2:
            update(
                [crc(f"t:{a} {b} {c}".encode()) & mask for a, b, c in zip(words, words[1:], words[2:], strict=False)]
            )
    return buckets


_EMPTY = np.empty(0, dtype=np.intp)
SORT_LIMIT = 4_096  # up to this many ids, sorting finds the distinct ones faster than the bitmap
_id_cache: dict[tuple[int, int, int], dict[str, tuple[np.ndarray, tuple[int, int, int, int], bytes]]] = {}
_ADVANCE_MAX = 64  # words of up to this many bytes hash their pairs and triples in numpy, longer ones in zlib


@functools.cache
def _advance_tables() -> np.ndarray:
    """CRC-32 is affine in its starting value: ``crc32(data, v) == crc32(data) ^ A(v)``, where A is
    linear over GF(2) and depends only on ``len(data)``. Row n holds A for n bytes, as four tables
    of 256 (A of each byte of v in each of its positions), so A(v) is four lookups XORed."""
    tables = np.zeros((_ADVANCE_MAX + 1, 4, 256), dtype=np.int64)
    values = np.arange(256)
    for length in range(_ADVANCE_MAX + 1):
        zeros = bytes(length)
        base = zlib.crc32(zeros)
        for bit in range(32):
            image = zlib.crc32(zeros, 1 << bit) ^ base
            tables[length, bit // 8] ^= np.where((values >> (bit % 8)) & 1, image, 0)
    return tables.reshape(-1)


def _crc_continued(data_crc: np.ndarray, length: np.ndarray, start: np.ndarray) -> np.ndarray:
    """``crc32(data, start)`` for arrays of ``crc32(data)``, ``len(data)`` (at most _ADVANCE_MAX) and ``start``."""
    tables = _advance_tables()
    row = length * 1024
    return (
        data_crc
        ^ tables[row + (start & 255)]
        ^ tables[row + 256 + ((start >> 8) & 255)]
        ^ tables[row + 512 + ((start >> 16) & 255)]
        ^ tables[row + 768 + (start >> 24)]
    )


@dataclass(frozen=True)
class SentenceIds:
    """The bucket ids of a document's normalised sentences, repeats included (``np.unique`` of a
    sentence's is exactly :func:`features`): the whole document's at once, a sentence's on demand."""

    words: list[np.ndarray]  # each word's own ids (the word and its character n-grams), in order
    pairs: np.ndarray  # at word j: the id of the pair (j-1, j), -1 where j starts a line
    triples: np.ndarray  # at word j: the id of the triple (j-2, j-1, j), -1 where there is none
    bounds: list[int]  # sentence i holds words[bounds[i]:bounds[i + 1]]

    def document(self) -> np.ndarray:
        if not self.words:
            return _EMPTY
        return np.concatenate([*self.words, self.pairs[self.pairs >= 0], self.triples[self.triples >= 0]])

    def sentence(self, index: int) -> np.ndarray:
        start, end = self.bounds[index], self.bounds[index + 1]
        if start == end:
            return _EMPTY
        pairs, triples = self.pairs[start:end], self.triples[start:end]
        return np.concatenate([*self.words[start:end], pairs[pairs >= 0], triples[triples >= 0]])


def sentences_ids(sentences: Sequence[str], settings: Settings) -> SentenceIds:
    """The bucket ids of normalised sentences (the detector's fast path; training keeps the sets
    of :func:`features`). Word pairs and triples are hashed for the whole document in numpy:
    a pair's "b:<first> <second>" is the CRC of "b:<first>" continued over " <second>"."""
    mask = (1 << settings.bits) - 1
    char_min, char_max = settings.char_min, settings.char_max
    cache = _id_cache.get((mask, char_min, char_max))
    if cache is None or len(cache) > WORD_CACHE_SIZE:
        cache = _id_cache[(mask, char_min, char_max)] = {}
    entries: list[tuple] = []
    line_starts: list[int] = []
    bounds = [0]
    for sentence in sentences:
        for line in sentence.split("\n") if "\n" in sentence else (sentence,):
            line_starts.append(len(entries))
            words = _WORD.findall(line)
            try:
                entries += [cache[word] for word in words]
            except KeyError:
                entries += [cache.get(word) or _cache_word(cache, word, mask, char_min, char_max) for word in words]
        bounds.append(len(entries))
    count = len(entries)
    pairs = np.full(count, -1, dtype=np.intp)
    triples = np.full(count, -1, dtype=np.intp)
    if count > 1:
        first, data, length, third = np.array([entry[1] for entry in entries], dtype=np.int64).T
        joined = np.ones(count, dtype=np.bool_)  # word j is on the line of word j - 1
        joined[[start for start in line_starts if start < count]] = False
        long = length > _ADVANCE_MAX
        clipped = np.minimum(length, _ADVANCE_MAX)
        pair = _crc_continued(data[1:], clipped[1:], first[:-1]) & mask
        pairs[1:][joined[1:]] = pair[joined[1:]]
        if settings.word_ngrams >= 3 and count > 2:
            middle = _crc_continued(data[1:-1], clipped[1:-1], third[:-2])
            triple = _crc_continued(data[2:], clipped[2:], middle) & mask
            both = joined[2:] & joined[1:-1]
            triples[2:][both] = triple[both]
        if long.any():  # words too long for the tables: zlib itself
            crc = zlib.crc32
            for j in np.flatnonzero(long | np.roll(long, 1)):
                if j >= 1 and joined[j]:
                    pairs[j] = crc(entries[j][2], entries[j - 1][1][0]) & mask
                if j >= 2 and joined[j] and joined[j - 1] and settings.word_ngrams >= 3:
                    inner = crc(entries[j - 1][2], entries[j - 2][1][3])
                    triples[j] = crc(entries[j][2], inner) & mask
    return SentenceIds([entry[0] for entry in entries], pairs, triples, bounds)


def sentence_ids(text: str, settings: Settings) -> np.ndarray:
    """The bucket ids of one normalised sentence as an array, repeats included."""
    return sentences_ids([text], settings).sentence(0)


def _cache_word(cache: dict, word: str, mask: int, char_min: int, char_max: int) -> tuple:
    """(bucket ids, (CRC of "b:<word>", CRC of " <word>", its length in bytes, CRC of "t:<word>"),
    " <word>" as bytes) of a word."""
    crc = zlib.crc32
    ids = np.array(_word_buckets(word, mask, char_min, char_max), dtype=np.intp)
    spaced = f" {word}".encode()
    entry = cache[word] = (
        ids,
        (crc(f"b:{word}".encode()), crc(spaced), len(spaced), crc(f"t:{word}".encode())),
        spaced,
    )
    return entry


def within_budget(sentences: Sequence[str]) -> list[str]:
    """The leading sentences the model reads: at most ``MAX_MODEL_CHARS`` characters in all."""
    kept, total = [], 0
    for sentence in sentences:
        if total >= MAX_MODEL_CHARS:
            break
        kept.append(sentence[: MAX_MODEL_CHARS - total])
        total += len(sentence) + 1
    return kept


def document_features(sentences: Sequence[str], settings: Settings) -> list[int]:
    """Sorted bucket ids of a document given as normalised sentences (the union of theirs)."""
    buckets: set[int] = set()
    for sentence in within_budget(sentences):
        buckets |= features(sentence, settings)
    return sorted(buckets)


@dataclass
class Model:
    settings: Settings
    weights: array  # float32, 2**bits
    bias: float
    threshold: float = 0.5
    meta: dict = field(default_factory=dict)
    _vector: np.ndarray = field(init=False, repr=False, compare=False)  # the weights as float64
    _scratch: threading.local = field(init=False, repr=False, compare=False)  # one flag per bucket, per thread

    def __post_init__(self) -> None:
        self._vector = np.asarray(self.weights, dtype=np.float64)
        self._scratch = threading.local()

    def distinct(self, ids: np.ndarray) -> np.ndarray:
        """The distinct ids of an array with repeats, sorted (faster than ``np.unique`` here):
        a short array (a sentence) is sorted, a long one (a document) is marked in a bitmap."""
        if len(ids) <= SORT_LIMIT:
            ordered = np.sort(ids)
            keep = np.empty(len(ordered), dtype=np.bool_)
            keep[:1] = True
            np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
            return ordered[keep]
        seen = getattr(self._scratch, "seen", None)
        if seen is None:
            seen = self._scratch.seen = np.zeros(len(self.weights), dtype=np.bool_)
        seen[ids] = True
        found = np.flatnonzero(seen)
        seen[found] = False
        return found

    def margin_of_ids(self, ids: np.ndarray) -> float:
        """The margin of distinct bucket ids given as an array (what :meth:`margin` is of a set)."""
        if not len(ids):
            return self.bias
        return self.bias + float(self._vector[ids].sum()) / math.sqrt(len(ids))

    def probability_of_ids(self, ids: np.ndarray) -> float:
        return sigmoid(self.margin_of_ids(ids))

    def margin(self, buckets: Collection[int]) -> float:
        if not buckets:
            return self.bias
        return self.bias + sum(map(self.weights.__getitem__, buckets)) / math.sqrt(len(buckets))

    def probability_of(self, buckets: Collection[int]) -> float:
        return sigmoid(self.margin(buckets))

    def probability(self, sentences: Sequence[str]) -> float:
        """P(injection) for a document given as normalised sentences."""
        return sigmoid(self.margin(document_features(sentences, self.settings)))

    def save(self, weights_path: Path = WEIGHTS_FILE, meta_path: Path = META_FILE) -> None:
        weights_path.parent.mkdir(parents=True, exist_ok=True)
        weights_path.write_bytes(zlib.compress(self.weights.tobytes(), 9))
        self.meta = {
            **self.meta,
            "settings": self.settings.__dict__,
            "bias": self.bias,
            "threshold": self.threshold,
            "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
        }
        meta_path.write_text(json.dumps(self.meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, weights_path: Path = WEIGHTS_FILE, meta_path: Path = META_FILE) -> Model:
        meta = json.loads(meta_path.read_text())
        weights = array("f")
        weights.frombytes(zlib.decompress(weights_path.read_bytes()))
        settings = Settings(**{"word_ngrams": 2, **meta["settings"]})
        if len(weights) != 1 << settings.bits:
            raise ValueError(f"{weights_path} holds {len(weights)} weights, expected {1 << settings.bits}.")
        return cls(settings, weights, float(meta["bias"]), float(meta["threshold"]), meta)


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def train(rows: Sequence[Sequence[int]], labels: Sequence[int], settings: Settings) -> Model:
    """Logistic regression by AdaGrad SGD on bucket-id rows, classes weighted to balance, seeded order.

    Deterministic for the same inputs.
    """
    positives = sum(labels)
    negatives = len(labels) - positives
    class_weight = {1: len(labels) / (2 * positives), 0: len(labels) / (2 * negatives)}
    size = 1 << settings.bits
    w = [0.0] * size
    g2 = [1e-8] * size
    bias, bias_g2 = 0.0, 1e-8
    order = list(range(len(rows)))
    rng = random.Random(settings.seed)  # noqa: S311  (a reproducible order, not a secret)
    lr, l2 = settings.learning_rate, settings.l2
    sqrt = math.sqrt
    for _ in range(settings.epochs):
        rng.shuffle(order)
        for idx in order:
            buckets = rows[idx]
            if not buckets:
                continue
            scale = 1.0 / sqrt(len(buckets))
            z = bias + sum(map(w.__getitem__, buckets)) * scale
            error = (sigmoid(z) - labels[idx]) * class_weight[labels[idx]]
            grad = error * scale
            for i in buckets:
                g = grad + l2 * w[i]
                g2[i] += g * g
                w[i] -= lr * g / sqrt(g2[i])
            bias_g2 += error * error
            bias -= lr * error / sqrt(bias_g2)
    return Model(settings, array("f", w), bias)


def load_rows(path: Path) -> list[dict]:
    """The labelled rows of a JSON-lines file: ``{"text", "label": "injection" | "benign", "source"}``."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("label") not in {"injection", "benign"} or not isinstance(row.get("text"), str):
                raise ValueError(f"{path}:{number}: expected a text and a label 'injection' or 'benign'.")
            rows.append(row)
    return rows


def rates(flags: Sequence[bool], labels: Sequence[int]) -> dict[str, float]:
    """Balanced accuracy, true- and false-positive rates of binary decisions."""
    tp = sum(1 for f, y in zip(flags, labels, strict=True) if f and y)
    fp = sum(1 for f, y in zip(flags, labels, strict=True) if f and not y)
    positives = sum(labels)
    negatives = len(labels) - positives
    tpr = tp / positives if positives else 0.0
    fpr = fp / negatives if negatives else 0.0
    return {"balanced_accuracy": (tpr + 1 - fpr) / 2, "tpr": tpr, "fpr": fpr}


def choose_threshold(
    probabilities: Sequence[float], labels: Sequence[int], forced: Sequence[bool], *, max_fpr: float
) -> float:
    """The threshold with the best balanced accuracy whose false-positive rate stays <= ``max_fpr``.

    ``forced`` marks rows the rules flag whatever the model says: they count at every threshold.
    """
    best, best_key = 0.5, (-1.0, 0.0)
    for step in range(10, 100):
        threshold = step / 100
        flags = [f or p >= threshold for p, f in zip(probabilities, forced, strict=True)]
        r = rates(flags, labels)
        key = (r["balanced_accuracy"] if r["fpr"] <= max_fpr else -1.0 + (1 - r["fpr"]), -abs(threshold - 0.5))
        if key > best_key:
            best, best_key = threshold, key
    return best


def cross_validate(
    rows: Sequence[Sequence[int]],
    labels: Sequence[int],
    settings: Settings,
    folds: int,
    *,
    sentences: Sequence[Sequence[Collection[int]]] = (),
    extra: Sequence[tuple[int, Sequence[int], int]] = (),
    groups: Sequence[int] | None = None,
) -> list[float]:
    """Out-of-fold probabilities: each row scored by a model trained on the other folds (seeded split).

    A row's score is its document's probability, or the highest of its ``sentences``' if higher
    (the detector scores the sentences of retrieved content). ``extra`` rows are derived from a
    row (its index, bucket ids, label): a fold trains on them only when it trains on that row.
    Rows of one ``groups`` value (near-duplicates) always share a fold.
    """
    groups = list(range(len(rows))) if groups is None else list(groups)
    keys = sorted(set(groups))
    random.Random(settings.seed).shuffle(keys)  # noqa: S311
    fold_of_group = {key: position % folds for position, key in enumerate(keys)}
    fold_of = [fold_of_group[group] for group in groups]
    order = list(range(len(rows)))
    oof = [0.0] * len(rows)
    for fold in range(folds):
        train_rows = [rows[i] for i in order if fold_of[i] != fold]
        train_labels = [labels[i] for i in order if fold_of[i] != fold]
        for source, row, label in extra:
            if fold_of[source] != fold:
                train_rows.append(row)
                train_labels.append(label)
        model = train(train_rows, train_labels, settings)
        for i in order:
            if fold_of[i] == fold:
                scored = [model.probability_of(s) for s in (sentences[i] if sentences else ())]
                oof[i] = max([model.probability_of(rows[i]), *scored])
    return oof
