"""Real-word rules: a correctly spelled word that is not the word meant ("eating a desert", "a coupe of people").
Each rule is one mechanism; the corpus statistics and scoring they share live in `capeval.audit.real_word`
(confusion sets, corpus contexts, siblings) and `capeval.audit.candidates` (candidates scored by the caption LM)."""

from __future__ import annotations

import math
import re

from capeval.audit.annotate import AnnotatedCaption, AuditContext
from capeval.audit.corpus import EOS
from capeval.audit.finding import Finding, match_case
from capeval.audit.real_word import PREPOSITIONS
from capeval.audit.rules import Rule, finding

# LM evidence bands: a hit's posterior log-odds falls in one of these (lower edges); each band is calibrated on
# the dev split as its own rule. The first edge is the LM threshold: the lowest posterior log-odds at which the
# LM's real-word hits reach caption-level precision 0.9 on the dev split (5; capeval/audit/data/lm.README.md)
LM_BANDS = (3.0, 5.0, 7.0, 10.0)
_DETACHED_CLITIC = re.compile(r"\s['\u2019](?:s|re|ve|ll|d|m|t)?\b", re.IGNORECASE)
_OBJECT_PRONOUNS = frozenset("him her it them me us itself himself herself themselves".split())
_DETERMINERS = frozenset("the a an his her their its my your our this that some of".split())


def _emit(ann: AnnotatedCaption, i: int, j: int, suggestion: str, rule: str, score: float) -> Finding | None:
    """A real-word finding on tokens i..j, unless the word is part of a hyphenated compound ("off-white") or a name
    (`_capitalized_name`)."""
    text = ann.caption.text
    a, b = ann.tokens[i], ann.tokens[j]
    if text[b.end:b.end + 1] == "-" or text[a.start - 1:a.start] == "-":
        return None
    if _capitalized_name(ann, i):
        return None
    if _spelling_variant(text[a.start:b.end].lower(), suggestion.lower()):
        return None  # "Sabre" / "saber": a British spelling, not another word
    if _y_derivation(text[a.start:b.end].lower(), suggestion.lower()):
        return None
    return finding(ann, "real_word", i, j, match_case(a.text, suggestion), rule, score)


def _capitalized_name(ann: AnnotatedCaption, i: int) -> bool:
    """Token i is capitalized inside a sentence of a caption written in lower case otherwise, next to another
    capitalized word or not an English word in lower case ("on The Mall", "a Sport Tourer", "of Iowa"): a name,
    which the corpus statistics cannot judge as a word. A lone capitalized common noun ("a Kit") is still checked:
    captions capitalize nouns at random."""
    from capeval.audit.rules.grammar import lemmas

    toks = ann.tokens
    word = toks[i].text

    def capitalized(k: int) -> bool:
        return 0 < k < len(toks) and toks[k].text[:1].isupper() and toks[k].text != "I"

    if not capitalized(i) or word.isupper():
        return False
    if ann.caption.text[:toks[i].start].rstrip()[-1:] in ".!?:;\"'":
        return False  # a sentence or a quotation starts here
    later = [t.text for t in toks[1:] if t.text[:1].isalpha()]
    if sum(t[:1].isupper() for t in later) * 2 >= len(later):
        return False  # a caption in title case
    return capitalized(i - 1) or capitalized(i + 1) or not lemmas(word.lower())


def _y_derivation(original: str, suggestion: str) -> bool:
    """One word is the other's -y adjective ("fruit"/"fruity", "snow"/"snowy", "cheese"/"cheesy"): two word choices
    the writer had, not a slip between them (closed-class words excepted: "they" for "the" is a slip)."""
    if original in CLOSED_CLASS or suggestion in CLOSED_CLASS or min(len(original), len(suggestion)) < 3:
        return False
    return any(adj == noun + "y" or (noun.endswith("e") and adj == noun[:-1] + "y")
               for noun, adj in ((original, suggestion), (suggestion, original)))


def _sibling_family(ann: AnnotatedCaption, suggestion: str, otherwise: str = "") -> str:
    """".in_siblings" when another caption of the image writes every word of the suggestion, else `otherwise`: such
    slips are calibrated as a family of their own, being right far more often."""
    return ".in_siblings" if all(w in ann.siblings for w in suggestion.lower().split()) else otherwise


def _spelling_variant(original: str, suggestion: str) -> bool:
    """`suggestion` is the US spelling of the British `original` (the spelling module's patterns)."""
    from capeval.audit.spelling import _UK_US

    return any(uk.sub(us, original, count=1) == suggestion for uk, us in _UK_US)


def confusion_set(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A member of a known confusion set (desert/dessert, of/off, then/than ...) where another member explains the
    neighbours far better in the corpus counts (leave-one-out)."""
    out = []
    members = ctx.real_word.sets.members
    for i, w in enumerate(ann.words):
        if w in members and (fix := ctx.real_word.confusion_fix(i, ann.words)) is not None:
            if w == "off" and i + 1 < len(ann.words) and ann.words[i + 1] in _DETERMINERS | _OBJECT_PRONOUNS:
                continue  # "off the wall", "tossing a rider off him", "shakes water off itself"
            if (f := _emit(ann, i, i, fix[0], "real_word.confusion_set", fix[1])) is not None:
                out.append(f)
    return out


def function_word_pattern(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """its/it's, then/than, to/too/two decided by the words next to them ("it's wings", "bigger then")."""
    out = []
    for i, w in enumerate(ann.words):
        if (fix := ctx.real_word.pattern_fix(i, ann.words)) is not None:
            if (f := _emit(ann, i, i, fix, f"real_word.pattern.{w}", 0.9)) is not None:
                out.append(f)
    return out


def apostrophe_form(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A plural written as a possessive ("two Frisbee's") or a possessive written as a plural ("a persons bag"),
    judged by how the corpus writes the same words."""
    out = []
    for i, w in enumerate(ann.words):
        if not w.endswith("s") or not ctx.spelling.is_word(w):
            continue  # (a non-word, "childs", is the spelling rule's: a missing apostrophe that leaves no word)
        if (fix := ctx.real_word.apostrophe_fix(i, ann.words)) is not None:
            if (f := _emit(ann, i, i, fix, "real_word.apostrophe", 0.7)) is not None:
                out.append(f)
    return out


def missing_apostrophe(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A dictionary word that is far commoner in English with an apostrophe ("cant", "thats", "wont"): a contraction
    or possessive written without it (unknown words of this kind are the spelling rule's)."""
    from capeval.audit.spelling import _missing_apostrophe

    memo = ctx.memo("missing_apostrophe")
    out = []
    for i, w in enumerate(ann.words):
        fix = memo.get(w, "")
        if fix == "":
            fix = memo[w] = (_missing_apostrophe(w) if len(w) >= 4 and w.isalpha() and w[-1] in "stdmle"
                             and ctx.lexicon.known(w) and ctx.spelling.is_word(w) else None)
            # (a word the spelling checker rejects, "someones", is the spelling rule's)
        if fix is not None and (f := _emit(ann, i, i, fix, "real_word.missing_apostrophe", 0.8)) is not None:
            out.append(f)
    return out


def sibling_slip(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A word no other caption of the image uses while one of them uses a far commoner word one edit away that
    fits this context far better ("a person ridding" when a sibling says "riding")."""
    out = []
    for i in ctx.real_word.sibling_positions(ann.words, ann.siblings):
        if (fix := ctx.real_word._sibling_fix(i, ann.words, ann.siblings)) is not None:
            if (f := _emit(ann, i, i, fix[0], "real_word.sibling_context", fix[1])) is not None:
                out.append(f)
    return out


def corpus_context_slip(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """At a position whose context the corpus has nowhere else, a word one edit away that the corpus uses in exactly
    this context ("pizza trey" when "pizza tray" is common)."""
    out = []
    for i in ctx.stats.rare_positions(ann.words):
        if (fix := ctx.real_word.neighbour_fix(i, ann.words)) is not None:
            # both families are leaves, so that each is calibrated on its own findings (a parent shared with the
            # sibling-supported ones would lend the unsupported ones their precision: dev4 has 3 right of 12)
            rule = "real_word.corpus_context" + _sibling_family(ann, fix[0], otherwise=".unsupported")
            if (f := _emit(ann, i, i, fix[0], rule, fix[1])) is not None:
                out.append(f)
    return out


POSSESSIVE_SHARE = -1.5  # zipf(X's) - zipf(Xs): English writes this noun as a possessor at least this often (dev)
POSSESSIVE_NAME_COUNT = 5  # "Xs N" written so this often elsewhere in the corpus is a name ("farmers market")
_POSSESSOR_BEFORE = frozenset("a an the this that his her their its my your our each every another".split())


def _possessive_share(singular: str) -> float:
    """How often English writes `singular` + 's against its plural (wordfreq zipf difference): high for possessors
    ("driver's", "chef's"), low for nouns whose plural is a fixed modifier ("sports car", "arms race")."""
    from wordfreq import zipf_frequency

    return zipf_frequency(singular + "'s", "en") - zipf_frequency(singular + "s", "en")


def _possessive_trigger(ann: AnnotatedCaption, ctx: AuditContext) -> bool:
    """A regular plural right before a noun, with a determiner before it (a cheap test before tagging)."""
    from capeval.audit.rules.grammar import _verb_tags, lemmas, plural_noun

    ws = ann.words
    return any(ws[i].endswith("s") and not ws[i].endswith("'s") and len(ws[i]) >= 4
               and not _POSSESSOR_BEFORE.isdisjoint(ws[max(0, i - 3):i])
               and ("NOUN" in lemmas(ws[i + 1]) or not lemmas(ws[i + 1]))
               and _possessor_form(ws[i]) is not None and _possessor(ws[i][:-1], ctx)
               for i in range(1, len(ws) - 1)) or any(
        ws[i - 1] in _SINGULAR_BEFORE and plural_noun(ws[i + 1]) and "VBZ" not in _verb_tags(ws[i + 1])
        and _singular_count_noun(ws[i]) and _possessor(ws[i], ctx) for i in range(1, len(ws) - 1))


_SINGULAR_BEFORE = frozenset("a an this that each every another".split())


def _singular_count_noun(w: str) -> bool:
    """A noun in its singular form that has a plural of another form ("person": "persons", "people")."""
    from capeval.audit.rules.grammar import inflections, lemmas

    return (len(w) >= 3 and w in lemmas(w).get("NOUN", ())
            and any(p != w for p in inflections(w, "NOUN").get("NNS", ())))


def _possessor_form(w: str) -> str | None:
    """The noun of which `w` ("chefs", "mans") reads as a possessive without its apostrophe: `w` is the regular
    plural of the noun, or no plural of it at all (the noun's plural is irregular: "mans", "womans")."""
    from capeval.audit.rules.grammar import inflections, lemmas, plural_noun

    sing = w[:-1]
    if plural_noun(w) == sing:
        return sing
    if "NOUN" in lemmas(sing) and sing in lemmas(sing)["NOUN"] and w not in inflections(sing, "NOUN").get("NNS", ()):
        return sing
    return None


def _written_as_name(w: str, nxt: str, ctx: AuditContext) -> bool:
    """The corpus writes "w nxt" so at least `POSSESSIVE_NAME_COUNT` other times: a name ("a farmers market")."""
    return ctx.stats.bi(w, nxt) - 1 >= POSSESSIVE_NAME_COUNT


def _possessor(singular: str, ctx: AuditContext) -> bool:
    """English writes `singular` as a possessor often enough (`_possessive_share`), memoised per audit."""
    memo = ctx.memo("possessive_share")
    if singular not in memo:
        memo[singular] = _possessive_share(singular) >= POSSESSIVE_SHARE
    return memo[singular]


def possessive_without_apostrophe(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A regular plural that modifies the singular noun after it inside a determiner's noun phrase, where English
    writes that noun as a possessor ("a chefs hat", "the drivers seat", "A zebras rump" -> "chef's", ...); plurals
    that are fixed modifiers ("a sports car", "a kids menu") have a low possessive share and are left alone."""
    from capeval.audit.rules.grammar import (_FUNCTION, _QUANTITY_WORDS, _VERB_OBJECT_START, _verb_tags, lemmas,
                                             plural_noun)

    tags = ann.tagged
    if tags is None:
        return []
    out = []
    ws = ann.words
    for i in range(1, len(ws) - 1):
        w, nxt = ws[i], ws[i + 1]
        if (ws[i - 1] in _SINGULAR_BEFORE and tags[i].tag == "NN" and tags[i + 1].tag == "NNS" and plural_noun(nxt)
                and "VBZ" not in _verb_tags(nxt) and w not in _QUANTITY_WORDS and _singular_count_noun(w)
                and ann.text[ann.tokens[i].end:ann.tokens[i + 1].start] == " " and _possessor(w, ctx)
                and not _written_as_name(w, nxt, ctx) and not (i >= 2 and tags[i - 2].pos == "VERB")
                and not (i + 2 < len(ws) and tags[i + 2].pos == "ADV")):
            # "between a person legs": the singular determiner cannot go with the plural, the noun before it is a
            # possessor (not after a verb, which may take two objects: "feeding a giraffe carrots"; nor before an
            # adverb, which shows the plural is a verb: "A man surfboards skilfully")
            if (f := _emit(ann, i, i, w + "'s", "real_word.possessive", 0.7)) is not None:
                out.append(f)
            continue
        # the noun after the plural, or a word the tagger read as a verb that is a singular noun too ("A mans suit")
        verb_read = tags[i + 1].tag in ("VB", "VBP") and nxt in lemmas(nxt).get("NOUN", ())
        if tags[i].tag not in ("NNS", "NNPS") or (tags[i + 1].tag not in ("NN", "NNS") and not verb_read) \
                or w.endswith("'s") or _possessor_form(w) is None or not ctx.spelling.is_word(w):
            continue  # (a non-word, "childs", is the spelling rule's)
        if nxt in _FUNCTION or (i + 2 < len(ws) and "VBZ" not in _verb_tags(nxt) and _verb_tags(nxt)
                                and ws[i + 2] in _VERB_OBJECT_START):
            continue  # "the dogs chase a ball": the noun after the plural is its verb
        k = i - 1
        while k >= 0 and tags[k].pos == "ADJ" and i - k <= 3:
            k -= 1
        if k < 0 or ws[k] not in _POSSESSOR_BEFORE or (verb_read and ws[k] not in _SINGULAR_BEFORE):
            continue  # (the verb reading stands unless a singular determiner rules it out: "the girls play")
        if ann.text[ann.tokens[i].end:ann.tokens[i + 1].start] != " ":
            continue  # "dogs, cat": not one noun phrase
        sing = w[:-1]
        if _written_as_name(w, nxt, ctx):
            continue
        if _possessor(sing, ctx):
            if (f := _emit(ann, i, i, sing + "'s", "real_word.possessive", 0.7)) is not None:
                out.append(f)
    return out


_PLURAL_CONTEXT = frozenset("the some many several few these those two three four five six seven eight nine ten of "
                            "with and their his her its our my your".split())


def _overregular_plural(w: str) -> str | None:
    """The irregular plural when `w` is a regular -s/-es form of a noun that English does not write so ("knifes",
    "wolfs", "foots": knives, wolves, feet) but that is a word of its own (a verb form), else None."""
    from capeval.audit.rules.grammar import inflections, lemmas

    if len(w) < 4 or not w.endswith("s") or w.endswith("'s"):
        return None
    es_base = w[:-2] if w.endswith("es") and w[:-2].endswith(("s", "x", "z", "ch", "sh", "o")) else None
    for base in (w[:-1], es_base):
        if not base or base not in lemmas(base).get("NOUN", ()):
            continue
        plurals = inflections(base, "NOUN").get("NNS", ())
        if plurals and w not in plurals and base not in plurals:
            return plurals[0]
    return None


def overregular_plural(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A noun with an irregular plural written with a regular -s where a plural noun stands ("a couple of knifes",
    "two wolfs"): the -s form is a word (the verb "knifes"), so the spelling check does not see it."""
    from capeval.audit.rules.grammar import lemmas

    out = []
    ws = ann.words
    memo = ctx.memo("overregular_plural")
    for i, w in enumerate(ws):
        if i == 0 or not w.endswith("s"):
            continue
        if w not in memo:
            memo[w] = _overregular_plural(w)
        fix = memo[w]
        if fix is None or not ctx.spelling.is_word(w):
            continue  # (a non-word is the spelling rule's)
        prev, nxt = ws[i - 1], ws[i + 1] if i + 1 < len(ws) else EOS
        prev_adj = set(lemmas(prev)) == {"ADJ"}
        if (prev in _PLURAL_CONTEXT or prev_adj) and nxt not in _DETERMINERS | _OBJECT_PRONOUNS:
            if (f := _emit(ann, i, i, fix, "real_word.overregular_plural", 0.8)) is not None:
                out.append(f)
    return out


def prepare_lm(annotated: list[AnnotatedCaption], ctx: AuditContext) -> None:
    """Score every caption's real-word candidates with the caption LM in one batch (stored on the annotation)."""
    if ctx.lm is None:
        return
    from capeval.audit.candidates import real_word_hits_batch

    hits = real_word_hits_batch([a.words for a in annotated], [a.sibling_tokens for a in annotated], ctx.lm,
                                threshold=LM_BANDS[0], is_word=ctx.spelling.is_word)
    for a, h in zip(annotated, hits):
        if h:
            a.extra["lm_hits"] = h


_WORD_SWAPS = frozenset(("keyboard", "edit1", "sound", "edit2"))  # LM slips that put one word for another


def _closed_class() -> frozenset[str]:
    from capeval.audit.rules.grammar import _FUNCTION, _NUMBERS

    return _FUNCTION | _NUMBERS | PREPOSITIONS | frozenset("if us up off out than then where when while though".split())


CLOSED_CLASS = _closed_class()  # function words and numbers: the slips between them are mostly typing slips


def _possessor_before_noun(ann: AnnotatedCaption, original: str, suggestion: str, end: int) -> bool:
    """`original` is a possessive ("kite's") that the suggestion strips of its apostrophe ("kite", "kites"), with a
    word after it: a bare noun is dropped whatever follows; a plural only before a noun ("an elephant's mouth"),
    since before a verb or a preposition the apostrophe form is often a plural ("three more giraffe's in")."""
    from capeval.audit.rules.grammar import _FUNCTION, lemmas

    stem = original[:-2]
    if not original.endswith(("'s", "\u2019s")) or end + 1 >= len(ann.words) or stem in _FUNCTION \
            or (lemmas(stem) and "NOUN" not in lemmas(stem)):
        return False  # a noun or name only ("it's head" for "its head" is a slip; so is "let's" for "lets")
    if suggestion == stem:
        return True
    nxt = ann.words[end + 1]
    return (suggestion == stem + "s" and nxt not in CLOSED_CLASS and not nxt.endswith("ing")
            and "NOUN" in lemmas(nxt) and "ADV" not in lemmas(nxt))  # (not "on ski's down a slope")


def lm_slip(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A real word for which a candidate (one or two edits, keyboard or sound neighbour, apostrophe form, split or
    merge) makes the caption much more probable under the caption language model, weighed with the image's other
    captions ("a kite surfer hoping", "stands if front of", "some baseballs players" is grammar's)."""
    from capeval.audit.candidates import is_common_word

    out = []
    for h in ann.extra.get("lm_hits", ()):
        if not all(ctx.spelling.is_word(w) for w in h.original.split()):
            continue  # a non-word: the spelling rule's
        if h.log_ratio < LM_BANDS[0]:
            continue
        band = max(k for k, lo in enumerate(LM_BANDS) if h.log_ratio >= lo)
        end = max(h.index, h.end - 1)
        if end >= len(ann.tokens):
            continue
        if _possessor_before_noun(ann, h.original, h.suggestion, end):
            continue  # "a red kite's string", "an elephant's mouth": a possessor before its noun, not a slip
        if h.mechanism == "split" and all(len(p) >= 3 for p in h.suggestion.split()):
            continue  # "schoolchildren" / "school children": a compound written solid is a matter of style
        if h.mechanism in ("apostrophe", "merge") and _DETACHED_CLITIC.search(
                ann.caption.text[ann.tokens[h.index].start:ann.tokens[end].end]):
            continue  # "man 's", "ATV 's": a tokenized corpus's detached clitic, the apostrophe is there
        # a slip for a rare word only the spelling checker vouches for ("fulled") is a family of its own; so is a
        # slip from or to a closed-class word ("To surfers", "a lot if boats"), a typing slip far more often than
        # a swap of content words the model merely finds likelier ("racks" -> "rocks")
        kind = h.mechanism if all(is_common_word(ctx.lm, w) for w in h.original.split()) else "rare"
        if kind in _WORD_SWAPS and (h.original in CLOSED_CLASS or h.suggestion in CLOSED_CLASS):
            kind += ".function"
        elif kind in _WORD_SWAPS or kind == "rare":
            kind += _sibling_family(ann, h.suggestion)
        f = _emit(ann, h.index, end, h.suggestion, f"real_word.lm.{kind}.b{band}", 1.0 - math.exp(-h.log_ratio))
        if f is not None:
            out.append(f)
    return out


def an_for_and(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """`an` before a consonant sound where the caption LM reads it as `and` ("a laptop an computer monitors"): the
    same mismatch `grammar.article_form` flags, repaired as the likelier of its two one-edit readings."""
    from capeval.audit.rules.grammar import an_means_and, article_mismatch

    out = []
    for i, w in enumerate(ann.words):
        if w == "an" and article_mismatch(ann, i) and an_means_and(ann, i, ctx):
            if (f := _emit(ann, i, i, "and", "real_word.an_for_and", 0.8)) is not None:
                out.append(f)
    return out


RULES = [
    Rule("real_word.confusion_set", "real_word", confusion_set),
    Rule("real_word.pattern", "real_word", function_word_pattern),
    Rule("real_word.apostrophe", "real_word", apostrophe_form),
    Rule("real_word.missing_apostrophe", "real_word", missing_apostrophe),
    Rule("real_word.sibling_context", "real_word", sibling_slip),
    Rule("real_word.corpus_context", "real_word", corpus_context_slip),
    Rule("real_word.lm", "real_word", lm_slip, prepare=prepare_lm),
    Rule("real_word.overregular_plural", "real_word", overregular_plural),
    Rule("real_word.an_for_and", "real_word", an_for_and),
    Rule("real_word.possessive", "real_word", possessive_without_apostrophe, needs_tags=True,
         trigger=_possessive_trigger),
]
