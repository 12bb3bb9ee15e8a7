"""Personal and payment data: e-mail, phone, payment card, IBAN, US SSN, IP address, JWT.

Every candidate a regular expression finds is validated before it becomes a finding:

* ``pii.card``: 12-19 digits (one consistent separator), Luhn-valid, and a known IIN range
  with a length that range issues;
* ``pii.iban``: a known country, that country's length, ISO 7064 mod-97 == 1;
* ``pii.ssn``: ``AAA-GG-SSSS`` without area 000/666/9xx, group 00 or serial 0000 (and not the
  two numbers printed in advertisements); nine bare digits only next to the words "SSN" /
  "social security";
* ``pii.phone``: ``+`` and 8-15 digits (E.164), or a national format with an area code in
  parentheses / the North-American 3-3-4 shape / a trunk ``0`` and separators; a bare run of
  digits only next to a word such as "phone", "call" or "tel";
* ``pii.ip_address``: a valid IPv4 or IPv6 address, except loopback, unspecified and netmask
  values, and dotted quads in a version context ("version 1.2.3.4", "v1.2.3.4");
* ``pii.email``: an address whose top-level domain is alphabetic and not a file extension
  (``logo@2x.png`` is not an address);
* ``token.jwt``: three base64url parts whose header decodes to JSON naming an ``alg``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from security.detectors.base import Finding, ScanInput, make_excerpt

NAME = "sensitive_data"

# Patterns that open with a look-behind start with a look-ahead for their first character: it
# changes no match (every match starts with such a character) but lets the regular-expression
# engine skip to candidate positions instead of trying the whole pattern at every one.

# --- Payment cards ----------------------------------------------------------------------------
_CARD = re.compile(r"(?=\d)(?<![\d.,-])(?:\d[ .-]?){11,18}\d(?![\d]|[.,-]\d)")
# (prefix range low, high, allowed lengths); prefixes compared on their own digit count.
_IIN: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (300, 305, frozenset({14, 16, 17, 18, 19})),  # Diners Club
    (36, 36, frozenset({14, 15, 16, 17, 18, 19})),
    (38, 39, frozenset({16, 17, 18, 19})),
    (6011, 6011, frozenset({16, 17, 18, 19})),  # Discover
    (644, 649, frozenset({16, 17, 18, 19})),
    (65, 65, frozenset({16, 17, 18, 19})),
    (3528, 3589, frozenset({16, 17, 18, 19})),  # JCB
    (62, 62, frozenset({16, 17, 18, 19})),  # UnionPay
    (50, 50, frozenset({12, 13, 14, 15, 16, 17, 18, 19})),  # Maestro
    (56, 58, frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
    (67, 67, frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
    (2200, 2204, frozenset({16, 17, 18, 19})),  # Mir
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand_ok(digits: str) -> bool:
    for low, high, lengths in _IIN:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return True
    return False


def _cards(text: str) -> Iterator[tuple[int, int, str, float]]:
    for match in _CARD.finditer(text):
        raw = match.group()
        separators = set(re.findall(r"[ .-]", raw))
        if len(separators) > 1:
            continue
        digits = re.sub(r"[ .-]", "", raw)
        if separators and not re.fullmatch(r"\d{4}([ .-]\d{4}){2,3}([ .-]\d{1,3})?|\d{4}[ .-]\d{6}[ .-]\d{4,5}", raw):
            continue  # grouped, but not the way cards are printed
        if len(set(digits)) > 1 and luhn_valid(digits) and card_brand_ok(digits):
            yield match.start(), match.end(), "pii.card", 0.95


# --- IBAN -------------------------------------------------------------------------------------
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
_IBAN = re.compile(r"(?=[A-Z])\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")


def iban_valid(compact: str) -> bool:
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterator[tuple[int, int, str, float]]:
    for match in _IBAN.finditer(text):
        raw = match.group()
        compact = raw.replace(" ", "")
        length = IBAN_LENGTHS.get(compact[:2])
        if length is None:
            continue
        # The regex is greedy over spaces: cut the candidate back to the country's length.
        if len(compact) > length:
            kept, end = 0, match.start()
            for i, ch in enumerate(raw):
                kept += ch != " "
                if kept == length:
                    end = match.start() + i + 1
                    break
            compact = compact[:length]
            if end < len(text) and text[end].isalnum():
                continue
        else:
            end = match.end()
        if iban_valid(compact):
            yield match.start(), end, "pii.iban", 0.97


# --- US SSN -----------------------------------------------------------------------------------
_SSN = re.compile(r"(?=\d)(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")
_SSN_BARE = re.compile(r"(?i)\b(?:ssn|social security(?: number| no\.?| #)?)\W{0,5}(\d{9})\b")
_SSN_ADVERTISED = {"078051120", "219099999", "123456789"}


def ssn_valid(area: str, group: str, serial: str) -> bool:
    if area in {"000", "666"} or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _SSN_ADVERTISED


def _ssns(text: str) -> Iterator[tuple[int, int, str, float]]:
    for match in _SSN.finditer(text) if "-" in text else ():
        if ssn_valid(*match.groups()):
            yield match.start(), match.end(), "pii.ssn", 0.9
    lowered = text.lower()
    if "ssn" not in lowered and "social security" not in lowered:
        return
    for match in _SSN_BARE.finditer(text):
        digits = match.group(1)
        if ssn_valid(digits[:3], digits[3:5], digits[5:]):
            yield match.start(1), match.end(1), "pii.ssn", 0.85


# --- Phone ------------------------------------------------------------------------------------
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}(?![\w])")
_PHONE_NATIONAL = re.compile(
    r"(?=[(\d])(?<![\w.+-])(?:"
    r"\(\d{2,5}\)[ .-]?\d{2,4}(?:[ .-]\d{2,4}){1,2}"  # (415) 555-2671, (020) 7946 0958
    r"|\d{3}([.-])\d{3}\1\d{4}"  # 415-555-2671, 415.555.2671
    r"|\d{3} \d{3} \d{4}"  # 415 555 2671
    r"|0\d{1,4}[ -]\d{3,4}[ -]\d{3,4}"  # 020 7946 0958, 030-1234-5678
    r"|0\d(?:[ .]\d{2}){4}"  # 06 12 34 56 78
    r")(?![\w]|[.-]\d)"
)
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|call|fax|whatsapp|sms|text me|reach me|contact|numéro|telefon|handy)\b"
)
_PHONE_BARE = re.compile(r"(?=\d)(?<![\w.+-])\d{10,11}(?![\w]|[.-]\d)")
_DATE_LIKE = re.compile(r"\d{4}[-./]\d{2}[-./]\d{2}|\d{2}[-./]\d{2}[-./]\d{4}")


def _inside_number(text: str, start: int, end: int) -> bool:
    """Whether a candidate is one group of a longer run of digit groups (a card, an account)."""
    return bool(re.search(r"\d[ -]$", text[max(0, start - 2) : start]) or re.match(r"[ -]\d", text[end : end + 2]))


def _phones(text: str) -> Iterator[tuple[int, int, str, float]]:
    for match in _PHONE_INTL.finditer(text) if "+" in text else ():
        digits = re.sub(r"\D", "", match.group())
        if 8 <= len(digits) <= 15:
            yield match.start(), match.end(), "pii.phone", 0.9
    for match in _PHONE_NATIONAL.finditer(text):
        raw = match.group()
        if (
            _DATE_LIKE.fullmatch(raw)
            or _inside_number(text, match.start(), match.end())
            or len(set(raw) - set(" .-()")) < 3
        ):
            continue
        digits = re.sub(r"\D", "", raw)
        if 9 <= len(digits) <= 12:
            yield match.start(), match.end(), "pii.phone", 0.8
    for match in _PHONE_BARE.finditer(text):
        if _PHONE_CONTEXT.search(text, max(0, match.start() - 40), match.start()):
            yield match.start(), match.end(), "pii.phone", 0.7


# --- IP addresses -----------------------------------------------------------------------------
_IPV4 = re.compile(r"(?=\d)(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_VERSION_CONTEXT = re.compile(
    r"(?i)(?:\bv|\bversion|\bver\.?|\brelease|\bbuild|\bupgrade to|\bbump(?:ed)? to)\s*[:=]?\s*$"
)


def _ips(text: str) -> Iterator[tuple[int, int, str, float]]:
    for match in _IPV4.finditer(text):
        try:
            address = ipaddress.IPv4Address(match.group())
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified or match.group().startswith("255."):
            continue
        if _VERSION_CONTEXT.search(text, max(0, match.start() - 20), match.start()):
            continue
        yield match.start(), match.end(), "pii.ip_address", 0.85
    if "::" not in text and text.count(":") < 7:
        return  # an IPv6 address has "::" or seven colons
    for match in _IPV6.finditer(text):
        raw = match.group()
        groups = [g for g in re.split(r"[:.]", raw) if g]
        if len(groups) < 3 and not any(len(g) >= 3 for g in groups):
            continue  # "a::b", "12:30" and the like
        try:
            address = ipaddress.IPv6Address(raw)
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified or address.is_reserved:
            continue
        yield match.start(), match.end(), "pii.ip_address", 0.85


# --- E-mail -----------------------------------------------------------------------------------
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"([A-Za-z]{2,24})(?![\w-]|\.[A-Za-z0-9])"
)
_FILE_EXTENSIONS = {"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "css", "js", "py", "ts", "map"}


def _emails(text: str) -> Iterator[tuple[int, int, str, float]]:
    if "@" not in text:
        return
    for match in _EMAIL.finditer(text):
        if match.group(1).lower() in _FILE_EXTENSIONS:
            continue
        local = match.group().split("@", 1)[0]
        if ".." in local or local.endswith("."):
            continue
        if local == "git" and text.startswith(":", match.end()):
            continue  # git@github.com:org/repo is an SSH remote, not a mailbox
        line_start = text.rfind("\n", 0, match.start()) + 1
        if match.start() and text[match.start() - 1] == ":" and "://" in text[line_start : match.start()]:
            continue  # scheme://user:password@host: the credentials of a URL, not a mailbox
        yield match.start(), match.end(), "pii.email", 0.95


# --- JWT --------------------------------------------------------------------------------------
_JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}(?![\w-])")


def _jwts(text: str) -> Iterator[tuple[int, int, str, float]]:
    if "eyJ" not in text:
        return
    for match in _JWT.finditer(text):
        header = match.group().split(".", 1)[0]
        try:
            decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
        if isinstance(decoded, dict) and "alg" in decoded:
            yield match.start(), match.end(), "token.jwt", 0.97


_SEVERITY = {
    "pii.card": "HIGH",
    "pii.iban": "HIGH",
    "pii.ssn": "HIGH",
    "token.jwt": "HIGH",
    "pii.email": "MEDIUM",
    "pii.phone": "MEDIUM",
    "pii.ip_address": "LOW",
}
_RULES = {
    "pii.card": "payment card number (Luhn and IIN valid)",
    "pii.iban": "IBAN (country length and mod-97 valid)",
    "pii.ssn": "US social security number",
    "token.jwt": "JSON Web Token",
    "pii.email": "e-mail address",
    "pii.phone": "phone number",
    "pii.ip_address": "IP address",
}
# Higher first: when two candidates overlap, the more specific one is kept.
_PRIORITY = ["token.jwt", "pii.card", "pii.iban", "pii.ssn", "pii.email", "pii.ip_address", "pii.phone"]
_FINDERS = (_jwts, _cards, _ibans, _ssns, _emails, _ips, _phones)


class SensitiveDataDetector:
    name = NAME

    def scan(self, item: ScanInput, *, options: Mapping[str, Any]) -> list[Finding]:
        text = item.text
        disabled = set(options.get("disabled_categories") or ())
        candidates = [c for finder in _FINDERS for c in finder(text) if c[2] not in disabled]
        candidates.sort(key=lambda c: (_PRIORITY.index(c[2]), c[0]))
        kept: list[tuple[int, int, str, float]] = []
        for candidate in candidates:
            if all(candidate[1] <= k[0] or candidate[0] >= k[1] for k in kept):
                kept.append(candidate)
        kept.sort()
        spans = [(start, end) for start, end, _, _ in kept]
        return [
            Finding(
                detector=NAME,
                category=category,
                severity=_SEVERITY[category],
                score=score,
                start=start,
                end=end,
                rule=_RULES[category],
                excerpt=make_excerpt(text, start, end, mask=spans),
            )
            for start, end, category, score in kept
        ]
