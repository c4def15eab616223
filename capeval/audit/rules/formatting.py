"""Formatting rules: what a typesetter would fix without changing a word (ALL CAPS, stray or doubled punctuation,
missing spaces, unbalanced brackets). Formatting is not a caption-level error: `--exclude-captions` keeps these."""

from __future__ import annotations

import re
from collections.abc import Callable

from capeval.audit.annotate import AnnotatedCaption, AuditContext
from capeval.audit.finding import Finding
from capeval.audit.rules import Rule

# (pattern, rule name, raw score, replacement); each pattern is one typographic slip
_PATTERNS: list[tuple[re.Pattern[str], str, float, Callable[[re.Match[str]], str | None]]] = [
    (re.compile(r"([,;:!?])\1+|\.{2}(?!\.)|\.{4,}"), "formatting.repeated_punctuation", 0.8, lambda m: m.group()[0]),
    (re.compile(r"(?<=\w) +([,;:!?]|\.(?!\.))(?= |$)"), "formatting.space_before_punctuation", 0.6,
     lambda m: m.group(1)),
    (re.compile(r",(?=[A-Za-z])"), "formatting.missing_space_after_comma", 0.7, lambda m: ", "),
    (re.compile(r"[`\\#*_~<>|{}\[\]^@=]+"), "formatting.stray_character", 0.7, lambda m: ""),
    (re.compile(r"^\s*[.,;:!?\-]+\s*"), "formatting.leading_punctuation", 0.8, lambda m: ""),
    (re.compile(r"(?<=\S)(?: {2,}|\t+)(?=\S)"), "formatting.extra_space", 0.5, lambda m: " "),
    (re.compile(r"[,;:]\.|\.[,;:]"), "formatting.mixed_punctuation", 0.75, lambda m: m.group()[-1]),
    (re.compile(r"\b[a-z]{3,}[A-Z]\b"), "formatting.stray_capital", 0.7, lambda m: m.group().lower()),
    (re.compile(r"(?<=[a-z]{3})\.(?!com\b|org\b|net\b)(?=[a-z]{3,}\b)"), "formatting.missing_space_after_period", 0.6,
     lambda m: ". "),
    # not after a capitalised abbreviation ("Front Ave. and Seventh St.")
    (re.compile(r"(?<![A-Z][a-z])(?<![A-Z][a-z]{2})(?<![A-Z][a-z]{3})(?<=[a-z]{2})\. (?=[a-z]{2,}\b)"),
     "formatting.period_mid_sentence", 0.6, lambda m: None),
]
# a cheap necessary condition for any pattern (character classes only)
_ANY = re.compile(r" {2}|\t|[,;:!?]{2}|\.\.|\s[,.;:!?]|,[A-Za-z]|^\s*[.,;:!?\-]|[`\\#*_~<>|{}\[\]^@()\"=]"
                  r"|[,;:]\.|\.[,;:]|[a-z][A-Z]\b|[a-z]\.[a-z]|[a-z]\. [a-z]")


def all_caps(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """The whole caption in capitals."""
    text = ann.caption.text
    stripped = text.strip()
    if stripped.isupper() and len(ann.words) >= 3 and sum(map(len, ann.words)) >= 8:
        c = ann.caption
        start = text.index(stripped[0])
        return [Finding(c.caption_id, c.image_id, "formatting", start, start + len(stripped), stripped,
                        stripped[0].upper() + stripped[1:].lower(), "formatting.all_caps", 0.9)]
    return []


def punctuation_and_spacing(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """Doubled, mixed, leading or space-preceded punctuation, stray symbols, missing spaces, odd capitals at a word
    end, mid-sentence periods (one pattern each in `_PATTERNS`)."""
    c = ann.caption
    text = c.text
    end = len(text.rstrip())
    if not _ANY.search(text, 0, end):
        return []
    return [Finding(c.caption_id, c.image_id, "formatting", m.start(), m.end(), m.group(), fix(m), rule, score)
            for rx, rule, score, fix in _PATTERNS for m in rx.finditer(text, 0, end)]


def unbalanced_brackets(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """An opening bracket or quote without its partner."""
    c = ann.caption
    text = c.text
    out = []
    for a, b in (("(", ")"), ('"', '"')):
        if a not in text and b not in text:
            continue
        unbalanced = text.count(a) % 2 == 1 if a == b else text.count(a) != text.count(b)
        if unbalanced:
            pos = max(text.rfind(a), text.rfind(b))
            out.append(Finding(c.caption_id, c.image_id, "formatting", pos, pos + 1, text[pos], None,
                               "formatting.unbalanced_quote_or_bracket", 0.6))
    return out


RULES = [
    Rule("formatting.all_caps", "formatting", all_caps),
    Rule("formatting.punctuation", "formatting", punctuation_and_spacing),
    Rule("formatting.unbalanced", "formatting", unbalanced_brackets),
]
