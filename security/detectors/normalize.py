"""Text normalisation that undoes the usual obfuscations before rules and the model read a text.

* invisible characters (zero-width, bidi controls, soft hyphens, variation selectors) are removed;
* Unicode *tag* characters (U+E0020..U+E007E), which smuggle ASCII invisibly, are decoded;
* NFKC folds full-width and "mathematical" letters to plain ones;
* homoglyphs (Cyrillic/Greek letters that look Latin) are mapped inside words that mix scripts;
* leetspeak (``1gn0r3``) is undone inside words that mix letters and look-alike digits/symbols;
* spaced-out letters (``i g n o r e``) are joined;
* base64 and hex payloads are decoded when they decode to readable text (see :func:`decoded_payloads`).
"""

# ruff: noqa: RUF001  (look-alike characters are what this file is about)

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass

_INVISIBLE = dict.fromkeys(
    [
        *range(0x200B, 0x2010),  # zero-width space/joiners, LRM/RLM
        *range(0x202A, 0x202F),  # bidi embeddings and overrides
        *range(0x2060, 0x2065),  # word joiner, invisible operators
        *range(0x2066, 0x206A),  # bidi isolates
        0x00AD,  # soft hyphen
        0x034F,  # combining grapheme joiner
        0x180E,  # Mongolian vowel separator
        0xFEFF,  # zero-width no-break space / BOM
        *range(0xFE00, 0xFE10),  # variation selectors
        0xE0001,
        0xE007F,  # tag begin / cancel
        *range(0xE0100, 0xE01F0),  # variation selectors supplement
    ]
)
_TAGS = {cp: chr(cp - 0xE0000) for cp in range(0xE0020, 0xE007F)}
_TAG_RE = re.compile("[\U000e0020-\U000e007e]+")

# Cyrillic and Greek letters that render like Latin ones.
_HOMOGLYPHS = str.maketrans(
    "аАвВеЕкКмМнНоОрРсСтТуУхХіІјЈѕЅԁӏɡ"  # Cyrillic (+ two Latin-extended look-alikes)
    "αΑβΒεΕηΗιΙκΚμΜνΝοΟρΡτΤυΥχΧζΖ",  # Greek
    "aAbBeEkKmMhHoOpPcCtTyYxXiIjJsSdlgaAbBeEnHiIkKuMvNoOpPtTuYxXzZ",
)
_LATIN = re.compile(r"[A-Za-z]")
_CONFUSABLE = re.compile("[аАвВеЕкКмМнНоОрРсСтТуУхХіІјЈѕЅԁӏɡαΑβΒεΕηΗιΙκΚμΜνΝοΟρΡτΤυΥχΧζΖ]")

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_WORD = re.compile(r"(?<![\w@$])[A-Za-z0-9@$]*[013457@$][A-Za-z0-9@$]*")
_LEET_CHARS = re.compile(r"[013457@$]")
_SPACED = re.compile(r"\b(?:[A-Za-z][ .\-_*]){3,}[A-Za-z]\b")

_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_GATE = re.compile(r"[0-9A-Fa-f]{20}")  # every hex run ``_HEX`` finds has 20 such digits in a row
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){10,}(?![0-9A-Fa-f])|(?:\\x[0-9A-Fa-f]{2}){6,}")


def strip_invisible(text: str) -> str:
    """Remove invisible characters and decode Unicode tag characters into the ASCII they hide."""
    if text.isascii():
        return text
    return text.translate(_INVISIBLE).translate(_TAGS)


def tag_runs(text: str) -> list[tuple[int, int, str]]:
    """(start, end, hidden ASCII) of each run of Unicode tag characters, which smuggle text invisibly."""
    if text.isascii():
        return []
    return [(m.start(), m.end(), m.group().translate(_TAGS)) for m in _TAG_RE.finditer(text)]


def _unhomoglyph(match: re.Match[str]) -> str:
    word = match.group()
    if _LATIN.search(word) and _CONFUSABLE.search(word):
        return word.translate(_HOMOGLYPHS)
    return word


def _unleet(match: re.Match[str]) -> str:
    word = match.group()
    letters = sum(ch.isalpha() for ch in word)
    if letters < 2 or letters * 2 < len(word):  # a number or a code, not leetspeak
        return word
    return word.translate(_LEET)


def normalize(text: str) -> str:
    """The text as a reader sees it: de-obfuscated and lower-cased (for rules and the model)."""
    text = strip_invisible(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        if _CONFUSABLE.search(text):
            text = re.sub(r"\w+", _unhomoglyph, text)
    if _LEET_CHARS.search(text):
        text = _LEET_WORD.sub(_unleet, text)
    text = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group()), text)
    return text.lower()


_SEGMENT = re.compile(r"[^\n.!?。！？]*(?:[.!?。！？]+|\n|$)")


def segments(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line of ``text``, surrounding whitespace trimmed."""
    found = []
    for match in _SEGMENT.finditer(text):
        raw = match.group()
        stripped = raw.strip()
        if stripped:
            start = match.start() + raw.index(stripped[0])
            found.append((start, start + len(stripped)))
    return found


def normalize_spans(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """``normalize`` of each ``text[start:end]`` for the sentence spans of :func:`segments`.

    An ASCII text without spaced-out letters is normalised in one pass: there every step is
    one character for one character and no word crosses a sentence boundary, so each sentence
    is its slice of the normalised whole (the same strings, without a call per sentence).
    """
    if not text.isascii() or _SPACED.search(text):
        return [normalize(text[start:end]) for start, end in spans]
    if _LEET_CHARS.search(text):
        text = _LEET_WORD.sub(_unleet, text)
    text = text.lower()
    return [text[start:end] for start, end in spans]


def normalised_sentences(text: str) -> list[str]:
    """What the injection model reads: the normalised sentences of ``text``."""
    return normalize_spans(text, segments(text))


@dataclass(frozen=True, slots=True)
class Payload:
    """An encoded run in a text and what it decodes to."""

    start: int
    end: int
    encoding: str  # "base64" | "hex"
    text: str


def _readable(raw: bytes) -> str | None:
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(decoded) < 6:
        return None
    letters = sum(ch.isalpha() or ch.isspace() for ch in decoded)
    if letters < 0.8 * len(decoded) or " " not in decoded.strip():
        return None
    return decoded


def decoded_payloads(text: str) -> list[Payload]:
    """base64 / hex runs in ``text`` that decode to readable text (several words, mostly letters)."""
    found: list[Payload] = []
    for match in _B64.finditer(text):
        token = match.group()
        if token.isdigit() or (token.isalpha() and (token.islower() or token.isupper())):
            continue  # a plain word or number, not an encoding
        bare = token.rstrip("=")
        padded = bare + "=" * (-len(bare) % 4)
        try:
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            continue
        if decoded := _readable(raw):
            found.append(Payload(match.start(), match.end(), "base64", decoded))
    if not _HEX_GATE.search(text) and "\\x" not in text:
        return found  # no run of 20 hex digits nor a "\x" escape: no hex payload
    for match in _HEX.finditer(text):
        digits = match.group().replace("\\x", "")
        if decoded := _readable(bytes.fromhex(digits)):
            found.append(Payload(match.start(), match.end(), "hex", decoded))
    return found
