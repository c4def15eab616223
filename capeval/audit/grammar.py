"""Caption-aware grammar, truncation, formatting and non-caption rules.

Noun-phrase captions ("A dog on a couch") without a verb or a final period are normal and never flagged. Each rule
looks at the caption's lowercased words first and computes character spans only when it fires.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from capeval.audit.finding import Finding, Token, match_case, tokenize
from capeval.audit.spelling import Lexicon

# --- word lists --------------------------------------------------------------------------------------------------
_IRREGULAR_PLURAL = {"women": "woman", "men": "man", "children": "child", "people": "person", "geese": "goose",
                     "mice": "mouse", "teeth": "tooth", "feet": "foot", "oxen": "ox"}
_IRREGULAR_SINGULAR = {v: k for k, v in _IRREGULAR_PLURAL.items() if k != "people"}
# singular nouns that end in s, and plurals used as modifiers or with "a pair of" (never "a X" errors)
_S_SINGULARS = frozenset(
    "bus gas glass grass class dress news series species lens canvas christmas tennis physics always perhaps "
    "various bonus campus circus citrus virus status plus chaos bias atlas iris hummus cactus walrus octopus "
    "asparagus hippopotamus platypus analysis axis basis thesis oasis crisis overseas sometimes upstairs "
    "downstairs outdoors indoors towards afterwards besides less unless this thus yes was has is its his hers "
    "ours yours theirs sports kids mens womens clothes pants jeans scissors glasses goggles shorts binoculars "
    "overalls tongs pliers trousers sweatpants headphones earphones sunglasses leggings pajamas stairs "
    "electronics gymnastics athletics mathematics politics economics ethics linens lots couples dozens".split()
)
_NUMBER_PLURAL = frozenset("two three four five six seven eight nine ten eleven twelve twenty several many multiple "
                           "numerous various few these those".split())
_INVARIANT = frozenset("sheep fish deer moose bison aircraft salmon trout shrimp series species dozen hundred "
                       "thousand million pair percent people dice cattle offspring swine squid".split())
# words that can follow a noun but not begin a compound noun: a following one confirms the noun phrase ended
_CLOSED_AFTER_NOUN = frozenset(
    "is are was were has have had on in at with of near by under over behind beside next from that which who "
    "while and or sitting standing laying lying eating playing walking riding holding looking flying running "
    "parked grazing resting waiting".split()
)
_COLOURS_ADJ = frozenset("white black brown red blue green yellow orange pink purple gray grey silver gold tan "
                         "large small big little young old other more different same".split())
_BARE_VERBS = {
    "sit": "sitting", "stand": "standing", "play": "playing", "hold": "holding", "ride": "riding", "eat": "eating",
    "walk": "walking", "fly": "flying", "lay": "laying", "lie": "lying", "look": "looking", "wear": "wearing",
    "carry": "carrying", "swing": "swinging", "throw": "throwing", "catch": "catching", "drink": "drinking",
    "talk": "talking", "watch": "watching", "wait": "waiting", "skate": "skating", "surf": "surfing",
    "jump": "jumping", "pose": "posing", "smile": "smiling", "sleep": "sleeping", "drive": "driving",
    "pull": "pulling", "push": "pushing", "kick": "kicking", "feed": "feeding", "graze": "grazing",
    "hang": "hanging", "stare": "staring", "take": "taking", "make": "making", "brush": "brushing",
    "climb": "climbing", "try": "trying", "swim": "swimming", "hug": "hugging", "chew": "chewing",
    "sell": "selling", "chase": "chasing", "bite": "biting", "prepare": "preparing", "sail": "sailing",
    "travel": "traveling", "cook": "cooking", "lean": "leaning", "read": "reading", "cross": "crossing",
}
_VERB_COMPOUNDS = frozenset({("cross", "country"), ("play", "fighting"), ("ride", "share")})
_FUNCTION = frozenset("a an the is are was were be been am do does did has have had of on in at to with and or but "
                      "as by for from this that these those there their his her its my your our some any all no not "
                      "so very too more most other others such same several many few".split())
_CONSONANT_SOUND_VOWEL = ("uni", "use", "usa", "usu", "uti", "ute", "ura", "ure", "uri", "uro", "uku", "ubi", "eu",
                          "ewe", "one", "once", "ouija", "ufo", "uvu")
_VOWEL_SOUND_CONSONANT = ("hour", "honest", "honor", "honour", "heir")
_AMBIGUOUS_ARTICLE = ("herb", "historic", "hotel", "homage")
_ACRONYM_VOWEL_LETTERS = set("AEFHILMNORSX")
_TRUNCATION_WORDS = {
    **{w: 0.9 for w in "a an the of with to at for from into onto and or but his their my your our is are "
                       "than some while".split()},
    **{w: 0.55 for w in "in on".split()},
}
_ON_OK_BEFORE = frozenset("turned turn lights light tv television computer put try trying tried has have had with "
                          "hats hat tie clothes shoes saddle get getting hold holding going come coming left right "
                          "head looking look looks powered switched plugged walk walking move moving".split())
_ALLOWED_DOUBLES = frozenset("that had ha bye no so very many".split())

_NON_CAPTION = [
    re.compile(r"\bthere (?:is|was|are) no (?:picture|image|photo|pic)\b", re.I),
    re.compile(r"\b(?:no|missing|blank|broken|empty|unavailable|corrupt\w*) (?:picture|image|photo|pic)s?\b", re.I),
    re.compile(r"\b(?:picture|image|photo)s? (?:is|are|was|were)? ?(?:not|n't) ?(?:loading|loaded|showing|shown|"
               r"available|displayed|displaying|there|visible)\b", re.I),
    re.compile(r"\b(?:i|we) (?:can ?not|can't|cannot|don't|do not|couldn't) (?:see|tell|describe|load|view)\b", re.I),
    re.compile(r"\bdescribe (?:it )?with a caption\b", re.I),
    re.compile(r"^\W*(?:n/?a|none|null|nothing|test|no caption|blank|\?+)\W*$", re.I),
    re.compile(r"\b(?:i|we) (?:really )?(?:can ?not|can'?t|cannot|don'?t|do not|couldn'?t) (?:see|tell|describe|"
               r"make out)\b", re.I),
]
# a question is not a description ("Do these birds create a pattern ...?")
_QUESTION = re.compile(r"^\s*(?:do|does|did|is|are|was|were|can|could|would|will|what|why|how|who|where|which)\b"
                       r"[^?]*\?\s*$", re.I)
_FORMAT_RULES: list[tuple[re.Pattern[str], str, float, Callable[[re.Match[str]], str | None]]] = [
    (re.compile(r"([,;:!?])\1+|\.{2}(?!\.)|\.{4,}"), "formatting.repeated_punctuation", 0.8,
     lambda m: m.group()[0]),
    (re.compile(r"(?<=\w) +([,;:!?]|\.(?!\.))(?= |$)"), "formatting.space_before_punctuation", 0.6,
     lambda m: m.group(1)),
    (re.compile(r",(?=[A-Za-z])"), "formatting.missing_space_after_comma", 0.7, lambda m: ", "),
    (re.compile(r"[`\\#*_~<>|{}\[\]^@]+"), "formatting.stray_character", 0.7, lambda m: ""),
    (re.compile(r"^\s*[.,;:!?\-]+\s*"), "formatting.leading_punctuation", 0.8, lambda m: ""),
    # invisible to every metric and not an error by the labelling criteria: listed only below the default threshold
    (re.compile(r"(?<=\S)(?: {2,}|\t+)(?=\S)"), "formatting.extra_space", 0.45, lambda m: " "),
    (re.compile(r"[,;:]\.|\.[,;:]"), "formatting.mixed_punctuation", 0.75, lambda m: m.group()[-1]),
    (re.compile(r"(?<=[a-z])=(?=[a-z])"), "formatting.stray_character", 0.7, lambda m: ""),
    (re.compile(r"\b[a-z]{3,}[A-Z]\b"), "formatting.stray_capital", 0.7, lambda m: m.group().lower()),
    (re.compile(r"(?<=[a-z]{3})\.(?!com\b|org\b|net\b)(?=[a-z]{3,}\b)"), "formatting.missing_space_after_period", 0.6,
     lambda m: ". "),
    # not after a capitalised abbreviation ("Front Ave. and Seventh St.")
    (re.compile(r"(?<![A-Z][a-z])(?<![A-Z][a-z]{2})(?<![A-Z][a-z]{3})(?<=[a-z]{2})\. (?=[a-z]{2,}\b)"),
     "formatting.period_mid_sentence", 0.6, lambda m: None),  # drop it or capitalise: the reader decides
]


_NON_CAPTION_ANY = re.compile("|".join(f"(?:{rx.pattern})" for rx in _NON_CAPTION), re.I)
# cheap necessary condition for any formatting rule (character classes only, no look-arounds)
_ANY_FORMAT = re.compile(r" {2}|\t|[,;:!?]{2}|\.\.|\s[,.;:!?]|,[A-Za-z]|^\s*[.,;:!?\-]|[`\\#*_~<>|{}\[\]^@()\"=]"
                         r"|[,;:]\.|\.[,;:]|[a-z][A-Z]\b|[a-z]\.[a-z]|[a-z]\. [a-z]")
# words one of the non-caption patterns needs ("n/a" only matters as the whole caption, see _non_caption)
_NON_CAPTION_WORDS = frozenset("picture pictures image images photo photos pic pics see tell describe caption load "
                               "view none null nothing test blank make".split())
_ARTICLES = frozenset("a an the".split())
_PLURAL_VERB = {"is": "are", "was": "were", "sits": "sit", "stands": "stand", "rests": "rest", "lies": "lie",
                "lays": "lay", "has": "have"}
_COORD_DETERMINERS = frozenset("a an the his her their its one another some".split())
_SUBJECT_BREAK = frozenset("of with in on at by near next under over behind beside from that which who where while "
                           "there here it this what each every both".split())
# verbs that are (almost) never nouns, so "<noun> fill with" can only be a lost -ed
_PARTICIPLE_STEMS = {"fill": "filled", "decorate": "decorated", "surround": "surrounded", "equip": "equipped",
                     "furnish": "furnished", "garnish": "garnished", "crowd": "crowded"}
_BEFORE_BARE_VERB = frozenset("to will would can could may might must should shall do does did not and or a an the "
                              "in of on at".split())
_QUANTIFIERS = frozenset("couple group pair number row rows herd flock pack few dozens".split())
_PLURAL_DETERMINERS = frozenset(["the", "these", "those"]) | _NUMBER_PLURAL
_TRIGGERS = frozenset(["a", "an", "is", "are", "the"]) | _NUMBER_PLURAL | _QUANTIFIERS


def _starts_with_vowel_sound(token: str, caps_caption: bool = False) -> bool | None:
    """True/False when the sound is clear from the spelling, None when it is not (digits, lone letters, herb)."""
    if not token or not token[0].isalpha() or len(token) == 1:
        return None
    if token.isupper() and len(token) <= 5 and not caps_caption:
        return token[0] in _ACRONYM_VOWEL_LETTERS
    w = token.lower()
    if w.startswith(_AMBIGUOUS_ARTICLE):
        return None
    if w[0] in "aeiou":
        return not w.startswith(_CONSONANT_SOUND_VOWEL)
    return w.startswith(_VOWEL_SOUND_CONSONANT)


def _is_plural(w: str, lex: Lexicon) -> str | None:
    """Singular form when `w` reads as a plural noun, else None."""
    if w in _IRREGULAR_PLURAL:
        return _IRREGULAR_PLURAL[w]
    if len(w) < 4 or not w.endswith("s") or w.endswith(("ss", "us", "is", "'s")) or w in _S_SINGULARS:
        return None
    for stem in ((w[:-3] + "y") if w.endswith("ies") else None, w[:-2] if w.endswith("es") else None, w[:-1]):
        if stem and len(stem) >= 3 and lex.freq(stem) >= 500 and stem not in _S_SINGULARS:
            return stem
    return None


def _is_singular_noun(w: str, lex: Lexicon) -> bool:
    if w in _INVARIANT or w in _COLOURS_ADJ or w in _FUNCTION or w.endswith(("s", "ing", "ed", "ly")) or len(w) < 3:
        return False
    return lex.freq(w) >= 2000 and lex.freq(w + ("es" if w.endswith(("ch", "sh", "x")) else "s")) >= 300


class GrammarChecker:
    """The built-in grammar, truncation, formatting and non-caption rules."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lex = lexicon

    def check(self, caption_id: str, image_id: str, text: str, words: list[str]) -> list[Finding]:
        out: list[Finding] = []
        toks: list[Token] = []

        def tok(i: int) -> Token:
            if not toks:
                toks.extend(tokenize(text))
            return toks[i]

        def add(cat: str, i: int, j: int, suggestion: str | None, rule: str, conf: float) -> None:
            a, b = tok(i), tok(j)
            out.append(Finding(caption_id, image_id, cat, a.start, b.end, text[a.start:b.end], suggestion, rule, conf))

        n = len(words)
        lex = self.lex
        caps = text.isupper()
        for i, w in enumerate(words):
            nxt = words[i + 1] if i + 1 < n else None
            if nxt is None:
                break
            if w == nxt and w[0].isalpha() and w not in _ALLOWED_DOUBLES:
                add("grammar", i, i + 1, tok(i).text, "grammar.doubled_word", 0.9)
                continue
            if w in _ARTICLES and nxt in _ARTICLES:
                add("grammar", i, i + 1, None, "grammar.double_determiner", 0.85)  # "on the a parked bus"
                continue
            if nxt == "with" and w in _PARTICIPLE_STEMS and i > 0 and words[i - 1] not in _BEFORE_BARE_VERB:
                # "A basket fill with fruit": a participle lost its -ed
                add("grammar", i, i, match_case(tok(i).text, _PARTICIPLE_STEMS[w]), "grammar.participle", 0.7)
                continue
            if w not in _TRIGGERS:
                continue
            if w in ("a", "an"):
                vowel = _starts_with_vowel_sound(nxt)
                if vowel is not None and vowel != (w == "an"):
                    vowel = _starts_with_vowel_sound(tok(i + 1).text, caps)  # acronyms: "an SUV"
                if vowel is not None and vowel != (w == "an"):
                    add("grammar", i, i, match_case(tok(i).text, "an" if vowel else "a"), "grammar.a_an", 0.9)
                    continue
                if nxt in _IRREGULAR_PLURAL and nxt != "people":
                    add("grammar", i, i + 1, f"{tok(i).text} {match_case(tok(i + 1).text, _IRREGULAR_PLURAL[nxt])}",
                        "grammar.article_number", 0.85)
                    continue
                after = words[i + 2] if i + 2 < n else "</s>"
                stem = _is_plural(nxt, lex)
                if stem and nxt not in _IRREGULAR_PLURAL and (after == "</s>" or after in _CLOSED_AFTER_NOUN):
                    add("grammar", i, i + 1, f"{tok(i).text} {match_case(tok(i + 1).text, stem)}",
                        "grammar.article_number", 0.75)
                    continue
            if w in _NUMBER_PLURAL:
                after = words[i + 2] if i + 2 < n else "</s>"
                if text[tok(i + 1).end:tok(i + 1).end + 1] == "-":
                    continue  # "two free-standing clocks"
                if nxt in _IRREGULAR_SINGULAR and w not in ("few", "many") and (
                        after == "</s>" or after in _CLOSED_AFTER_NOUN):
                    add("grammar", i + 1, i + 1, match_case(tok(i + 1).text, _IRREGULAR_SINGULAR[nxt]),
                        "grammar.number_agreement", 0.85)
                    continue
                if _is_singular_noun(nxt, lex) and (after == "</s>" or (after in _CLOSED_AFTER_NOUN and after != "of")):
                    plural = nxt + ("es" if nxt.endswith(("ch", "sh", "x")) else "s")
                    add("grammar", i + 1, i + 1, match_case(tok(i + 1).text, plural), "grammar.number_agreement", 0.75)
                    continue
            if i == 0 and w in _PLURAL_DETERMINERS and 2 < n and words[2] in ("is", "was"):
                if _is_plural(nxt, lex) and (
                        nxt not in _IRREGULAR_PLURAL or nxt in ("women", "men", "children", "people")):
                    # "The doughnuts is kept fresh": a plural subject with a singular verb
                    v = words[i + 2]
                    add("grammar", i + 2, i + 2, match_case(tok(i + 2).text, "are" if v == "is" else "were"),
                        "grammar.subject_verb", 0.75)
                    continue
            if w in _QUANTIFIERS and nxt == "of" and i + 2 < n:
                noun = words[i + 2]
                after = words[i + 3] if i + 3 < n else "</s>"
                if _is_singular_noun(noun, lex) and (after == "</s>" or after in _CLOSED_AFTER_NOUN):
                    plural = noun + ("es" if noun.endswith(("ch", "sh", "x")) else "s")
                    add("grammar", i + 2, i + 2, match_case(tok(i + 2).text, plural), "grammar.number_agreement", 0.7)
                    continue
            if w in ("is", "are") and nxt in _BARE_VERBS and not (i + 2 < n and (
                    words[i + 2].endswith("ing") or (nxt, words[i + 2]) in _VERB_COMPOUNDS)):
                add("grammar", i + 1, i + 1, match_case(tok(i + 1).text, _BARE_VERBS[nxt]), "grammar.bare_verb", 0.8)

        if n >= 4 and "of" in words[:4]:
            k = self._plural_of_singular_verb(words)
            if k is not None:
                add("grammar", k, k, match_case(tok(k).text, _PLURAL_VERB[words[k]]), "grammar.subject_verb", 0.7)
        if n >= 5 and words[0] in _ARTICLES and "and" in words:
            k = self._coordinated_singular_verb(words)
            if k is not None:
                add("grammar", k, k, match_case(tok(k).text, "are" if words[k] == "is" else "were"),
                    "grammar.coordinated_subject", 0.75)
        if n >= 2:
            last = words[-1]
            conf = _TRUNCATION_WORDS.get(last)
            if conf is not None and not (last in ("on", "in") and (words[-2] in _ON_OK_BEFORE or "with" in words)):
                stripped = text.rstrip()
                if not stripped.endswith("?"):
                    add("truncated", n - 1, n - 1, None, "truncated.ends_on_function_word", conf)
        out.extend(self._formatting(caption_id, image_id, text, words))
        out.extend(self._non_caption(caption_id, image_id, text, words))
        return out

    def _plural_of_singular_verb(self, words: list[str]) -> int | None:
        """Index of a singular verb after a caption-initial plural head of an "of" phrase: "some pieces of pizza
        sits on a tray", "Slices of pizza is ..." (not "a group of people is": the head there is singular)."""
        i = 1 if words[0] in _PLURAL_DETERMINERS or words[0] == "some" else 0
        head = words[i]
        if head in _QUANTIFIERS or head in _IRREGULAR_PLURAL or not _is_plural(head, self.lex):
            return None
        if words[i + 1] != "of":
            return None
        for k in range(i + 3, min(i + 6, len(words))):
            w = words[k]
            if w in _PLURAL_VERB:
                return k
            if w in _SUBJECT_BREAK or w in ("and", "or") or w.endswith("ing"):
                return None
        return None

    @staticmethod
    def _coordinated_singular_verb(words: list[str]) -> int | None:
        """Index of "is"/"was" after a subject of two noun phrases joined by "and" ("a dog and a black backpack is
        on the curb"); None when the words before it hold a preposition or clause that could be the real subject."""
        j = None
        for k, w in enumerate(words[:10]):
            if w in ("is", "was"):
                return k if j is not None and k > j + 1 else None
            if w == "and":
                if j is not None or k + 1 >= len(words) or words[k + 1] not in _COORD_DETERMINERS:
                    return None
                j = k
            elif w in _SUBJECT_BREAK or w.endswith("ing"):
                return None
        return None

    def _formatting(self, caption_id: str, image_id: str, text: str, words: list[str]) -> list[Finding]:
        out = []
        stripped = text.strip()
        if stripped.isupper() and len(words) >= 3 and sum(map(len, words)) >= 8:
            start = text.index(stripped[0])
            fixed = stripped[0].upper() + stripped[1:].lower()
            out.append(Finding(caption_id, image_id, "formatting", start, start + len(stripped), stripped, fixed,
                               "formatting.all_caps", 0.9))
        body_end = len(stripped) + (len(text) - len(text.lstrip()))
        if not _ANY_FORMAT.search(text, 0, body_end):
            return out
        for rx, rule, conf, fix in _FORMAT_RULES:
            for m in rx.finditer(text, 0, body_end):
                out.append(Finding(caption_id, image_id, "formatting", m.start(), m.end(), m.group(), fix(m), rule,
                                   conf))
        for a, b in (("(", ")"), ('"', '"')):
            if a not in text and b not in text:
                continue
            unbalanced = text.count(a) % 2 == 1 if a == b else text.count(a) != text.count(b)
            if unbalanced:
                pos = max(text.rfind(a), text.rfind(b))
                out.append(Finding(caption_id, image_id, "formatting", pos, pos + 1, text[pos], None,
                                   "formatting.unbalanced_quote_or_bracket", 0.6))
        return out

    @staticmethod
    def _non_caption(caption_id: str, image_id: str, text: str, words: list[str]) -> list[Finding]:
        stripped = text.strip()
        start = text.find(stripped[:1]) if stripped else 0
        if text.rstrip().endswith("?") and _QUESTION.search(text):
            return [Finding(caption_id, image_id, "non_caption", start, start + len(stripped), stripped, None,
                            "non_caption.question", 0.7)]
        if (len(words) <= 3 or not _NON_CAPTION_WORDS.isdisjoint(words)) and _NON_CAPTION_ANY.search(text):
            return [Finding(caption_id, image_id, "non_caption", start, start + len(stripped), stripped, None,
                            "non_caption.meta_statement", 0.9)]
        if len(words) <= 2 and len([w for w in words if w[0].isalpha()]) <= 1:
            return [Finding(caption_id, image_id, "non_caption", start, start + len(stripped), stripped, None,
                            "non_caption.too_short", 0.8)]
        return []
