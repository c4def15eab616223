"""Spelling rules: words that are not English words (the dictionary, corpus and candidate ranking live in
`capeval.audit.spelling`), and tokens garbled by a symbol typed inside them."""

from __future__ import annotations

import re

from capeval.audit.annotate import AnnotatedCaption, AuditContext
from capeval.audit.finding import Finding
from capeval.audit.rules import Rule

_GLUED_SYMBOL = re.compile(r"(?<=[A-Za-z])[=+*^~|\\_#@;{}\[\]<>](?=[A-Za-z])")


def non_word(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A token that is neither a dictionary word, a regular form or derivation of one, nor a word the corpus uses
    widely: a misspelling, with the best-ranked correction (edit distance, frequency, neighbours, siblings, and the
    caption language model around it)."""
    c = ann.caption
    context = None
    if ctx.lm is not None:
        from capeval.audit.candidates import context_logprobs

        def context(i: int, replacements: list[str]) -> list[float]:
            return context_logprobs(ctx.lm, ann.words, i, replacements).tolist()
    return ctx.spelling.check(c.caption_id, c.image_id, c.text, ann.words, ann.siblings, context)


def garbled_token(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A symbol typed between two letters ("i=on", "sta;nding"): the word is garbled, not just mis-punctuated."""
    out = []
    text = ann.caption.text
    if not _GLUED_SYMBOL.search(text):
        return out
    for m in _GLUED_SYMBOL.finditer(text):
        a = m.start()
        while a > 0 and text[a - 1].isalpha():
            a -= 1
        b = m.end()
        while b < len(text) and text[b].isalpha():
            b += 1
        c = ann.caption
        out.append(Finding(c.caption_id, c.image_id, "spelling", a, b, text[a:b], None, "spelling.garbled_token", 0.8))
    return out


RULES = [Rule("spelling.non_word", "spelling", non_word), Rule("spelling.garbled_token", "spelling", garbled_token)]
