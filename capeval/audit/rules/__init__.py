"""The audit's rules: small independent functions, one concept each, over one annotated caption.

A rule is `fn(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]`; its docstring says what it catches. Rules
never call one another; `needs_tags` rules see spaCy's reading (`ann.tagged`) only on captions that some rule's
cheap `trigger` selected (`annotate.tag` runs spaCy on those alone). Every finding carries a raw score; the
calibration fitted on the dev split (`capeval.audit.calibration`) turns it into the confidence users see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from capeval.audit.annotate import AnnotatedCaption, AuditContext
from capeval.audit.finding import Finding


@dataclass(frozen=True)
class Rule:
    """A named rule: its category, the function, whether it reads spaCy tags, and (for those) the cheap test that
    selects the captions worth tagging."""

    name: str
    category: str
    fn: Callable[[AnnotatedCaption, AuditContext], list[Finding]]
    needs_tags: bool = False
    trigger: Callable[[AnnotatedCaption, AuditContext], bool] | None = None
    prepare: Callable[[list[AnnotatedCaption], AuditContext], None] | None = None  # batch work before the rule runs


def finding(ann: AnnotatedCaption, category: str, i: int, j: int, suggestion: str | None, rule: str,
            score: float) -> Finding:
    """A finding over word tokens i..j (inclusive) of the caption."""
    a, b = ann.tokens[i], ann.tokens[j]
    c = ann.caption
    return Finding(c.caption_id, c.image_id, category, a.start, b.end, c.text[a.start:b.end], suggestion, rule,
                   round(float(score), 3))


def whole(ann: AnnotatedCaption, category: str, rule: str, score: float) -> Finding:
    """A finding over the whole (stripped) caption."""
    c = ann.caption
    stripped = c.text.strip()
    start = c.text.find(stripped[:1]) if stripped else 0
    return Finding(c.caption_id, c.image_id, category, start, start + len(stripped), stripped, None, rule,
                   round(float(score), 3))


def all_rules() -> list[Rule]:
    """Every built-in text rule, in a fixed order."""
    from capeval.audit.rules import caption, formatting, grammar, real_word, spelling

    return [*spelling.RULES, *real_word.RULES, *grammar.RULES, *caption.RULES, *formatting.RULES]
