"""Grammar rules, caption-aware: noun-phrase captions without a verb, no final period and a lower-case start are
normal and never flagged. Word classes and inflections come from lemminflect; syntax (which noun a determiner or a
verb belongs to) from spaCy, run only on the captions a rule's cheap trigger selects.
"""

from __future__ import annotations

import math
from functools import lru_cache

from capeval.audit.annotate import AnnotatedCaption, AuditContext
from capeval.audit.corpus import BOS, EOS
from capeval.audit.finding import Finding, match_case
from capeval.audit.real_word import PREPOSITIONS
from capeval.audit.rules import Rule, finding

# --- closed classes of English (grammar, not vocabulary fitted to captions) --------------------------------------
_ARTICLES = frozenset("a an the".split())
SINGULAR_DETERMINERS = frozenset("a an one another every each this that".split())
PLURAL_DETERMINERS = frozenset("these those several many multiple both numerous various few two three four five six "
                               "seven eight nine ten eleven twelve twenty".split())
_NUMBERS = frozenset("two three four five six seven eight nine ten eleven twelve twenty".split())
_FUNCTION = frozenset("a an the is are was were be been am do does did has have had of on in at to with and or but "
                      "as by for from this that these those there their his her its my your our some any all no not "
                      "so very too more most other others such same several many few it they he she we you i one".split())
_BE_SINGULAR = {"is": "are", "was": "were", "has": "have"}
_BE_PLURAL = {"are": "is", "were": "was", "have": "has"}
_ALLOWED_DOUBLES = frozenset("that had ha bye no so very many".split())  # English allows these twice in a row
_COORDINATORS = frozenset("and or nor , & with".split())
# dependents only a verb has: a word the tagger read as a noun but which takes these is the clause's verb
_VERB_DEPENDENTS = frozenset(("prep", "dobj", "prt", "advmod", "agent", "xcomp", "ccomp", "acomp", "advcl"))
# a determiner after "<plural noun> <verb-s>" starts the verb's object ("dogs holds a ball"); a preposition does
# not tell ("street signs at the corner")
_VERB_OBJECT_START = frozenset("a an the his her its their some".split())
_SUBORDINATORS = frozenset("while when as where whilst because".split())  # a clause starts: not a noun modifier
# nouns that quantify like a determiner ("a few dogs", "a dozen eggs"): the number is theirs, not the article's
_QUANTITY_WORDS = frozenset("few dozen hundred thousand million couple number lot bunch pair".split())
# collective nouns: English takes them with a singular or a plural verb ("a couple are", "the team is")
_COLLECTIVE = frozenset("couple group family team crowd herd flock pack pair bunch staff crew audience class band "
                        "committee police army fleet gang troop".split())
_NP_INNER = frozenset(("amod", "compound", "nummod", "advmod", "nmod", "poss", "quantmod"))
# pronunciation: vowel letters read as consonants and consonants read as vowels at a word start
_CONSONANT_SOUND_VOWEL = ("uni", "use", "usa", "usu", "uti", "ute", "ura", "ure", "uri", "uro", "uku", "ubi", "eu",
                          "ewe", "one", "once", "ouija", "ufo", "uvu")
_VOWEL_SOUND_CONSONANT = ("hour", "honest", "honor", "honour", "heir")
_AMBIGUOUS_ARTICLE = ("herb", "historic", "hotel", "homage")
_ACRONYM_VOWEL_LETTERS = set("AEFHILMNORSX")

# verb_form_after_auxiliary: the allowed form of the verb that the corpus uses in this context far more often
INFLECTION_MIN_TRIGRAM = 2  # ... seen between the same two neighbours this often (the written form: nowhere else)
INFLECTION_MIN_SIDE = 3  # ... and next to each neighbour at least this often
INFLECTION_MIN_LOG_RATIO = math.log(20.0)  # ... and the two sides together this many times more often
NOUN_USE_MAX = 2  # lexical_subject_verb: a word the tagger reads as a plural noun is a verb only if "the <word>" is this rare
MODIFIER_RATIO = 10  # plural_noun_modifier: the corpus writes the singular before the noun this many times more


@lru_cache(maxsize=200_000)
def lemmas(word: str) -> dict[str, tuple[str, ...]]:
    """lemminflect's lemmas of a word by universal POS ({'NOUN': ('woman',)} for "women"); {} when unknown."""
    import lemminflect

    return dict(lemminflect.getAllLemmas(word))


@lru_cache(maxsize=200_000)
def inflections(lemma: str, upos: str) -> dict[str, tuple[str, ...]]:
    """lemminflect's inflections of a lemma by Penn tag ({'NN': ('woman',), 'NNS': ('women',)})."""
    import lemminflect

    return dict(lemminflect.getAllInflections(lemma, upos=upos))


@lru_cache(maxsize=200_000)
def plural_noun(word: str) -> str | None:
    """The singular when `word` can only be read as a plural noun (not also as its own singular: "sheep", "news",
    "glasses" are left alone), else None."""
    ls = lemmas(word)
    nouns = ls.get("NOUN")
    if not nouns or word in nouns:
        return None
    sing = nouns[0]
    if word not in inflections(sing, "NOUN").get("NNS", ()):
        return None
    return sing


@lru_cache(maxsize=200_000)
def singular_noun(word: str) -> str | None:
    """The plural when `word` is a singular count noun whose plural differs (and that has no accepted zero plural),
    else None."""
    nouns = lemmas(word).get("NOUN")
    if not nouns or word not in nouns:
        return None
    plurals = [p for p in inflections(word, "NOUN").get("NNS", ()) if p != word]
    if not plurals or word in inflections(word, "NOUN").get("NNS", ()):
        return None
    return plurals[0]


ZERO_PLURAL_MIN = 5  # a zero plural lemminflect allows ("two board") is a slip when the corpus writes the -s plural
# after plural determiners at least this often and the bare form there at most once (the occurrence judged)


def _noun_only(w: str) -> bool:
    """A word that is a noun and nothing else (after a bare noun: the noun it modifies, "two bear cubs")."""
    forms = lemmas(w)
    return "NOUN" in forms and len(forms) == 1


def count_plural(word: str, ctx: AuditContext) -> str | None:
    """The plural when `word` is a singular count noun. A noun for which lemminflect also allows a zero plural
    ("board", "vegetable"; "two zebra" is accepted English) counts as singular only where the corpus, after plural
    determiners, writes its -s plural often and the bare form as a phrase's head at most once (the occurrence judged;
    "two bear cubs" is a modifier, no zero plural)."""
    plural = singular_noun(word)
    if plural is not None:
        return plural
    nouns = lemmas(word).get("NOUN")
    if not nouns or word not in nouns:
        return None
    others = [p for p in inflections(word, "NOUN").get("NNS", ()) if p != word]
    if not others or word not in inflections(word, "NOUN").get("NNS", ()):
        return None
    memo = ctx.memo("count_plural")
    if word not in memo:
        st = ctx.stats
        # the bare form as the head of its phrase ("two zebra standing"), not as a modifier ("two bear cubs")
        follow = st.continuations(PLURAL_DETERMINERS)
        bare = sum(n for d in PLURAL_DETERMINERS for nxt, n in follow.get((d, word), ()) if not _noun_only(nxt))
        s_form = sum(st.bi(d, others[0]) for d in PLURAL_DETERMINERS)
        memo[word] = others[0] if s_form >= ZERO_PLURAL_MIN and bare <= 1 else None
    return memo[word]


def _vowel_sound(token: str, caps_caption: bool = False) -> bool | None:
    """True/False when a word's first sound is clear from its spelling, None when not (digits, lone letters)."""
    if not token or not token[0].isalpha() or len(token) == 1:
        return None
    if token.isupper() and len(token) <= 5 and not caps_caption:
        return token[0] in _ACRONYM_VOWEL_LETTERS  # read letter by letter: "an SUV", "a UFO"
    w = token.lower()
    if w.startswith(_AMBIGUOUS_ARTICLE):
        return None
    if w[0] in "aeiou":
        return not w.startswith(_CONSONANT_SOUND_VOWEL)
    return w.startswith(_VOWEL_SOUND_CONSONANT)


def article_mismatch(ann: AnnotatedCaption, i: int) -> bool:
    """Word i is `a` before a vowel sound or `an` before a consonant sound (the sound judged from the next word's
    spelling, acronyms letter by letter: "an SUV")."""
    ws = ann.words
    w = ws[i]
    if w not in ("a", "an") or i + 1 >= len(ws):
        return False
    vowel = _vowel_sound(ws[i + 1])
    if vowel is not None and vowel != (w == "an"):
        vowel = _vowel_sound(ann.tokens[i + 1].text, ann.all_caps)  # acronyms: "an SUV"
    return vowel is not None and vowel != (w == "an")


def an_means_and(ann: AnnotatedCaption, i: int, ctx: AuditContext) -> bool:
    """A mismatched `an` (before a consonant sound) is more likely `and` with its last letter lost than `a` with a
    letter added: the caption LM finds "a laptop and computer monitors" more probable than "a laptop a computer
    monitors". Both are one edit, so the likelier caption decides; without the LM, `a`."""
    if ctx.lm is None or ann.words[i] != "an":
        return False
    from capeval.audit.candidates import context_logprobs

    as_a, as_and = context_logprobs(ctx.lm, ann.words, i, ["a", "and"]).tolist()
    return as_and > as_a


def article_form(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """`a` before a vowel sound or `an` before a consonant sound ("a old man", "an man"); an `an` that stands for
    `and` ("fruits an granola", `an_means_and`) is a real-word slip, not an article's form."""
    return [finding(ann, "grammar", i, i, match_case(ann.tokens[i].text, "a" if ann.words[i] == "an" else "an"),
                    "grammar.article_form", 0.9)
            for i in range(len(ann.words) - 1) if article_mismatch(ann, i) and not an_means_and(ann, i, ctx)]


def doubled_word(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """The same word twice in a row ("the the", "on on")."""
    out = []
    ws = ann.words
    for i in range(len(ws) - 1):
        if ws[i] == ws[i + 1] and ws[i][0].isalpha() and ws[i] not in _ALLOWED_DOUBLES:
            toks = ann.tokens  # (tokenized only when needed: most captions have no doubled word)
            if not ann.text[toks[i].end:toks[i + 1].start].isspace():
                continue  # "boy , boy", "potty-potty": punctuation between, not a slip of the keyboard
            if (i > 0 and ws[i - 1] == ws[i]) or (i + 2 < len(ws) and ws[i + 2] == ws[i]):
                continue  # three or more in a row ("Ok Ok Ok"): deliberate repetition
            out.append(finding(ann, "grammar", i, i + 1, ann.tokens[i].text, "grammar.doubled_word", 0.9))
    return out


def double_determiner(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """Two articles in a row ("on the a bus"): one of them is left over from an edit."""
    ws = ann.words
    return [finding(ann, "grammar", i, i + 1, None, "grammar.double_determiner", 0.85)
            for i in range(len(ws) - 1) if ws[i] in _ARTICLES and ws[i + 1] in _ARTICLES]


# a determiner that must be followed by its noun phrase ("their" cannot stand alone as "his" or "that" can)
_NP_DETERMINERS = frozenset("a an the every my your our their".split())
# words that can neither start nor continue a noun phrase after a determiner: prepositions that are no adjective
# or noun ("the on switch" is, so "on" is not here), conjunctions, finite forms of be and have, subject pronouns
_NOT_IN_NP = frozenset("of in at with from into onto by and or but is are was were has had it they he she we "
                       "them him".split())


def determiner_before_function_word(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A determiner followed straight by a preposition, conjunction, verb or pronoun ("down a with path", "in front
    the of", "a group a of protesters"): a word left over or swapped in an edit, garbling the phrase. A hyphenated or
    glued second word is a compound ("an at-home", "an at&t"), not a slip."""
    ws = ann.words
    out = []
    for i in range(len(ws) - 1):
        if ws[i] in _NP_DETERMINERS and ws[i + 1] in _NOT_IN_NP:
            toks, text = ann.tokens, ann.text
            if not text[toks[i].end:toks[i + 1].start].isspace() or text[toks[i + 1].end:toks[i + 1].end + 1] \
                    not in ("", " ", ",", ".", "\n", "\t"):
                continue
            out.append(finding(ann, "grammar", i, i + 1, None, "grammar.determiner_before_function_word", 0.85))
    return out


def repeated_noun(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A noun repeated with only adjectives between ("A dog small dog"): a garbled restart of the phrase."""
    out = []
    ws = ann.words
    if len(set(ws)) == len(ws):
        return out
    for i, w in enumerate(ws):
        if len(w) < 3 or w in _FUNCTION or ws.count(w) < 2 or "NOUN" not in lemmas(w):
            continue
        for j in range(i + 2, min(i + 4, len(ws))):
            if ws[j] == w:
                between = ws[i + 1:j]
                if all("ADJ" in lemmas(x) and x not in _FUNCTION for x in between):
                    out.append(finding(ann, "grammar", i, j, None, "grammar.repeated_noun", 0.8))
                break
    return out


_AFTER_BE = ("VBG", "VBN")  # forms a verb takes right after a form of be
_AFTER_HAVE = ("VBN",)
_AFTER_MODAL = ("VB",)
_BE = frozenset("is are was were be been being am".split())
_HAVE = frozenset("has have had".split())
_MODAL = frozenset("can could will would shall should may might must to".split())


@lru_cache(maxsize=200_000)
def _verb_tags(word: str) -> set[str]:
    """The Penn tags `word` can have as an inflection of one of its verb lemmas."""
    out = set()
    for lemma in lemmas(word).get("VERB", ()):
        for tag, forms in inflections(lemma, "VERB").items():
            if word in forms:
                out.add(tag)
                if tag == "VBD" and "VBN" not in inflections(lemma, "VERB"):
                    out.add("VBN")  # lemminflect lists a shared past form once
    return out


def _allowed_forms(word: str, tags: tuple[str, ...]) -> tuple[str, ...]:
    """The forms of `word`'s verb lemmas with one of `tags`."""
    out: dict[str, None] = {}
    for lemma in lemmas(word).get("VERB", ()):
        infl = inflections(lemma, "VERB")
        for tag in tags:
            for f in infl.get(tag, infl.get("VBD", ()) if tag == "VBN" else ()):
                if f != word and f.isalpha():
                    out[f] = None
    return tuple(out)


def _context_preference(st, prev: str, w: str, nxt: str, alts: tuple[str, ...]) -> tuple[str, float] | None:
    """The alternative the corpus uses between `prev` and `nxt` (trigram), on each side at least as often as the
    written word and far more often on the two together (leave-one-out), with its log ratio."""
    own_l, own_r = st.bi(prev, w) - 1, st.bi(w, nxt) - 1
    best, best_score = None, 0.0
    for a in alts:
        al, ar = st.bi(prev, a), st.bi(a, nxt)
        if st.tri(prev, a, nxt) < INFLECTION_MIN_TRIGRAM or min(al, ar) < INFLECTION_MIN_SIDE or al < own_l \
                or ar < own_r:
            continue
        score = math.log((al + 0.5) / (own_l + 0.5)) + math.log((ar + 0.5) / (own_r + 0.5))
        if score >= INFLECTION_MIN_LOG_RATIO and score > best_score:
            best, best_score = a, score
    return (best, best_score) if best is not None else None


def verb_form_after_auxiliary(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """After be, have, a modal or infinitive `to`, a verb form that cannot follow it ("is display atop", "are
    stand", "has took", "can sitting"), where the corpus uses the allowed form of the same verb in this context."""
    out = []
    ws = ann.words
    st = ctx.stats
    for i in range(1, len(ws)):
        aux, w = ws[i - 1], ws[i]
        need = _AFTER_BE if aux in _BE else _AFTER_HAVE if aux in _HAVE else _AFTER_MODAL if aux in _MODAL else None
        if need is None or len(w) < 3 or w in _FUNCTION:
            continue
        tags = _verb_tags(w)
        if not tags or tags & set(need) or (aux in _BE | _HAVE and "NOUN" in lemmas(w) and w not in
                                            lemmas(w).get("VERB", ())):
            continue  # a form that may follow, or not a verb at all ("is a", "has wheels")
        if aux == "to" and ("NOUN" in lemmas(w) or "ADJ" in lemmas(w)):
            continue  # "to" as a preposition: "next to trees"
        nxt = ws[i + 1] if i + 1 < len(ws) else EOS
        pref = _context_preference(st, aux, w, nxt, _allowed_forms(w, need))
        if pref is not None:
            out.append(finding(ann, "grammar", i, i, match_case(ann.tokens[i].text, pref[0]),
                               "grammar.verb_form_after_auxiliary", min(0.95, 0.5 + 0.05 * pref[1])))
    return out


def plural_noun_modifier(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A plural noun used as the modifier of another noun where the corpus writes the singular before that noun
    ("some baseballs players", "a windows sill", "beverages containers")."""
    out = []
    ws = ann.words
    st = ctx.stats
    for i in range(len(ws) - 1):
        w, nxt = ws[i], ws[i + 1]
        if len(w) < 4 or w in _FUNCTION or (sing := plural_noun(w)) is None:
            continue
        if "NOUN" not in lemmas(nxt) or nxt in _FUNCTION or (nxt.endswith("ing") and "VERB" in lemmas(nxt)):
            continue
        if ann.text[ann.tokens[i].end:ann.tokens[i + 1].start] != " ":
            continue  # "computers, mouse": not one noun phrase
        prev = ws[i - 1] if i > 0 else BOS
        after = ws[i + 2] if i + 2 < len(ws) else EOS
        if nxt in _SUBORDINATORS or (nxt.endswith("s") and "VBZ" in _verb_tags(nxt) and after in _VERB_OBJECT_START):
            continue  # "dogs holds a ball", "ride bikes while": the plural noun ends its phrase (subject, object)
        if "VBZ" in _verb_tags(w) and prev not in _FUNCTION and "NOUN" in lemmas(prev) and plural_noun(prev) is None:
            continue  # "the dog catches something", "a uniform plays hockey": the verb after its subject
        own = st.bi(w, nxt) - 1
        alt = st.bi(sing, nxt)
        if alt >= INFLECTION_MIN_SIDE and alt >= MODIFIER_RATIO * (own + 1) and st.tri(prev, w, nxt) <= 1:
            out.append(finding(ann, "grammar", i, i, match_case(ann.tokens[i].text, sing),
                               "grammar.plural_noun_modifier", min(0.95, 0.5 + 0.05 * math.log(alt / (own + 1)))))
    return out


def verb_in_noun_phrase(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A bare verb that can only be a verb, between a determiner or numeral and a noun ("an entertain system",
    "two expire time meters"): a wrong word class inside a noun phrase."""
    out = []
    ws = ann.words
    for i in range(1, len(ws) - 1):
        w = ws[i]
        if len(w) < 4 or w in _FUNCTION or ws[i - 1] not in SINGULAR_DETERMINERS | PLURAL_DETERMINERS | _ARTICLES:
            continue
        ls = lemmas(w)
        if set(ls) != {"VERB"} or w not in ls["VERB"]:
            continue
        if "NOUN" in lemmas(ws[i + 1]) and ws[i + 1] not in _FUNCTION:
            out.append(finding(ann, "grammar", i, i, None, "grammar.verb_in_noun_phrase", 0.7))
    return out


# --- rules that read spaCy's analysis ------------------------------------------------------------------------------

def _np_number_trigger(ann: AnnotatedCaption, ctx: AuditContext) -> bool:
    """A singular determiner whose noun phrase (adjectives and nouns up to its first head-like noun) holds a
    plural-only noun form, or a numeral right before a singular count noun that no noun follows."""
    ws = ann.words
    n = len(ws)
    if PLURAL_DETERMINERS.isdisjoint(ws) and not any(plural_noun(x) for x in ws):
        return False
    for i, w in enumerate(ws):
        if w in SINGULAR_DETERMINERS:
            for k in range(i + 1, min(i + 5, n)):
                x = ws[k]
                if plural_noun(x):
                    if "VBZ" in _verb_tags(x) and k > i + 1:
                        break  # "A man walks": the verb after its subject (the rule leaves it alone too)
                    return True
                ls = lemmas(x)
                if x in _FUNCTION or (ls and not ("ADJ" in ls or "NOUN" in ls)):
                    break  # (a word lemminflect does not know, such as "asian", may be an adjective)
                if "NOUN" in ls and "ADJ" not in ls and not (k + 1 < n and "NOUN" in lemmas(ws[k + 1])):
                    break  # the head noun, singular
        elif w in PLURAL_DETERMINERS:
            for k in range(i + 1, min(i + 4, n)):
                x = ws[k]
                if x in _FUNCTION:
                    break
                after = ws[k + 1] if k + 1 < n else EOS
                if "ADJ" in lemmas(x) and after not in _FUNCTION and after != EOS:
                    continue  # a modifier ("two black cat"): look at the next word
                if count_plural(x, ctx) and not plural_noun(after):
                    return True  # (not "two tennis players": a noun modifier)
                break
    return False


def _noun_follows(tags, k: int) -> bool:
    """A noun comes at word k, after adjectives only."""
    while k < len(tags) and tags[k].pos == "ADJ":
        k += 1
    return k < len(tags) and tags[k].pos in ("NOUN", "PROPN")


def _possessor_noun(singular: str, ctx: AuditContext) -> bool:
    """English writes `singular` as a possessor often ("giraffe's", "catcher's"; not "window's")."""
    from capeval.audit.rules.real_word import _possessor

    return _possessor(singular, ctx)


def determiner_number(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A singular determiner on a plural noun ("A young Asian women", "a dogs", "this pants" is left alone: plural
    only) or a plural determiner or numeral on a singular count noun ("several boy", "two dog"; accepted zero
    plurals such as "two zebra" are not flagged), the noun found as the determiner's syntactic head."""
    tags = ann.tagged
    if tags is None:
        return []
    out = []
    ws = ann.words
    for i, t in enumerate(tags):
        w = ws[i]
        if t.dep not in ("det", "nummod", "amod", "quantmod") or t.head <= i or t.head >= len(ws):
            continue
        h = t.head
        head = ws[h]
        if tags[h].pos not in ("NOUN", "PROPN"):
            continue
        if h - i > 4 or any(ws[k] in _COORDINATORS or ws[k] in _QUANTITY_WORDS or tags[k].dep not in _NP_INNER
                            for k in range(i + 1, h)):
            continue  # "a cat and dogs", "one of the dogs", "a few dogs", or not one noun phrase
        if any((tags[k].tag in ("VBG", "VBN") or (ws[k].endswith("ing") and "VBG" in _verb_tags(ws[k])))
               and tags[k - 1].pos == "NOUN" for k in range(i + 2, h)):
            continue  # "a table holding lollipops", "a store sampling foodstuffs" (whichever way the tagger reads
            # the participle): a participle after a noun starts a clause; "a" is the table's
        if ann.text[ann.tokens[h].end:ann.tokens[h].end + 2].lstrip()[:1] in ("'", "\u2019"):
            continue  # a possessive ("a men 's team", "a children 's ride"): the determiner is the next noun's
        if (w in SINGULAR_DETERMINERS and (sing := plural_noun(head)) is not None and tags[h].tag == "NNS"
                and not ("VBZ" in _verb_tags(head) and h > i + 1)):
            # ("A surfer runs": a verb after its subject that the tagger took for the head noun; "a kids": a noun)
            if h + 1 < len(ws) and (tags[h + 1].pos == "ADJ" or tags[h + 1].tag == "RP"):
                continue  # a fixed phrase as a modifier: "a thumbs up", "a hands free umbrella"
            if (t.head == h and tags[h].dep == "compound") or (h + 1 < len(ws) and tags[h + 1].tag == "NN"):
                continue  # "A zebras rump", "a pitchers mound": the plural modifies the singular noun after it,
                # which the determiner counts (a possessive without its apostrophe: real_word.possessive)
            if (h + 1 < len(ws) and ws[h + 1] in lemmas(ws[h + 1]).get("NOUN", ()) and tags[h + 1].tag in ("VB", "VBP")
                    and _possessor_noun(sing, ctx)):
                continue  # the same when the tagger reads the noun after it as a verb ("a giraffes face against")
            out.append(finding(ann, "grammar", h, h, match_case(ann.tokens[h].text, sing),
                               "grammar.determiner_number.singular", 0.85))
        elif w in PLURAL_DETERMINERS and (plur := count_plural(head, ctx)) is not None and tags[h].tag == "NN":
            if h + 1 < len(ws) and tags[h + 1].pos in ("NOUN", "PROPN") or "-" in (
                    ann.text[ann.tokens[h].end:ann.tokens[h].end + 1], ann.text[ann.tokens[h].start - 1:ann.tokens[h].start]):
                continue  # a noun modifier ("two tennis players", "two story house", "two-door")
            if any(ws[k] == "like" or ws[k].endswith("ed") for k in range(i + 1, min(h + 2, len(ws))) if k != h):
                continue  # a compound adjective: "four faced clock", "two toy sized cases", "banana like flowers"
            if any(tags[k].pos == "NOUN" for k in range(i + 1, h)):
                continue  # the numeral counts the noun after it ("a three story building")
            if i > 0 and ws[i - 1] in _ARTICLES and _noun_follows(tags, h + 1):
                continue  # "a two seam fast ball", "a three tier white cake": numeral and noun modify a later noun
            out.append(finding(ann, "grammar", h, h, match_case(ann.tokens[h].text, plur),
                               "grammar.determiner_number.plural", 0.75))
    return out


_COUNTED_BY_ONE = frozenset("a an another every each this".split())
_NOUN_DETERMINERS = ("the", "two", "three", "many", "several", "some", "these")  # "the lights": a noun
_SUBJECT_PRONOUNS = ("he", "she", "it", "who", "that", "which")  # "she stands": a verb


def _participle(word: str) -> bool:
    """A verb's -ing or -ed participle form ("speeding", "attached")."""
    return ((word.endswith("ing") and "VBG" in _verb_tags(word))
            or (word.endswith("ed") and "VBN" in _verb_tags(word)))


def _noun_only_in_corpus(word: str, ctx: AuditContext) -> bool:
    """The corpus writes `word` after determiners and never after a subject pronoun: a noun, not a verb."""
    st = ctx.stats
    return (sum(st.bi(d, word) for d in _NOUN_DETERMINERS) >= 1
            and not any(st.bi(p, word) for p in _SUBJECT_PRONOUNS))


def lexical_determiner_number(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A singular determiner, a noun and a plural noun form before a participle ("a stop lights attached to it",
    "A passenger trains speeding through"): the parser reads the -s word as the verb of the noun before it, but the
    corpus uses it as a noun only (never after a subject pronoun) and a participle right after it starts a clause,
    so the determiner counts a plural ("a man stands waiting", "A man photographs costumed dancers" are verbs)."""
    ws = ann.words
    out = []
    for i in range(len(ws) - 3):
        if ws[i] not in _COUNTED_BY_ONE:
            continue
        noun, w, nxt = ws[i + 1], ws[i + 2], ws[i + 3]
        if noun in _FUNCTION or noun in _QUANTITY_WORDS or "NOUN" not in lemmas(noun):
            continue  # ("a couple towels hanging": a quantity)
        if (sing := plural_noun(w)) is None or "VBZ" not in _verb_tags(w) or not _participle(nxt):
            continue
        if i + 4 < len(ws) and ws[i + 4] not in _FUNCTION and "NOUN" in lemmas(ws[i + 4]):
            continue  # "photographs costumed dancers": the participle modifies the verb's object
        if _noun_only_in_corpus(w, ctx):
            out.append(finding(ann, "grammar", i + 2, i + 2, match_case(ann.tokens[i + 2].text, sing),
                               "grammar.determiner_number.lexical", 0.8))
    return out


# verbs that take a place or an object only through a preposition, in the -ing form that captions use after their
# subject (finite forms invert: "on a desk sits a plate"), with the preposition suggested
_PREPOSITIONAL_VERBS = {**dict.fromkeys(("sitting", "standing", "lying", "perched"), ("on", "place")),
                        **dict.fromkeys(("looking", "staring", "gazing", "glancing"), ("at", "object"))}
# measure and quantity nouns after an article ("standing a few feet away", "looking a bit tired"), and the same or
# other way ("looking the same direction")
_MEASURES = frozenset("few couple bit lot little distance way same other".split())


def missing_preposition(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A verb of position or of looking straight before an article ("a cat sitting a black desk", "a man lying the
    floor", "we are looking a train"): the preposition that gives its place or object is missing. Measures
    ("standing a few feet away") and "one standing, the other ..." are left alone."""
    ws = ann.words
    out = []
    for i in range(1, len(ws) - 2):
        verb = _PREPOSITIONAL_VERBS.get(ws[i])
        if verb and ws[i + 1] in _ARTICLES and ws[i + 2] not in _MEASURES and ws[i - 1] != "one":
            toks = ann.tokens
            if not ann.text[toks[i].end:toks[i + 1].start].isspace():
                continue  # "sitting, the dog": punctuation between
            prep, kind = verb
            out.append(finding(ann, "grammar", i, i + 1, f"{toks[i].text} {prep} {toks[i + 1].text}",
                               f"grammar.missing_preposition.{kind}", 0.8))
    return out


def _subject_verb_trigger(ann: AnnotatedCaption, ctx: AuditContext) -> bool:
    """A form of be/have whose nearest preceding noun form (within five words, no conjunction between) has the
    other number."""
    ws = ann.words
    for k, w in enumerate(ws):
        want = "plural" if w in _BE_PLURAL else "singular" if w in _BE_SINGULAR else None
        if want is None:
            continue
        for j in range(k - 1, max(-1, k - 6), -1):
            x = ws[j]
            if x in _COORDINATORS:
                break
            if want == "singular" and plural_noun(x):
                return True
            if want == "plural" and count_plural(x, ctx):
                return True
    return False


def _plural_subject_verb_s(ws: list[str], i: int) -> bool:
    """Word i + 1 is a verb's -s form right after the plural noun at i ("trains moves")."""
    v = i + 1
    return v < len(ws) and ws[v].endswith("s") and "VBZ" in _verb_tags(ws[v]) and plural_noun(ws[i]) is not None


def lexical_subject_verb(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A plural subject right before a verb's -s form ("Two trains moves past a factory"): the verb takes the
    subject's number. The subject is the verb's nsubj in spaCy's parse (which may read the verb as a plural noun,
    so the word must also take a verb's dependents); coordinated, collective and quantity subjects are left alone."""
    tags = ann.tagged
    if tags is None:
        return []
    out = []
    ws = ann.words
    for i, t in enumerate(tags):
        v = i + 1
        if t.dep != "nsubj" or t.head != v or tags[i].tag != "NNS" or not _plural_subject_verb_s(ws, i):
            continue
        if tags[v].tag not in ("VBZ", "NNS") or not any(
                u.head == v and u.dep in _VERB_DEPENDENTS for k, u in enumerate(tags) if k != v):
            continue
        if ws[i] in _COLLECTIVE or ws[i] in _QUANTITY_WORDS or any(
                u.head == i and u.dep in ("conj", "cc") for u in tags) or (i > 0 and ws[i - 1] in PREPOSITIONS):
            continue
        if {ws[k] for k, u in enumerate(tags) if u.head == i and u.dep == "det"} & SINGULAR_DETERMINERS:
            continue  # "A young women stands": the verb agrees with the determiner; the noun is what is wrong
        if tags[v].tag == "NNS" and ctx.stats.bi("the", ws[v]) > NOUN_USE_MAX:
            continue  # "The streets signs at": a word the corpus uses as a noun, read as one by the tagger too
        base = [x for x in lemmas(ws[v]).get("VERB", ()) if x != ws[v]]
        if not base:
            continue
        out.append(finding(ann, "grammar", v, v, match_case(ann.tokens[v].text, base[0]),
                           "grammar.subject_verb.lexical", 0.8))
    return out


def subject_verb(ann: AnnotatedCaption, ctx: AuditContext) -> list[Finding]:
    """A plural subject with a singular verb ("The doughnuts is kept fresh") or a singular subject with a plural one
    ("A dog are"): the subject is the verb's nsubj in spaCy's parse; coordinated subjects and quantity or
    collective heads with an of-phrase ("a group of people are") are left alone."""
    tags = ann.tagged
    if tags is None:
        return []
    out = []
    ws = ann.words
    for i, t in enumerate(tags):
        if t.dep not in ("nsubj", "nsubjpass") or t.head < 0 or t.head >= len(ws) or tags[i].pos != "NOUN":
            continue
        v = t.head
        # the finite verb: the head itself or its be/have auxiliary
        cands = [v] + [k for k, u in enumerate(tags) if u.head == v and u.dep in ("aux", "auxpass")]
        finite = next((k for k in cands if ws[k] in _BE_SINGULAR or ws[k] in _BE_PLURAL), None)
        if finite is None or finite < i:
            continue
        if any(u.head == i and u.dep in ("conj", "cc") for u in tags) or any(
                u.head == i and u.dep == "prep" and ws[k] == "of" for k, u in enumerate(tags)):
            continue
        if any(u.head == i and u.dep == "appos" for u in tags) or sum(
                u.head == v and u.dep in ("nsubj", "nsubjpass") for u in tags) > 1:
            continue  # "two men one is surfing" (the appositive is the subject); "A signal, stoplight and street sign
            # are" (two subjects of one verb: a coordination the parser split)
        subj = ws[i]
        verb = ws[finite]
        if subj in _COLLECTIVE:
            continue
        dets = {ws[k] for k, u in enumerate(tags) if u.head == i and u.dep in ("det", "nummod")}
        if (verb in _BE_SINGULAR and dets & SINGULAR_DETERMINERS) or (verb in _BE_PLURAL and dets & PLURAL_DETERMINERS):
            continue  # "A women is": the verb agrees with the determiner; the noun is determiner_number's
        if verb in _BE_SINGULAR and tags[i].tag == "NNS" and plural_noun(subj):
            fix = _BE_SINGULAR[verb]
        elif verb in _BE_PLURAL and tags[i].tag == "NN" and count_plural(subj, ctx):
            fix = _BE_PLURAL[verb]
        else:
            continue
        if ws[i - 1:i] == ["there"] or (finite > 0 and ws[finite - 1] == "there"):
            continue
        out.append(finding(ann, "grammar", finite, finite, match_case(ann.tokens[finite].text, fix),
                           "grammar.subject_verb", 0.8))
    return out


RULES = [
    Rule("grammar.article_form", "grammar", article_form),
    Rule("grammar.doubled_word", "grammar", doubled_word),
    Rule("grammar.double_determiner", "grammar", double_determiner),
    Rule("grammar.determiner_before_function_word", "grammar", determiner_before_function_word),
    Rule("grammar.repeated_noun", "grammar", repeated_noun),
    Rule("grammar.verb_form_after_auxiliary", "grammar", verb_form_after_auxiliary),
    Rule("grammar.plural_noun_modifier", "grammar", plural_noun_modifier),
    Rule("grammar.verb_in_noun_phrase", "grammar", verb_in_noun_phrase),
    Rule("grammar.determiner_number", "grammar", determiner_number, needs_tags=True, trigger=_np_number_trigger),
    Rule("grammar.determiner_number.lexical", "grammar", lexical_determiner_number),
    Rule("grammar.missing_preposition", "grammar", missing_preposition),
    Rule("grammar.subject_verb", "grammar", subject_verb, needs_tags=True, trigger=_subject_verb_trigger),
    Rule("grammar.subject_verb.lexical", "grammar", lexical_subject_verb, needs_tags=True,
         trigger=lambda ann, ctx: any(_plural_subject_verb_s(ann.words, i) for i in range(len(ann.words) - 1))),
]
