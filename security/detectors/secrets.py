"""Credentials: cloud keys, private keys, API tokens with known prefixes, high-entropy strings.

Known formats are matched exactly (prefix, alphabet and length). Beyond them a token counts
as a generic secret (``secret.high_entropy``) when it is at least 20 characters of a key
alphabet, mixes letters and digits, and its Shannon entropy is near the maximum its length
allows. Decisions taken for precision, each with a test:

* hexadecimal-only strings (git SHAs, SHA-256 digests, checksums) and UUIDs are *not* secrets
  on their own: they are overwhelmingly identifiers. They are reported only as the value of an
  assignment whose key names a secret (``api_key = "9f86d0…"``, ``"client_secret": "…"``);
* PUBLIC keys and certificates are not secrets, only ``PRIVATE KEY`` blocks;
* documentation placeholders (AWS's ``…EXAMPLE`` keys, ``xxxx``/``<your-key>`` values) are not
  secrets;
* base64 that decodes to readable prose is left to the prompt-injection detector;
* Stripe ``pk_`` (publishable) keys are public by design and not reported.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from security.detectors.base import Finding, ScanInput, make_excerpt

NAME = "secrets"
GENERIC_SECRET = "secret.high_entropy"  # noqa: S105  (a category name)

# (category, severity, rule, pattern, group holding the secret). A pattern only runs when one of
# its needles (lower-case literals) occurs in the lower-cased text: a substring test is far
# cheaper than a regular-expression pass, and most texts hold no key at all.
_NEEDLES = {
    "private key block": ("private key",),
    "private key block (truncated)": ("private key",),
    "AWS access key id": ("akia", "asia", "abia", "acca"),
    "AWS secret access key": ("secret",),
    "Azure storage connection string key": ("accountkey",),
    "Azure shared access key": ("sharedaccess", "sig="),
    "Google API key": ("aiza",),
    "GitHub token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "GitHub fine-grained token": ("github_pat_",),
    "GitLab token": ("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-"),
    "Slack token": ("xox",),
    "Slack incoming webhook": ("hooks.slack.com",),
    "Stripe secret key": ("_live_",),
    "Stripe test secret key": ("_test_",),
    "Anthropic API key": ("sk-ant-",),
    "OpenAI API key": ("sk-",),
    "npm token": ("npm_",),
    "PyPI token": ("pypi-",),
    "Hugging Face token": ("hf_",),
    "SendGrid API key": ("sg.",),
    "Google OAuth access token": ("ya29.",),
    "password in a connection URL": ("://",),
}
_KNOWN: tuple[tuple[str, str, str, re.Pattern[str], int, tuple[str, ...]], ...] = tuple(
    (category, severity, rule, re.compile(pattern), group, _NEEDLES[rule])
    for category, severity, rule, pattern, group in [
        (
            "secret.private_key",
            "CRITICAL",
            "private key block",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:.|\n)+?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
            0,
        ),
        (
            "secret.private_key",
            "CRITICAL",
            "private key block (truncated)",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:\\n|\s)*[A-Za-z0-9+/=\\\s]{64,}",
            0,
        ),
        (
            "secret.aws_access_key",
            "CRITICAL",
            "AWS access key id",
            r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])",
            0,
        ),
        (
            "secret.aws_secret_key",
            "CRITICAL",
            "AWS secret access key",
            r"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key|aws_?secret)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
            1,
        ),
        (
            "secret.azure_storage_key",
            "CRITICAL",
            "Azure storage connection string key",
            r"(?i:AccountKey)=([A-Za-z0-9+/]{86}==)",
            1,
        ),
        (
            "secret.azure_sas_key",
            "CRITICAL",
            "Azure shared access key",
            r"(?i:SharedAccessKey|SharedAccessSignature=sig|[?&]sig)=([A-Za-z0-9+/%]{43,}=?)",
            1,
        ),
        ("secret.gcp_api_key", "HIGH", "Google API key", r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])", 0),
        ("secret.github_token", "CRITICAL", "GitHub token", r"(?<![\w])gh[pousr]_[A-Za-z0-9]{36,251}(?!\w)", 0),
        (
            "secret.github_token",
            "CRITICAL",
            "GitHub fine-grained token",
            r"(?<![\w])github_pat_[A-Za-z0-9_]{60,255}(?!\w)",
            0,
        ),
        (
            "secret.gitlab_token",
            "CRITICAL",
            "GitLab token",
            r"(?<![\w-])gl(?:pat|dt|rt|ptt|cbt)-[A-Za-z0-9_-]{20,}(?![\w-])",
            0,
        ),
        (
            "secret.slack_token",
            "CRITICAL",
            "Slack token",
            r"(?<![\w-])xox[abposr]-(?:\d+-)+[A-Za-z0-9-]{8,}(?![\w-])",
            0,
        ),
        (
            "secret.slack_webhook",
            "HIGH",
            "Slack incoming webhook",
            r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}",
            0,
        ),
        ("secret.stripe_key", "CRITICAL", "Stripe secret key", r"(?<![\w])(?:sk|rk)_live_[A-Za-z0-9]{20,99}(?!\w)", 0),
        (
            "secret.stripe_key",
            "MEDIUM",
            "Stripe test secret key",
            r"(?<![\w])(?:sk|rk)_test_[A-Za-z0-9]{20,99}(?!\w)",
            0,
        ),
        (
            "secret.anthropic_key",
            "CRITICAL",
            "Anthropic API key",
            r"(?<![\w-])sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,}(?![\w-])",
            0,
        ),
        (
            "secret.openai_key",
            "CRITICAL",
            "OpenAI API key",
            r"(?<![\w-])sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{48})(?![\w-])",
            0,
        ),
        ("secret.npm_token", "HIGH", "npm token", r"(?<![\w])npm_[A-Za-z0-9]{36}(?!\w)", 0),
        ("secret.pypi_token", "HIGH", "PyPI token", r"(?<![\w-])pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}(?![\w-])", 0),
        ("secret.huggingface_token", "HIGH", "Hugging Face token", r"(?<![\w])hf_[A-Za-z]{34}(?!\w)", 0),
        (
            "secret.sendgrid_key",
            "HIGH",
            "SendGrid API key",
            r"(?<![\w])SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![\w-])",
            0,
        ),
        (
            "secret.google_oauth_token",
            "HIGH",
            "Google OAuth access token",
            r"(?<![\w])ya29\.[A-Za-z0-9_-]{30,}(?![\w-])",
            0,
        ),
        (
            "secret.connection_password",
            "HIGH",
            "password in a connection URL",
            r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{1,64}:([^\s:/@]{3,128})@[\w.-]+",
            1,
        ),
    ]
)

_KEY_NAME_PATTERN = (
    r"(?<![A-Za-z0-9])(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|client[_-]?secret|auth|credential|signing[_-]?key)(?:[_-][A-Za-z0-9]+)*"
)
_SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential")
_QUOTED_ASSIGNMENT = _KEY_NAME_PATTERN + r"[\"']?\s*(?:[:=]|=>|:=)\s*[\"']([^\s\"']{8,256})[\"']"
_ENV_ASSIGNMENT = r"\b(?:export\s+)?[A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY)[A-Z0-9_]*=([^\s\"']{8,256})"
_ASSIGNMENT = re.compile(r"(?i)" + _QUOTED_ASSIGNMENT + "|" + _ENV_ASSIGNMENT)
# The same search when the text cannot hold the second form (most texts): much cheaper, because
# the second form backtracks through every word looking for a key name inside it.
_QUOTED_ASSIGNMENT_ONLY = re.compile(r"(?i)" + _QUOTED_ASSIGNMENT)
_ENV_KEY_WORDS = ("password", "secret", "token", "api_key", "access_key")
_CANDIDATE = re.compile(r"(?<![\w+/=.-])[A-Za-z0-9+/_-]{20,512}={0,2}(?![\w+/=-])")
# Blocks and encodings that are long and random by nature but public: PEM public keys and
# certificates, SSH public keys, subresource-integrity hashes.
_PUBLIC_BLOCK = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*(?:PUBLIC KEY|CERTIFICATE(?: REQUEST)?|X509 CRL|PGP PUBLIC KEY BLOCK|PGP SIGNATURE)-----(?:.|\n)*?-----END [A-Z0-9 ]+-----"
    r"|\b(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-ssh-ed25519@openssh\.com)\s+AAAA[A-Za-z0-9+/=]+"
    r"|\bsha(?:1|256|384|512)-[A-Za-z0-9+/=]{20,}"
)
_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PLACEHOLDER = re.compile(
    r"(?i)example|x{6,}|\*{4,}|your[_-]|<[^>]*>|changeme|placeholder|redacted|dummy|0{8,}|1234567"
)


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    length = len(value)
    return -sum(n / length * math.log2(n / length) for n in counts.values())


def _decodes_to_prose(token: str) -> bool:
    bare = token.rstrip("=")
    try:
        raw = base64.b64decode(bare + "=" * (-len(bare) % 4), altchars=b"-_" if "-" in bare or "_" in bare else None)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return sum(ch.isalpha() or ch.isspace() for ch in decoded) >= 0.85 * len(decoded) and " " in decoded


def looks_random(token: str) -> bool:
    """A generic secret: long, mixed letters and digits, near-maximal entropy for its length."""
    if len(token) < 20 or _PLACEHOLDER.search(token) or token.startswith(("pk_live_", "pk_test_")):
        return False
    if _HEX.fullmatch(token) or _UUID.fullmatch(token):
        return False
    upper = sum(ch.isupper() for ch in token)
    lower = sum(ch.islower() for ch in token)
    digits = sum(ch.isdigit() for ch in token)
    if digits < 2 or upper < 2 or lower < 2 or (upper + lower) < len(token) // 3:
        return False
    if "/" in token and re.search(r"/[a-z]{3,}/|^[a-z]+/", token):
        return False  # a path
    if re.search(r"[a-z]{2,}[A-Z][a-z]{2,}[A-Z][a-z]{2,}", token) or "__" in token or "--" in token:
        return False  # camelCase / snake-case identifier
    ideal = math.log2(min(len(token), 64))
    return shannon_entropy(token) >= 0.8 * ideal and not _decodes_to_prose(token)


def _known(text: str) -> Iterator[tuple[int, int, str, str, str, float]]:
    lowered = text.lower()
    for category, severity, rule, pattern, group, needles in _KNOWN:
        if not any(needle in lowered for needle in needles):
            continue
        for match in pattern.finditer(text):
            value = match.group(group)
            if category != "secret.private_key" and _PLACEHOLDER.search(value):
                continue
            if category == "secret.private_key" and '"type": "service_account"' in text.replace("'", '"'):
                category, rule = "secret.gcp_service_account", "GCP service-account private key"
            yield match.start(group), match.end(group), category, severity, rule, 0.97


def _assigned(text: str) -> Iterator[tuple[int, int, str, str, str, float]]:
    lowered = text.lower()
    if not any(word in lowered for word in _SECRET_WORDS):
        return
    # The second form needs "=" and one of its key words; an ASCII text's lower case shows them
    # exactly (others may hide one behind a case-folding look-alike, so they take the full search).
    env_form = "=" in text and (not text.isascii() or any(word in lowered for word in _ENV_KEY_WORDS))
    for match in (_ASSIGNMENT if env_form else _QUOTED_ASSIGNMENT_ONLY).finditer(text):
        group = 1 if match.group(1) is not None else 2
        value = match.group(group)
        if _PLACEHOLDER.search(value) or len(set(value)) < 6 or value.startswith(("$", "{", "%(")):
            continue  # a placeholder or a template variable, not a value
        if re.fullmatch(r"[a-z]+(?:[_.-][a-z]+)*", value) and len(value) > 8 and shannon_entropy(value) < 3.5:
            continue  # an ordinary word or identifier (`token_type = "bearer_token"`)
        yield (
            match.start(group),
            match.end(group),
            "secret.assigned_secret",
            "HIGH",
            "value of a secret-named key",
            0.85,
        )


# Every match of _PUBLIC_BLOCK holds one of these: a text without any has no public block.
_PUBLIC_NEEDLES = ("-----BEGIN ", "ssh-", "ecdsa-sha2-nistp", "sha1-", "sha256-", "sha384-", "sha512-")


def _high_entropy(text: str) -> Iterator[tuple[int, int, str, str, str, float]]:
    public = [m.span() for m in _PUBLIC_BLOCK.finditer(text)] if any(n in text for n in _PUBLIC_NEEDLES) else []
    for match in _CANDIDATE.finditer(text):
        if any(start <= match.start() < end for start, end in public):
            continue
        if looks_random(match.group()):
            yield match.start(), match.end(), GENERIC_SECRET, "MEDIUM", "high-entropy string", 0.7


class SecretsDetector:
    name = NAME

    def scan(self, item: ScanInput, *, options: Mapping[str, Any]) -> list[Finding]:
        text = item.text
        kept: list[tuple[int, int, str, str, str, float]] = []
        finders = [_known, _assigned]
        if options.get("high_entropy", True):
            finders.append(_high_entropy)
        for finder in finders:  # in order of specificity: a later overlapping candidate is dropped
            for candidate in finder(text):
                if all(candidate[1] <= k[0] or candidate[0] >= k[1] for k in kept):
                    kept.append(candidate)
        kept.sort()
        spans = [(k[0], k[1]) for k in kept]
        return [
            Finding(
                detector=NAME,
                category=category,
                severity=severity,
                score=score,
                start=start,
                end=end,
                rule=rule,
                excerpt=make_excerpt(text, start, end, mask=spans),
            )
            for start, end, category, severity, rule, score in kept
        ]
