"""URLs that leak data or point somewhere they should not.

Categories:

* ``url.exfiltration``: a markdown or HTML image (fetched by the client without a click) whose
  URL carries data: a query value or path segment of 16+ characters, or a template slot
  (``{data}``, ``$SECRET``, ``[DATA]``), to a host not in ``allow_domains``;
* ``url.blocked_domain``: the host is (a subdomain of) an entry of ``block_domains``;
* ``url.unknown_domain``: ``allow_domains`` is set and the host is not (a subdomain of) one;
* ``url.raw_ip``: the host is an IP literal;
* ``url.data_uri``: a ``data:`` URI (HIGH for HTML/JavaScript/SVG payloads) or a
  ``javascript:`` URL;
* ``url.lookalike``: the host is punycode (``xn--``), mixes scripts inside a label, or holds
  compatibility characters (full-width letters and the like);
* ``url.malformed``: a URL that does not parse (an invalid port or IPv6 literal).

Options: ``allow_domains`` and ``block_domains`` (lists of domains, subdomains included).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from security.detectors.base import Finding, ScanInput, make_excerpt

NAME = "urls"

_URL = re.compile(r"(?i)\b(?:https?|ftp)://[^\s<>\"'`)\]]+(?:\([^\s)]*\)[^\s<>\"'`)\]]*)*")
_MD_IMAGE = re.compile(r"!\[[^\]\n]{0,200}\]\(\s*<?((?:https?:)?//[^\s)>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_MD_IMAGE_REF = re.compile(r"(?m)^\s*\[[^\]\n]{1,100}\]:\s*<?((?:https?:)?//\S+?)>?\s*$")
_HTML_IMAGE = re.compile(r"(?i)<img\b[^>]*?\bsrc\s*=\s*[\"']?((?:https?:)?//[^\s\"'>]+)")
_DATA_URI = re.compile(r"(?i)\bdata:([a-z]+/[a-z0-9.+-]+)?(?:;[a-z0-9=.-]+)*(?:;base64)?,[^\s\"'<>)]{8,}")
_JS_URI = re.compile(r"(?i)\bjavascript:[^\s\"'<>]{4,}")
_SLOT = re.compile(r"\{[^}]{1,40}\}|\$\{?[A-Z_]{3,}\}?|\[[A-Z_ ]{3,}\]|%7B|<[A-Z_]{3,}>")
_TRAILING = ".,;:!?"
_DANGEROUS_DATA = ("text/html", "application/javascript", "text/javascript", "image/svg+xml", "application/x-")


def _host_matches(host: str, domains: Iterable[str]) -> bool:
    for domain in domains:
        domain = domain.lower().strip().lstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def _scripts(label: str) -> set[str]:
    scripts = set()
    for ch in label:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            scripts.add(name.split(" ", 1)[0] if name else "UNKNOWN")
    return scripts


def lookalike_reason(host: str) -> str | None:
    """Why ``host`` may impersonate another domain, or None."""
    if any(label.startswith("xn--") for label in host.split(".")):
        return "punycode host"
    if host.isascii():
        return None
    for label in host.split("."):
        scripts = _scripts(label)
        if len(scripts) > 1:
            return "mixed-script host label"
    folded = unicodedata.normalize("NFKC", host)
    if folded != host:
        return "host with compatibility characters"
    return None


def _ip_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return bool(re.fullmatch(r"\d+", host) or re.fullmatch(r"0x[0-9a-f]+", host))  # decimal / hex IPs
    return True


def _host(url: str) -> str | None:
    """The lower-cased host of ``url`` ("" when it has none), or None when it does not parse."""
    try:
        return (urlsplit(url if "://" in url else "http:" + url).hostname or "").lower()
    except ValueError:
        return None


def _carries_data(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return bool(_SLOT.search(url))
    values = [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    if any(len(v) >= 16 or _SLOT.search(v) for v in values):
        return True
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if any(len(s) >= 24 and not re.fullmatch(r"[\w.-]+\.(?:png|jpe?g|gif|svg|webp)", s) for s in segments):
        return True
    return bool(_SLOT.search(url))


class UrlDetector:
    name = NAME

    def scan(self, item: ScanInput, *, options: Mapping[str, Any]) -> list[Finding]:
        text = item.text
        allow = list(options.get("allow_domains") or ())
        block = list(options.get("block_domains") or ())
        findings: list[Finding] = []
        seen: set[tuple[int, int, str]] = set()

        def add(start: int, end: int, category: str, severity: str, score: float, rule: str) -> None:
            if (start, end, category) not in seen:
                seen.add((start, end, category))
                findings.append(
                    Finding(NAME, category, severity, score, start, end, rule, make_excerpt(text, start, end))
                )

        # An ASCII text's lower case shows exactly whether a case-insensitive pattern's literal is
        # there (others may hide one behind a case-folding look-alike: they take the full search).
        lowered = text.lower() if text.isascii() else None

        def holds(literal: str) -> bool:
            return lowered is None or literal in lowered

        images: set[int] = set()
        for pattern, literal in ((_MD_IMAGE, "!["), (_MD_IMAGE_REF, "]:"), (_HTML_IMAGE, "<img")):
            if not holds(literal):
                continue
            for match in pattern.finditer(text):
                url = match.group(1)
                images.add(match.start(1))
                host = _host(url)
                if _carries_data(url) and not (host and _host_matches(host, allow)):
                    add(match.start(), match.end(), "url.exfiltration", "HIGH", 0.9, "image URL carrying data")

        if "://" in text:
            for match in _URL.finditer(text):
                url = match.group().rstrip(_TRAILING)
                start, end = match.start(), match.start() + len(url)
                host = _host(url)
                if host is None:
                    add(start, end, "url.malformed", "LOW", 0.5, "URL that does not parse")
                    continue
                if not host:
                    continue
                if _host_matches(host, block):
                    add(start, end, "url.blocked_domain", "HIGH", 0.95, f"blocked domain {host}")
                elif allow and not _host_matches(host, allow):
                    add(start, end, "url.unknown_domain", "MEDIUM", 0.6, f"domain {host} is not allowed")
                if _ip_host(host):
                    add(start, end, "url.raw_ip", "MEDIUM", 0.7, "URL with an IP address host")
                if reason := lookalike_reason(host):
                    add(start, end, "url.lookalike", "HIGH", 0.85, reason)

        for match in _DATA_URI.finditer(text) if holds("data:") else ():
            mime = (match.group(1) or "").lower()
            severity = "HIGH" if mime.startswith(_DANGEROUS_DATA) else "MEDIUM"
            add(match.start(), match.end(), "url.data_uri", severity, 0.8, f"data: URI ({mime or 'no type'})")
        for match in _JS_URI.finditer(text) if holds("javascript:") else ():
            add(match.start(), match.end(), "url.data_uri", "HIGH", 0.85, "javascript: URL")
        findings.sort(key=lambda f: (f.start, f.category))
        return findings
