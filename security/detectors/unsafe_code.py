"""Destructive shell commands and SQL statements, mainly in tool calls.

Categories: ``code.destructive_shell`` (recursive deletes of /, ~ or *, mkfs, dd or redirects
onto a block device, fork bombs, recursive chmod 777 / chown of /, shred/wipefs of a disk),
``code.remote_script`` (a download piped into a shell or interpreter) and ``code.destructive_sql``
(DROP DATABASE/TABLE/SCHEMA, TRUNCATE, DELETE or UPDATE without a WHERE clause).

A finding in a ``tool_input`` (about to be executed) is CRITICAL; in other kinds of content
(a prompt asking about it, a response showing it) it is MEDIUM, as it is only text there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from security.detectors.base import Finding, ScanInput, make_excerpt

NAME = "unsafe_code"

_ROOTISH = (
    r"(?:/|/\*|~/?|~/\*|\*|\.{1,2}/?\*?|\$HOME/?\*?|/(?:bin|boot|dev|etc|home|lib|opt|root|sbin|srv|usr|var)/?\*?)"
)
_SHELL: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (category, rule, re.compile(pattern))
    for category, rule, pattern in [
        (
            "code.destructive_shell",
            "recursive forced delete of a root, home or wildcard path",
            r"\brm\s+(?:-{1,2}[\w-]+\s+)*-(?:[a-zA-Z]*[rR][a-zA-Z]*[fF]|[a-zA-Z]*[fF][a-zA-Z]*[rR])[a-zA-Z]*\s+(?:-{1,2}[\w-]+\s+)*"
            + _ROOTISH
            + r"(?=\s|$|[;&|)\"'`])",
        ),
        (
            "code.destructive_shell",
            "recursive delete with --no-preserve-root",
            r"\brm\s+[^\n;|&]*--no-preserve-root",
        ),
        ("code.destructive_shell", "filesystem creation on a device", r"\bmkfs(?:\.\w+)?\s+(?:-\S+\s+)*/dev/\w+"),
        (
            "code.destructive_shell",
            "dd writing onto a block device",
            r"\bdd\b[^\n;|&]*\bof=/dev/(?:sd[a-z]|hd[a-z]|nvme\d|xvd[a-z]|vd[a-z]|mmcblk\d|disk\d)",
        ),
        (
            "code.destructive_shell",
            "redirect onto a block device",
            r">\s*/dev/(?:sd[a-z]|hd[a-z]|nvme\d\w*|xvd[a-z]|vd[a-z]|mmcblk\d)\b",
        ),
        ("code.destructive_shell", "fork bomb", r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:"),
        (
            "code.destructive_shell",
            "recursive world-writable permissions on a system path",
            r"\bchmod\s+(?:-\w+\s+)*-[a-zA-Z]*R[a-zA-Z]*\s+(?:-\w+\s+)*0?777\s+" + _ROOTISH + r"(?=\s|$|[;&|])",
        ),
        (
            "code.destructive_shell",
            "recursive ownership change of /",
            r"\bchown\s+(?:-\w+\s+)*-[a-zA-Z]*R[a-zA-Z]*\s+\S+\s+/(?=\s|$|[;&|])",
        ),
        ("code.destructive_shell", "disk wipe", r"\b(?:shred|wipefs)\b[^\n;|&]*\s/dev/\w+"),
        ("code.destructive_shell", "find deleting from /", r"\bfind\s+/\s[^\n;|&]*-delete\b"),
        (
            "code.remote_script",
            "download piped into a shell",
            r"\b(?:curl|wget|fetch|iwr|Invoke-WebRequest)\b[^\n|;]*\|\s*(?:sudo\s+)?(?:ba|z|k|da|c)?sh\b|"
            r"\b(?:curl|wget)\b[^\n|;]*\|\s*(?:sudo\s+)?(?:python3?|perl|ruby|node)\b|"
            r"\b(?:ba)?sh\s+-c\s+[\"']?\$\((?:curl|wget)\b|"
            r"\b(?:ba)?sh\s+<\(\s*(?:curl|wget)\b",
        ),
    ]
)

# Literals every match of a shell rule contains: most texts are skipped by a substring test.
_SHELL_NEEDLES = {
    "recursive forced delete of a root, home or wildcard path": ("rm ",),
    "recursive delete with --no-preserve-root": ("--no-preserve-root",),
    "filesystem creation on a device": ("mkfs",),
    "dd writing onto a block device": ("of=/dev/",),
    "redirect onto a block device": ("/dev/",),
    "fork bomb": (":",),
    "recursive world-writable permissions on a system path": ("chmod",),
    "recursive ownership change of /": ("chown",),
    "disk wipe": ("shred", "wipefs"),
    "find deleting from /": ("-delete",),
    "download piped into a shell": ("curl", "wget", "fetch", "iwr", "invoke-webrequest"),
}
_SQL_DROP = re.compile(
    r"(?i)\b(?:DROP\s+(?:DATABASE|SCHEMA|TABLE|USER|ROLE)\s+(?:IF\s+EXISTS\s+)?|TRUNCATE\s+(?:TABLE\s+)?)[`\"\[]?[\w.]+[`\"\]]?"
)
_SQL_DELETE = re.compile(r"(?i)\bDELETE\s+FROM\s+[`\"\[]?[\w.]+[`\"\]]?(?:\s+(?:AS\s+)?\w+)?\s*(?=;|$|\)|\n\s*\n)")
_SQL_UPDATE = re.compile(r"(?i)\bUPDATE\s+[`\"\[]?[\w.]+[`\"\]]?\s+SET\s+[^;]*?(?=;|$)")
_WHERE = re.compile(r"(?i)\bWHERE\b")


def _statement_like(text: str, match: re.Match[str]) -> bool:
    """SQL written in capitals, or ended by a semicolon: not prose ("truncate the string")."""
    keyword = match.group().split(None, 1)[0]
    if keyword.isupper():
        return True
    tail = text[match.end() : match.end() + 3].lstrip(' `"]')
    return tail.startswith(";") or bool(re.match(r"(?i)(?:DROP\s+\w+\s+|TRUNCATE\s+TABLE\s+)", match.group()))


_SQL_WORDS = ("drop", "truncate", "delete", "update")


def _sql_statements(text: str) -> list[tuple[int, int, str]]:
    found = []
    for pattern, rule in ((_SQL_DROP, "DROP/TRUNCATE statement"), (_SQL_DELETE, "DELETE without WHERE")):
        found += [(m.start(), m.end(), rule) for m in pattern.finditer(text) if _statement_like(text, m)]
    for match in _SQL_UPDATE.finditer(text):
        if not _WHERE.search(match.group()) and _statement_like(text, match):
            found.append((match.start(), match.end(), "UPDATE without WHERE"))
    return found


class UnsafeCodeDetector:
    name = NAME

    def scan(self, item: ScanInput, *, options: Mapping[str, Any]) -> list[Finding]:
        text = item.text
        executed = item.kind == "tool_input"
        severity = "CRITICAL" if executed else "MEDIUM"
        score = 0.95 if executed else 0.6
        findings: list[Finding] = []
        lowered = text.lower()
        for category, rule, pattern in _SHELL:
            if not any(needle in lowered for needle in _SHELL_NEEDLES[rule]):
                continue
            for match in pattern.finditer(text):
                findings.append(
                    Finding(
                        NAME,
                        category,
                        severity,
                        score,
                        match.start(),
                        match.end(),
                        rule,
                        make_excerpt(text, match.start(), match.end()),
                    )
                )
        # An ASCII text's lower case shows the keywords exactly; others take the case-insensitive search.
        sql_words = any(word in lowered for word in _SQL_WORDS) if text.isascii() else True
        if sql_words and re.search(r"(?i)\b(?:drop|truncate|delete|update)\b", text):
            for start, end, rule in _sql_statements(text):
                findings.append(
                    Finding(
                        NAME, "code.destructive_sql", severity, score, start, end, rule, make_excerpt(text, start, end)
                    )
                )
        findings.sort(key=lambda f: (f.start, -f.end))
        kept: list[Finding] = []
        for finding in findings:  # one finding per command, even when two rules describe it
            if not any(
                k.category == finding.category and k.start < finding.end and finding.start < k.end for k in kept
            ):
                kept.append(finding)
        return kept
