"""Caption-level rules: captions cut off mid-phrase, and texts that are not captions (questions, remarks about the
picture, a word or two)."""

from __future__ import annotations

import re

from capeval.audit.annotate import AnnotatedCaption, AuditContext
from capeval.audit.corpus import EOS
from capeval.audit.finding import Finding
from capeval.audit.rules import Rule, finding, whole

# closed-class words after which an English phrase cannot end (determiners, prepositions, conjunctions, possessive
# determiners, the copula): a caption ending on one was cut off, unless the corpus ends captions this way elsewhere
_OPEN_ENDING = frozenset(
    "a an the of with to at for from into onto by and or but nor than while his their my your our its some in "
    "on".split())
END_ELSEWHERE = 2  # the corpus ends other captions on the same two words this often: a complete phrase
PARTICLE_END_RATE = 0.001  # a word that ends at least this share of its uses also works as a particle ("on", "by")

_NON_CAPTION = [
    r"\bthere (?:is|was|are) no (?:picture|image|photo|pic)\b",
    r"\b(?:no|missing|blank|broken|empty|unavailable|corrupt\w*) (?:picture|image|photo|pic)s?\b",
    r"\b(?:picture|image|photo)s? (?:is|are|was|were)? ?(?:not|n't) ?(?:loading|loaded|showing|shown|available|"
    r"displayed|displaying|there|visible)\b",
    r"\b(?:i|we) (?:really )?(?:can ?not|can'?t|cannot|don'?t|do not|couldn'?t) (?:see|tell|describe|load|view|"
    r"make out)\b",
    r"\bdescribe (?:it )?with a caption\b",
    r"^\W*(?:n/?a|none|null|nothing|test|no caption|blank|\?+)\W*$",
]
_NON_CAPTION_ANY = re.compile("|".join(f"(?:{rx})" for rx in _NON_CAPTION), re.I)
_QUESTION = re.compile(r"^\s*(?:do|does|did|is|are|was|were|can|could|would|will|what|why|how|who|where|which)\b"
                       r"[^?]*\?\s*$", re.I)
# a tag question at the end ("..., should it?", "..., right?"): the writer asks the reader
_TAG_QUESTION = re.compile(r",\s*(?:(?:is|are|was|were|do|does|did|can|could|should|would|will|has|have)(?:n't| not)?"
                           r"\s+(?:it|he|she|they|you|we|there|i|that)|right|eh|huh|no)\s*\?\s*$", re.I)
# a word one of the remark patterns needs (a cheap test before the regular expressions)
_REMARK_WORDS = frozenset("picture pictures image images photo photos pic pics see tell describe caption load view "
                          "none null nothing test blank make".split())  # (the whole-text remarks are short: len <= 3)
# first-person or second-person words: a caption describes the picture, a remark talks to or about the writer
_PERSONAL_START = frozenset("i i'm i've you".split())  # a remark to or about the writer starts with its subject
# "You can see a dog ...", "I am looking at a ...": a description framed as looking, not a remark
_LOOKING = frozenset("see sees seeing look looks looking view viewing watching".split())
_NEGATION = frozenset("not can't cannot don't couldn't didn't cant dont couldnt didnt".split())


def ends_mid_phrase(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """The caption ends on an article, preposition, conjunction or copula ("... sitting next to a"), and no other
    caption of the corpus ends on the same two words."""
    ws = ann.words
    if len(ws) < 2 or ws[-1] not in _OPEN_ENDING or ann.caption.text.rstrip().endswith("?"):
        return []
    elsewhere = ctx.stats.tri(ws[-2], ws[-1], EOS) - 1
    if elsewhere >= END_ELSEWHERE:
        return []
    ends = max(ctx.stats.bi(ws[-1], EOS) - 1, 0) / max(ctx.stats.uni(ws[-1]), 1)  # how often the word ends one
    if ends >= PARTICLE_END_RATE:
        return []  # "lights on", "passes by": a particle ends the phrase
    return [finding(ann, "truncated", len(ws) - 1, len(ws) - 1, None, "truncated.ends_mid_phrase", 0.9)]


def question(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A question ("Do these birds create a pattern?"): not a description of the picture."""
    text = ann.caption.text
    if text.rstrip().endswith("?") and (_QUESTION.search(text) or _TAG_QUESTION.search(text)):
        return [whole(ann, "non_caption", "non_caption.question", 0.7)]
    return []


def remark_about_the_picture(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A remark about the picture or the task ("I can't see this image", "no picture", "n/a")."""
    if (len(ann.words) <= 3 or not _REMARK_WORDS.isdisjoint(ann.words)) and _NON_CAPTION_ANY.search(ann.caption.text):
        return [whole(ann, "non_caption", "non_caption.remark", 0.9)]
    return []


def first_person_remark(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A caption whose first clause is the writer's or the reader's ("I am unable to see", "I really like this",
    "You should not park here"): captions describe the picture, not the writer. A pronoun later in the caption is
    usually quoted text ("a sign that says I love NY") or a slip ("a cow that i standing")."""
    ws = ann.words
    if len(ws) < 3 or ws[0] not in _PERSONAL_START or not _finite_after_subject(ws[1], ws[2]):
        return []
    head = ws[1:4]
    if not _LOOKING.isdisjoint(head) and _NEGATION.isdisjoint(head):
        return []
    return [whole(ann, "non_caption", "non_caption.personal", 0.6)]


_FINITE_START = frozenset("am is are was were have has had do did don't didn't can can't cannot could couldn't "
                          "would wouldn't will won't should shouldn't must may might think like love see "
                          "cant dont didnt wont couldnt wouldnt shouldnt".split())  # (contractions without apostrophe)


def _finite_after_subject(w: str, nxt: str) -> bool:
    """`w` (after a pronoun subject, or an adverb then `nxt`) starts a finite clause: an auxiliary, modal or verb."""
    from capeval.audit.rules.grammar import lemmas

    for x in (w, nxt) if w.endswith("ly") or w in ("really", "just", "also", "still", "never") else (w,):
        if x in _FINITE_START or ("VERB" in lemmas(x) and "NOUN" not in lemmas(x) and not x.endswith("ing")):
            return True
    return False


def too_short(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """At most one word: a label, not a caption."""
    if len(ann.words) <= 2 and len([w for w in ann.words if w[0].isalpha()]) <= 1:
        return [whole(ann, "non_caption", "non_caption.too_short", 0.8)]
    return []


RULES = [
    Rule("truncated.ends_mid_phrase", "truncated", ends_mid_phrase),
    Rule("non_caption.question", "non_caption", question),
    Rule("non_caption.remark", "non_caption", remark_about_the_picture),
    Rule("non_caption.personal", "non_caption", first_person_remark),
    Rule("non_caption.too_short", "non_caption", too_short),
]
