"""Real-word errors: a correctly spelled word that is the wrong word ("eating a desert", "a frisbee in it's mouth").

For each word of a confusion set (`data/confusions.txt`) the checker compares the set's members in the word's
context with a bigram model of the corpus itself (leave-one-out: the occurrence under test does not vote for
itself), backed off to the shipped frequency list; for content words it also weighs the other words of the
caption (caption-level co-occurrence, as in Golding & Roth's context-sensitive spelling correction).
A few unambiguous patterns ("its a", "bigger then") are rules.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from capeval.audit.corpus import BOS, EOS, CorpusStats
from capeval.audit.spelling import Lexicon

THRESHOLD = math.log(20.0)  # an alternative must explain the context this many times better
CONTENT_THRESHOLD = math.log(50.0)  # content words: their own context evidence is sparser, so demand more
NEIGHBOUR_MIN_IMAGES = 5  # a replacement word must be used on this many images
NEIGHBOUR_MIN_TRIGRAM = 2  # ... and seen in exactly this context this often
MIN_SUPPORT = 2  # ... and be seen next to one of the neighbours at least this often in the corpus
DOMINANT_SIDE = 10  # ... and this many times more often than the written word is
SIBLING_MAX_OWN_CONTEXT = 4  # sibling rule: the written word is seen next to its neighbours at most this often
SIBLING_MIN_CONTEXT = 3  # ... the sibling's word at least this often
SIBLING_RATIO = 10  # ... and this many times more often
SIBLING_FREQ_RATIO = 40  # ... and the sibling's word is this many times commoner in the corpus than the written one

STOP_WORDS = frozenset(
    "a an the of on in at to with and or is are was were be been it its this that these those there their his her "
    "some two while by for from as up down near next very".split()
)
_STOP = STOP_WORDS
_ITS_BEFORE = frozenset("a an the not very being been going getting raining snowing time".split())
_COUNTING = frozenset("two three four five six seven eight nine ten several many some multiple few these those "
                      "numerous".split())
_SINGULAR_DETERMINERS = frozenset("a an the his her my your their our this that".split())
_APOSTROPHE_PREV = _COUNTING | _SINGULAR_DETERMINERS
_DETERMINERS = frozenset("the a an his her their its my your our this that some of".split())
_PATTERN_WORDS = frozenset(["its", "it's", "then", "to", "too"])
_AFTER_TO = frozenset("a an the his her their my your be get go eat play see".split())
_COMPARATIVE = frozenset("more less rather other better worse bigger smaller larger taller shorter higher lower "
                         "older younger longer faster slower".split())


def _inflection_pair(a: str, b: str) -> bool:
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return long_.startswith(short) and long_[len(short):] in ("s", "es", "d", "ed", "r", "er", "ing")


PREPOSITIONS = frozenset("with in on of from by under into onto at to behind near over through off out for "
                          "inside outside beside under".split())
# words that follow a noun phrase rather than sit inside one (so "a Xs <word>" is no possessive)
_NOT_HEAD_NOUN = frozenset("is are was were has have had on in at with of near by under over behind beside next from "
                           "that which who while and or but to for as the a an his her their its this these those "
                           "very so too up down out off there here".split())
# words after which a possessive's noun cannot be missing ("on ski's in the snow": a plural, not a possessive)
_CLAUSE_END = frozenset([EOS, "and", "or", "while", "that", "which", "who"])
_AUXILIARIES = frozenset("had has have was were are did does can could would should will".split())
_SUFFIXES = ("ing", "ed", "es", "s", "d", "y", "er")


def _stem(w: str) -> str:
    for suf in _SUFFIXES:
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[: -len(suf)]
    return w


def _variant_pair(a: str, b: str) -> bool:
    """Two forms of one word, not two words: inflections ("sliced"/"slices", "fruit"/"fruity") and number
    ("policeman"/"policemen")."""
    if _inflection_pair(a, b) or _stem(a) == _stem(b):
        return True
    if a[:-3] == b[:-3] and {a[-3:], b[-3:]} == {"man", "men"}:
        return True
    return False


@dataclass(frozen=True)
class ConfusionSets:
    members: dict[str, tuple[str, ...]]  # word -> the other members of its set
    content: frozenset[str]


@lru_cache(maxsize=1)
def load_confusion_sets() -> ConfusionSets:
    text = resources.files("capeval.audit").joinpath("data/confusions.txt").read_text(encoding="utf-8")
    members: dict[str, tuple[str, ...]] = {}
    content: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        is_content = line.startswith("content:")
        words = line.removeprefix("content:").split()
        for w in words:
            members[w] = tuple(x for x in words if x != w)
            if is_content:
                content.add(w)
    return ConfusionSets(members, frozenset(content))


class RealWordChecker:
    """Context statistics over one corpus for the confusion sets."""

    def __init__(self, corpus: CorpusStats, lexicon: Lexicon, sets: ConfusionSets | None = None) -> None:
        self.corpus = corpus
        self.lex = lexicon
        self.sets = sets or load_confusion_sets()
        self._lex_total = float(sum(lexicon.counts.values()))
        self._N = max(1, corpus.n_tokens)
        self.cooc = self._cooccurrence()
        self._triggers = frozenset(self.sets.members) | _PATTERN_WORDS
        self._deletes = self._delete_index()
        self._neighbour_cache: dict[str, tuple[str, ...]] = {}
        self._rival_cache: dict[str, tuple[str, ...]] = {}
        self._confusion_cache: dict[tuple[str, str, str], tuple[str, float] | None] = {}
        self._candidate_rivals: dict[str, tuple[str, ...]] = {}

    # -- open-class real-word errors ("pizza trey", "a coupe of people") ---------------------------------------
    def _delete_index(self) -> dict[str, tuple[str, ...]]:
        """Single-deletion keys of the corpus' well-attested dictionary words (symmetric-delete lookup); tuples of
        strings, which the cyclic garbage collector does not track (a list per key would be scanned all audit)."""
        index: dict[str, tuple[str, ...]] = {}
        for v, n_img in self.corpus.word_image_items():
            if n_img < NEIGHBOUR_MIN_IMAGES or len(v) < 2 or not v.isalpha() or not self.lex.known(v):
                continue
            for key in {v} | {v[:i] + v[i + 1:] for i in range(len(v))}:
                index[key] = index.get(key, ()) + (v,)
        return index

    def _neighbours(self, w: str) -> tuple[str, ...]:
        """Well-attested corpus words one edit (insertion, deletion, substitution, transposition) from `w`."""
        got = self._neighbour_cache.get(w)
        if got is None:
            from rapidfuzz.distance import OSA

            found: set[str] = set()
            for key in {w} | {w[:i] + w[i + 1:] for i in range(len(w))}:
                found.update(self._deletes.get(key, ()))
            found.discard(w)
            got = tuple(sorted(v for v in found if OSA.distance(v, w) <= 1))
            self._neighbour_cache[w] = got
        return got

    def _neighbour_fix(self, w: str, prev: str, nxt: str) -> tuple[str, float] | None:
        """A word one edit away that the corpus uses in exactly this context (trigram) while the written word is
        not used there elsewhere, on either side (noisy-channel real-word detection, Mays et al. 1991)."""
        c = self.corpus
        if c.tri(prev, w, nxt) > 1 or c.bi(prev, w) > 1 or c.bi(w, nxt) > 1:
            return None  # the written word is seen elsewhere next to one of these neighbours
        best, best_t = None, 0
        for v in self._neighbours(w):
            if _inflection_pair(v, w):
                continue  # "desks"/"desk", "biker"/"bike": number and form are grammar, not a wrong word
            t = c.tri(prev, v, nxt)
            if t > best_t and c.bi(prev, v) >= 3 and c.bi(v, nxt) >= 3:
                best, best_t = v, t
        if best is None or best_t < NEIGHBOUR_MIN_TRIGRAM:
            return None
        return best, min(0.85, 0.5 + 0.05 * best_t)

    def _cooccurrence(self) -> dict[str, Counter]:
        """target word -> Counter of the words of the captions that hold it (from the corpus summary)."""
        cooc: dict[str, Counter] = {}
        for (t, x), n in self.corpus.summary.cooccurrence.items():
            cooc.setdefault(t, Counter())[x] = n
        return cooc

    def _p_uni(self, w: str, loo: int) -> float:
        corpus_p = (self.corpus.uni(w) - loo + 0.5) / self._N
        shipped_p = (self.lex.counts.get(w, 0) + 1) / self._lex_total
        return 0.5 * corpus_p + 0.5 * shipped_p

    def _score(self, c: str, prev: str, nxt: str, loo: int) -> tuple[float, int]:
        """log P(c) + log P(prev | c) + log P(nxt | c): a naive-Bayes view of the two neighbours, with the occurrence
        itself removed when c is the word as written (leave-one-out), smoothed towards the neighbours' unigram
        probabilities so that a rare word is not penalised for being rare."""
        k = 2.0
        u_c = max(self.corpus.uni(c) - loo, 0)
        b1 = max(self.corpus.bi(prev, c) - loo, 0)
        b2 = max(self.corpus.bi(c, nxt) - loo, 0)
        p_prev = self.corpus.n_captions / self._N if prev == BOS else (self.corpus.uni(prev) + 0.5) / self._N
        p_next = self.corpus.n_captions / self._N if nxt == EOS else (self.corpus.uni(nxt) + 0.5) / self._N
        lp = math.log(self._p_uni(c, loo))
        lp += math.log((b1 + k * p_prev) / (u_c + k)) + math.log((b2 + k * p_next) / (u_c + k))
        return lp, b1 + b2

    def _context_score(self, c: str, ctx: set[str], loo: int) -> float:
        co = self.cooc.get(c)
        if not co:
            return 0.0
        total = self.corpus.uni(c) - loo + 1.0
        return sum(math.log((co.get(x, 0) - loo * 1 + 0.2) / total + 1e-6) - math.log(0.2 / total + 1e-6)
                   for x in ctx if x in co) / max(1, len(ctx)) * 2.0

    def _sibling_rivals(self, w: str) -> tuple[str, ...]:
        """Well-attested words one edit from `w`, not a form of it, and far commoner in the corpus (cached)."""
        got = self._rival_cache.get(w)
        if got is None:
            n = self.corpus.uni(w)
            got = tuple(v for v in self._neighbours(w) if len(v) > 2 and v not in _STOP
                        and self.corpus.uni(v) >= SIBLING_FREQ_RATIO * n and not _variant_pair(w, v))
            self._rival_cache[w] = got
        return got

    def _sibling_fix(self, i: int, words: list[str], siblings: set[str] | frozenset[str]) -> tuple[str, float] | None:
        """A word none of the image's other captions uses, while one of them uses a far commoner word one edit away
        that the corpus puts in this context far more often: "a young person ridding" when another person wrote
        "riding", "a low flying pane" when another wrote "plane"."""
        w = words[i]
        if w in _AUXILIARIES:
            return None
        c = self.corpus
        prev = words[i - 1] if i > 0 else BOS
        nxt = words[i + 1] if i + 1 < len(words) else EOS
        own = max(c.bi(prev, w) - 1, 0) + max(c.bi(w, nxt) - 1, 0)
        if own > SIBLING_MAX_OWN_CONTEXT:
            return None
        best, best_ctx = None, 0
        for v in self._sibling_rivals(w):
            if v not in siblings:
                continue
            if min(c.bi(prev, v), c.bi(v, nxt)) < 1 or c.bi(prev, v) < c.bi(prev, w) - 1 or c.bi(v, nxt) < c.bi(w, nxt) - 1:
                continue  # the sibling's word is never seen on one side, or the written word fits it better
            ctx = c.bi(prev, v) + c.bi(v, nxt)
            if ctx >= SIBLING_MIN_CONTEXT and ctx >= SIBLING_RATIO * own and ctx > best_ctx:
                best, best_ctx = v, ctx
        if best is None:
            return None
        return best, min(0.85, 0.6 + 0.02 * best_ctx / (own + 1))

    def sibling_positions(self, words: list[str], siblings: frozenset[str]) -> list[int]:
        """Positions of words no sibling uses while a sibling uses a far commoner word one edit away."""
        if not siblings:
            return []
        cache, rivals = self._candidate_rivals, self._candidate_rivals_of
        return [i for i, w in enumerate(words) if w not in siblings
                and (r := cache[w] if w in cache else rivals(w)) and not siblings.isdisjoint(r)]

    def _candidate_rivals_of(self, w: str) -> tuple[str, ...]:
        """`_sibling_rivals(w)` for a word `sibling_positions` may examine (a dictionary word of 3+ letters, not a
        stop word or auxiliary), else (); cached."""
        got = (self._sibling_rivals(w) if len(w) > 2 and w not in _STOP and w.isalpha() and w not in _AUXILIARIES
               and self.lex.known(w) else ())
        self._candidate_rivals[w] = got
        return got

    def confusion_fix(self, i: int, words: list[str]) -> tuple[str, float] | None:
        """A member of the word's confusion set that explains its two neighbours (and, for content words, the other
        words of the caption) far better, with one neighbour decisively so."""
        w = words[i]
        alts = self.sets.members.get(w)
        if alts is None:
            return None
        prev = words[i - 1] if i > 0 else BOS
        nxt = words[i + 1] if i + 1 < len(words) else EOS
        if w in self.sets.content:
            return self._confusion_fix(w, prev, nxt, alts, set(words) - _STOP - {w})
        key = (prev, w, nxt)  # a function word's verdict depends on its neighbours alone: computed once per corpus
        if key not in self._confusion_cache:
            self._confusion_cache[key] = self._confusion_fix(w, prev, nxt, alts, None)
        return self._confusion_cache[key]

    def _confusion_fix(self, w: str, prev: str, nxt: str, alts: tuple[str, ...], ctx: set[str] | None
                       ) -> tuple[str, float] | None:
        """`confusion_fix` for `w` between `prev` and `nxt`; `ctx`: the caption's other content words (content-word
        sets only, else None)."""
        base, _ = self._score(w, prev, nxt, 1)
        content = ctx is not None
        if content:
            base += self._context_score(w, ctx, 1)
        bi = self.corpus.bi
        orig_sides = (bi(prev, w) - 1, bi(w, nxt) - 1)
        best, conf = None, 0.0
        for a in alts:
            s, _support = self._score(a, prev, nxt, 0)
            if content:
                s += self._context_score(a, ctx, 0)
            delta = s - base
            # a side where the alternative is seen far more often than the written word: decisive context
            decisive = any(alt >= max(MIN_SUPPORT, DOMINANT_SIDE * max(orig, 0))
                           for orig, alt in zip(orig_sides, (bi(prev, a), bi(a, nxt))))
            need = CONTENT_THRESHOLD if content else THRESHOLD
            if delta > need and decisive and min(0.9, 0.6 + 0.06 * (delta - need)) > conf:
                best, conf = a, min(0.9, 0.6 + 0.06 * (delta - need))
        return (best, conf) if best is not None else None

    def pattern_fix(self, i: int, words: list[str]) -> str | None:
        """its/it's, then/than, to/too/two by the words around them."""
        w = words[i]
        if w not in _PATTERN_WORDS:
            return None
        prev = words[i - 1] if i > 0 else BOS
        nxt = words[i + 1] if i + 1 < len(words) else EOS
        return self._pattern(w, prev, nxt)

    def apostrophe_fix(self, i: int, words: list[str]) -> str | None:
        """A plural written as a possessive or a possessive written as a plural (see `_apostrophe`)."""
        w = words[i]
        if not w.endswith("s"):
            return None
        prev = words[i - 1] if i > 0 else BOS
        nxt = words[i + 1] if i + 1 < len(words) else EOS
        if w.endswith("'s") and prev not in _COUNTING:
            # a counting word before up to two modifiers counts the noun too ("Two black cat's", "two parking
            # meter's")
            for k in range(i - 2, max(-1, i - 4), -1):
                if words[k] in _COUNTING and all(x not in _STOP and x.isalpha() for x in words[k + 1:i]):
                    prev = words[k]
                    break
        return self._apostrophe(w, prev, nxt)

    def neighbour_fix(self, i: int, words: list[str]) -> tuple[str, float] | None:
        """At a position whose context the corpus has nowhere else: a word one edit away that the corpus uses in
        exactly this context (see `_neighbour_fix`)."""
        w = words[i]
        if len(w) < 2 or (len(w) == 2 and self.corpus.images(w) > 2) or not w.isalpha() or not self.lex.known(w):
            return None  # (unknown words are the spelling checker's)
        prev = words[i - 1] if i > 0 else BOS
        nxt = words[i + 1] if i + 1 < len(words) else EOS
        return self._neighbour_fix(w, prev, nxt)

    def _apostrophe(self, w: str, prev: str, nxt: str) -> str | None:
        """Apostrophe slips whose result is a word: "two Frisbee's" (plural written as possessive) and
        "a persons bag" (possessive written as plural), judged by how the corpus writes the same words."""
        c = self.corpus
        if (prev in ("a", "an") and w.endswith("s") and not w.endswith(("ss", "us", "is", "'s")) and len(w) > 4
                and self.lex.freq(w[:-1]) >= 500 and c.bi("a", w[:-1]) + c.bi("an", w[:-1]) >= 3
                and nxt.isalpha() and nxt not in _NOT_HEAD_NOUN and not nxt.endswith(("ing", "ed", "ly", "s"))
                and c.bi("the", nxt) + c.bi("a", nxt) >= 3 and c.bi(w, nxt) <= 2 and c.uni(w[:-1] + "'s") >= 2):
            return w[:-1] + "'s"  # "a giraffes neck", "a persons bag": "a" + plural + noun is a lost apostrophe
        if w.endswith("'s") and len(w) > 4 and (prev in _COUNTING or (
                prev in PREPOSITIONS and (nxt in PREPOSITIONS or nxt in _CLAUSE_END))):
            base = w[:-2]
            plural = base + ("es" if base.endswith(("ch", "sh", "x", "s", "z")) else "s")
            if self.lex.known(plural):
                return plural
        if (w.endswith("s") and not w.endswith(("ss", "'s")) and len(w) > 4 and nxt.isalpha()
                and c.bi(w[:-1] + "'s", nxt) >= 2 and c.bi(w, nxt) <= 1 and prev in _SINGULAR_DETERMINERS):
            return w[:-1] + "'s"
        return None

    def _pattern(self, w: str, prev: str, nxt: str) -> str | None:
        if w == "its" and nxt in _ITS_BEFORE:
            return "it's"
        if w == "it's" and prev in PREPOSITIONS and nxt.isalpha() and nxt not in _ITS_BEFORE:
            return "its"  # "with it's head": "it is" cannot follow a preposition
        if (w == "it's" and nxt not in _ITS_BEFORE and nxt.isalpha() and not nxt.endswith(("ing", "ly"))
                and self.corpus.bi("is", nxt) == 0
                and self.corpus.bi("its", nxt) + self.corpus.bi("his", nxt) + self.corpus.bi("their", nxt) >= 1):
            return "its"  # "it's wings": a word that follows possessives in the corpus but never follows "is"
        if w == "then" and prev in _COMPARATIVE:
            return "than"
        if w == "to" and prev == BOS and nxt.endswith("s") and self.corpus.bi("two", nxt) >= 2:
            return "two"  # "To skiers competing ..."
        if w == "too" and nxt in _AFTER_TO:
            return "to"
        return None
