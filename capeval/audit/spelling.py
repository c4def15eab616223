"""Spelling: a US-English dictionary (pyspellchecker's frequency list + `data/extra_words.txt`) plus corpus awareness,
with corrections ranked by edit distance, word frequency and the neighbouring words' bigram counts in the corpus."""

from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from capeval.audit.corpus import BOS, EOS, CorpusStats
from capeval.audit.finding import Finding, Token, match_case, tokenize

# Nouns whose plural is not "+s": "childs", "sheeps", "mans" are errors, not plurals.
_IRREGULAR_NOUNS = frozenset(
    "child man woman person foot tooth mouse goose sheep deer fish moose bison aircraft series species louse ox "
    "salmon trout shrimp offspring people women men children".split()
)
# pronouns take no plural: "someones" is "someone's"
_PRONOUNS = frozenset("someone anyone everyone noone nobody somebody anybody everybody one other another".split())
_INDEFINITE_PRONOUNS = frozenset("someone anyone everyone noone nobody somebody anybody everybody".split())
_SHORT_WORDS = frozenset("a i an at in on of to by up is it as or be do go he me my no so we us".split())
_FUNCTION_WORDS = frozenset("the and for with from into onto this that these those there their they them his her "
                            "its our your you are was were has have had not but out off some any all one two".split())
_PREFIXES = ("un", "re", "over", "under", "out", "non", "pre", "mis", "semi", "multi", "mini", "self", "super")
# British -> US spelling patterns, anchored where the variants differ (colour, centre, sabre, realise, analyse,
# catalogue)
_UK_US = tuple((re.compile(uk), us) for uk, us in (
    (r"our(?=s?$|ed$|ing$|ite|ful|able)", "or"), (r"(?<=[bt])re(?=s?$|d$)", "er"), (r"is(?=e[sd]?$|ing$|ation)", "iz"),
    (r"ys(?=e[sd]?$|ing$)", "yz"), (r"ogue(?=s?$)", "og"), (r"^mould", "mold")))
SHORT_WORD_MIN_COUNT = 100
SUGGEST_MIN_COUNT = 100  # rarer dictionary words (its long tail) are never suggested
# raw scores of the weaker spelling rules (the calibration fitted on the dev split turns them into confidences)
NO_CANDIDATE_CONFIDENCE = 0.45
PART_ZIPF = 2.5  # wordfreq Zipf from which a dictionary word can be one half of a solid compound ("wake"+"boarder")
FAR_MIN_LEN = 8  # an unattested word this long may be three edits from the word meant ("catheridal")
COMPOUND_CONFIDENCE = 0.45
MISSING_APOSTROPHE_ZIPF = 1.0  # "thats": the apostrophe form is this much commoner (wordfreq Zipf) than the word
_DERIVATION_SUFFIXES = ("y", "ish", "less", "like", "ness", "ed")  # productive suffixes: "douchey", "graffitied"
_WORD_SUFFIXES = ("s", "es", "ing", "er", "ers", "ly", *_DERIVATION_SUFFIXES)  # ... and inflections
# A corpus word used by at least this many images is a word, unless a dictionary word one edit away is far commoner.
MIN_IMAGES_FOR_WORD = 3
DOMINANCE = 8.0  # ... commoner by this factor (one edit away)
DOMINANCE_2 = 30.0  # ... or by this factor two edits away ("frisby" vs "frisbee")
DOMINANCE_SHORT = 100.0  # ... for words of three letters or fewer
FIRST_LETTER_MIN_LEN = 6  # a word this long with nothing one edit away may have its first letter wrong
COMMON_PART_FREQ = 20000  # a part of a solid compound no caption uses must be this common in the dictionary
COMPOUND_RIVAL_IMAGES = 20  # a word two edits from a solid "compound" that this many images use: the word meant
RUN_TOGETHER_MIN = 8  # a solid compound is a typo when the corpus writes it apart at least this often ...
RUN_TOGETHER_RATIO = 15  # ... and this many times more often than solid
RUN_ON_COMMON_PHRASE = 20  # a run-on splits into a phrase the corpus uses this often ...
RUN_ON_COMMON_DISTANCE = 0.4  # ... so it counts as this close
LM_RERANK_TOP = 8  # the caption LM re-ranks this many leading corrections ...
LM_RERANK_WINDOW = 4.0  # ... those within this score of the best (an edit costs 3)
LM_CONTEXT_WEIGHT = 0.5  # score per nat of context log-probability (chosen on the dev split)
LM_CONTEXT_CAP = 8.0  # nats: a correction the context rules out loses at most this much
SIBLING_BONUS = 1.5  # ranking bonus of a correction that another caption of the same image uses
# General English usage (wordfreq Zipf): a word people write often whose best correction is not much commoner is a
# word the dictionary lacks (slang, brands, loanwords: "sippy", "dojo", "flautist"), not a typo, whose correction
# is typically 2+ Zipf commoner ("somthing" 2.5 vs "something" 6.0).
WORD_ZIPF_MIN = 1.8  # ... for words of four letters or more
WORD_ZIPF_MIN_SHORT = 3.5  # ... for words of two or three letters ("wii", "cds")
WORD_ZIPF_GAP = 1.0  # the correction is commoner by less than this (less than 0.5 for short words) ...
WORD_ZIPF_COMMON = 3.0  # ... or the word itself is this common ("camo") and the captions do not use its correction


@dataclass(frozen=True)
class Lexicon:
    """Word -> frequency count (pyspellchecker's English word-frequency list) plus the shipped extra words."""

    counts: dict[str, int]
    extra: frozenset[str]

    def known(self, w: str) -> bool:
        """Dictionary word, or a regular inflection/possessive of one. Words of three letters or fewer must be
        in the dictionary proper with some frequency (the tail and the extras hold chat and abbreviations: "twp",
        "un"); rarer ones are words only if the corpus itself uses them widely ("tv")."""
        if len(w) <= 3:
            return self.counts.get(w, 0) >= SHORT_WORD_MIN_COUNT
        if w in self.counts or w in self.extra:
            return True
        if w.endswith("'s") or w.endswith("s'"):
            return self.known_base(w[:-2])
        if len(w) > 3 and w.endswith("s"):
            base = w[:-1]
            if self.known_base(base) and base not in _IRREGULAR_NOUNS and base not in _PRONOUNS and not (
                base.endswith("y") and base[-2:-1] not in "aeiou"
            ):
                return True
            if w.endswith("es") and self.known_base(w[:-2]) and w[:-2].endswith(("s", "x", "z", "ch", "sh", "o")):
                return True
        return False

    def known_base(self, w: str) -> bool:
        if len(w) <= 3:
            return self.counts.get(w, 0) >= SHORT_WORD_MIN_COUNT
        return w in self.counts or w in self.extra

    def freq(self, w: str) -> int:
        return self.counts.get(w, 0) + (200 if w in self.extra else 0)


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """Load the dictionary once per process (read-only data)."""
    import spellchecker

    path = Path(spellchecker.__file__).with_name("resources") / "en.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        counts: dict[str, int] = json.load(fh)
    extra_text = resources.files("capeval.audit").joinpath("data/extra_words.txt").read_text(encoding="utf-8")
    extra = frozenset(w.strip() for w in extra_text.split() if w.strip())
    return Lexicon(counts, extra)


@lru_cache(maxsize=2)
def _candidate_vocab(tail: bool = False) -> dict[tuple[str, int], list[str]]:
    """Dictionary words that may be suggested, bucketed by (first letter, length): a typo almost always keeps one
    of its first two letters in place, so a query searches a few small buckets instead of the whole dictionary.
    `tail=True`: the rare words, searched only when the common ones offer nothing."""
    lex = load_lexicon()
    if tail:
        return _bucket({w for w, n in lex.counts.items() if n < SUGGEST_MIN_COUNT and w.replace("'", "").isalpha()})
    words = [w for w, n in lex.counts.items() if n >= SUGGEST_MIN_COUNT and w.replace("'", "").isalpha()]
    words += [w for w in lex.extra if len(w) > 3]
    return _bucket(set(words))


@lru_cache(maxsize=1)
def _common_words() -> tuple[frozenset[str], str]:
    """The suggestable common words as one set, and every first letter they start with."""
    vocab = _candidate_vocab(False)
    return frozenset(w for ws in vocab.values() for w in ws), "".join(sorted({first for first, _ in vocab}))


def _first_letter_neighbours(w: str) -> list[str]:
    """The common words one edit from `w` that start with neither of its first two letters: only a replaced or an
    inserted first letter can do that (deleting or swapping it leaves `w[1]` in front), so the ~50 such strings are
    looked up instead of searching every other letter's buckets."""
    words, firsts = _common_words()
    out = []
    for x in firsts:
        if x in w[:2]:
            continue
        for c in (x + w[1:], x + w):
            if c in words:
                out.append(c)
    return out


def _bucket(words: set[str] | list[str]) -> dict[tuple[str, int], list[str]]:
    buckets: dict[tuple[str, int], list[str]] = {}
    for w in words:
        buckets.setdefault((w[0], len(w)), []).append(w)
    return buckets


_SOUND_MAP = str.maketrans({"c": "k", "q": "k", "z": "s", "v": "f"})


@lru_cache(maxsize=100_000)
def _missing_apostrophe(w: str) -> str | None:
    """The apostrophe form of `w` when it is far commoner in English (wordfreq) than `w` written without it."""
    if "'" in w or len(w) < 4:
        return None
    from wordfreq import zipf_frequency

    own = zipf_frequency(w, "en")
    for i in range(len(w) - 3, len(w)):
        v = f"{w[:i]}'{w[i:]}"
        if v[i + 1:] in ("s", "t", "ll", "re", "ve", "d", "m") and zipf_frequency(v, "en") - own >= MISSING_APOSTROPHE_ZIPF:
            return v
    return None


@lru_cache(maxsize=10_000)
def _english_lemma(w: str) -> bool:
    """lemminflect knows `w` as a form of an English word ("cant", "wont", "lets" do; "thats", "whats" do not)."""
    import lemminflect

    return bool(lemminflect.getAllLemmas(w))


def _zipf(w: str) -> float:
    """wordfreq's Zipf frequency of a lower-case word (a dictionary look-up: `zipf_frequency` tokenizes each
    query first, which costs more than the whole type decision)."""
    from wordfreq import get_frequency_dict

    f = get_frequency_dict("en").get(w, 0.0)
    return math.log10(f) + 9.0 if f > 0 else 0.0


def sound_key(w: str) -> str:
    """A crude sounds-like key (consonant skeleton): "frisby" and "frisbee" -> "frsb", "feilds"/"fields" -> "flds"."""
    w = w.lower().replace("ph", "f").replace("ck", "k").translate(_SOUND_MAP)
    head, rest = w[:1], w[1:]
    return _squeeze(head + "".join(ch for ch in rest if ch not in "aeiouyhw'"))


def _squeeze(w: str) -> str:
    out = []
    for ch in w:
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Candidate:
    word: str
    distance: float
    prior: float  # log-frequency score


_ACRONYM_PLURAL = re.compile(r"[A-Z]{2,5}'?s")


def _title_case(tokens: list[Token]) -> bool:
    """Most words capitalised ("A Man Riding A Horse"): capitals then say nothing about names."""
    alpha = [t for t in tokens if t.text[:1].isalpha()]
    return len(alpha) >= 3 and sum(t.text[:1].isupper() for t in alpha) >= 0.6 * len(alpha)


class SpellingChecker:
    """Type-level decisions (cached) and occurrence-level ranking of corrections for one corpus."""

    def __init__(self, corpus: CorpusStats, lexicon: Lexicon | None = None) -> None:
        self.corpus = corpus
        self.lex = lexicon or load_lexicon()
        self._decision: dict[str, list[Candidate] | None] = {}
        self._ok: set[str] = set()  # words decided to be fine (fast path: most captions have only these)
        self._decided: set[str] = set()  # words whose one correction is decided (a missing apostrophe, a y-plural)
        self._corpus_vocab: dict[tuple[str, int], list[str]] | None = None
        self._pools: dict[tuple[str, int, int, bool], list[str]] = {}

    # -- type level -------------------------------------------------------------------------------------------
    def is_word(self, w: str) -> bool:
        return self.decide(w) is None

    def decide(self, w: str) -> list[Candidate] | None:
        """None when `w` is a word; otherwise its correction candidates, best first (maybe empty)."""
        if w in self._decision:
            return self._decision[w]
        result: list[Candidate] | None
        if w.endswith("s") and w[:-1] in _INDEFINITE_PRONOUNS:
            # "someones": dictionaries list it (chat text), but an indefinite pronoun has no plural
            result = [Candidate(w[:-1] + "'s", 0.5, self._prior(w[:-1]))]
        elif (fixed := _missing_apostrophe(w)) is not None and (not self.lex.known(w) or not _english_lemma(w)):
            self._decided.add(w)  # (no sibling word competes with the correction)
            result = [Candidate(fixed, 0.5, self._prior(fixed))]  # "dont", and "thats" which the dictionary lists
            # but English does not have (a real word such as "cant" is a real-word slip:
            # rules.real_word.missing_apostrophe)
        elif (fixed := self._y_plural(w)) is not None:
            self._decided.add(w)
            result = [Candidate(fixed, 0.5, self._prior(fixed))]  # "flys", "dinghys": flies, dinghies
        elif self.lex.known(w) and not self._web_run_together(w):
            result = None
        elif ((split := self._compound_split(w)) is not None and not self._written_apart(w, split[2])
              and self._plausible_compound(w, split[0], split[1])):
            # two words written solid that the corpus does not mostly write apart, and no caption word one edit
            # away ("sandwhich", "pinapple" are typos): "kitesurfer", "skylit", "litterbox", "placemat"
            result = None
        elif (len(w) > 3 and w.endswith("s") and w[:-1] not in _IRREGULAR_NOUNS and w[:-1] not in _PRONOUNS
              and self._corpus_word(w[:-1])):
            result = None  # plural of a corpus word: "entrees", "skateparks"
        elif self._derived_or_variant(w) or self._agentive(w):
            result = None  # "unmowed", "overbaked", "mouldings"; "parachuter", "surfboarders"
        else:
            cands = self._candidates(w)
            n_img = self.corpus.images(w)
            result = cands
            if n_img >= MIN_IMAGES_FOR_WORD and self._corpus_word(w, cands):
                result = None
            elif self._in_general_use(w, cands):
                result = None
        self._decision[w] = result
        if result is None:
            self._ok.add(w)
        return result

    def _web_run_together(self, w: str) -> bool:
        """A word only the web-derived list holds (not the base dictionary) that is two words the corpus writes apart
        almost always ("icecream": "ice cream" 25 times, solid once): the list took a common web misspelling."""
        return (w in self.lex.extra and (split := self._compound_split(w)) is not None
                and self._written_apart(w, split[2]))

    def _y_plural(self, w: str) -> str | None:
        """The -ies form when `w` is a consonant + y word with a bare -s ("flys", "dinghys", "babys"): a form English
        does not have, even where captions repeat it."""
        if len(w) >= 4 and w.endswith("ys") and w[-3] not in "aeiouy" and not self.lex.known(w) \
                and self.lex.known_base(w[:-1]) and self.lex.known(fixed := w[:-2] + "ies"):
            return fixed
        return None

    def _plausible_compound(self, w: str, a: str, b: str) -> bool:
        """`a` + `b` written solid reads as a compound of caption words, not a typo: both parts are words captions
        use or the dictionary holds as common ("sand" + "les", "nigh" + "time" are neither), no caption word is one edit away ("sandwhich"), and no
        common caption word is within two ("surferboard": surfboard)."""
        images = self.corpus.images

        def caption_word(x: str) -> bool:
            return images(x) > 0 or self.lex.freq(x) >= COMMON_PART_FREQ or (x.endswith("s") and images(x[:-1]) > 0)

        if not (caption_word(a) and caption_word(b)):
            return False
        return not any(" " not in c.word and (
            (c.distance <= 1 and images(c.word) >= MIN_IMAGES_FOR_WORD)
            or (c.distance < 2 and images(c.word) >= COMPOUND_RIVAL_IMAGES)) for c in self._candidates(w))

    def _derived_or_variant(self, w: str) -> bool:
        """A productive prefix on a known word ("un"+"mowed", "over"+"baked") or a British spelling of a known US
        word ("mouldings", "colour", "centre", "realise"): real words a dictionary list need not hold."""
        for p in _PREFIXES:
            if w.startswith(p) and len(w) - len(p) >= 4 and self.lex.freq(w[len(p):]) >= 1000:
                return True
        for suf in _DERIVATION_SUFFIXES:
            base = w[:-len(suf)]
            if (w.endswith(suf) and len(base) >= 5 and self.lex.freq(base) >= 1000 and base[-1] != base[-2]
                    and not any(c.distance <= 1 and c.word != base and self.corpus.images(c.word) >= MIN_IMAGES_FOR_WORD
                                for c in self._candidates(w))):
                return True  # a derivation of a common word, and no other caption word one edit away
        for uk, us in _UK_US:
            variant = uk.sub(us, w, count=1)
            if variant != w and self.lex.known(variant):
                return True
        return False

    def _agentive(self, w: str) -> bool:
        """An agent noun of a common word or corpus word ("parachute" -> "parachuter", "surfboard" -> "surfboarders",
        "motorcycle" -> "motorcyclers"): productive -er derivations a dictionary list need not hold."""
        stem = w[:-1] if w.endswith("s") else w
        if stem.endswith("er") and len(stem) >= 7:
            for base in (stem[:-2], stem[:-1]):  # "surfboard"+"er", "parachute"+"r"
                if len(base) >= 5 and base[-1:] != base[-2:-1] and (
                        self.lex.freq(base) >= 1000 or (self.lex.known_base(base) and self.corpus.images(base) >= 3)
                        or self.corpus.images(base) >= 10):
                    return True
        return False

    def _in_general_use(self, w: str, cands: list[Candidate]) -> bool:
        """Common in general English (wordfreq Zipf), its best single-word correction not much commoner there, and
        not a rarer spelling of a word the captions use far more ("frisby" beside "frisbee", "mits" beside "mitts")."""
        best = cands[0].word if cands else None
        if best is not None and (" " in best or "'" in best):
            return False  # a run-on or a missing apostrophe ("alot", "thats") is the likelier reading
        short = len(w) <= 3
        if not short and any(c.distance <= 1.5 and " " not in c.word and self.corpus.uni(c.word) >= DOMINANCE * max(
                1, self.corpus.uni(w)) for c in cands):
            return False  # a close word the captions use far more ("frisbee" beside "frisby", whose best is "frisky")
        own = _zipf(w)
        if own < (WORD_ZIPF_MIN_SHORT if short else WORD_ZIPF_MIN):
            return False
        if best is None:
            return True
        if short:
            return _zipf(best) - own < WORD_ZIPF_GAP / 2
        return own >= WORD_ZIPF_COMMON or _zipf(best) - own < WORD_ZIPF_GAP

    def _corpus_word(self, w: str, cands: list[Candidate] | None = None) -> bool:
        """Corpus awareness: used by several images and no much commoner spelling one edit away ("skiis" vs "skis");
        a closed compound is not a misspelling of its spaced form ("skatepark")."""
        if self.lex.known(w):
            return True
        if self.corpus.images(w) < MIN_IMAGES_FOR_WORD:
            return False
        if cands is None:
            cands = self._candidates(w)
        own = self.corpus.uni(w)
        for c in cands:
            if not c.word.isalpha() or c.distance > 2:
                continue
            # short words sit one edit from many others ("tv", "to"): only an overwhelming rival counts ("teh")
            need = DOMINANCE_SHORT if len(w) <= 3 else DOMINANCE if c.distance <= 1 else DOMINANCE_2
            if self._corpus_freq(c.word) >= need * own:
                return False
        return True

    def _corpus_freq(self, w: str) -> int:
        if " " in w:
            return min(self.corpus.uni(p) for p in w.split())
        return self.corpus.uni(w)

    def _prior(self, w: str) -> float:
        if " " in w:
            return min(self._prior(p) for p in w.split()) - 0.5
        return 0.3 * math.log10(1 + self.lex.freq(w)) + 0.6 * math.log10(1 + self.corpus.uni(w))

    def _corpus_words(self) -> dict[tuple[str, int], list[str]]:
        if self._corpus_vocab is None:
            # inflections the dictionary lacks ("frisbees"), used across several images
            self._corpus_vocab = _bucket([
                w for w, n in self.corpus.word_image_items()
                if n >= MIN_IMAGES_FOR_WORD and w.isalpha() and not self.lex.known_base(w) and self.lex.known(w)
            ])
        return self._corpus_vocab

    def _pool(self, first: str, n: int, max_d: int, tail: bool) -> list[str]:
        """The words a typo of length `n` starting with `first` is searched among (the dictionary's common words and
        the corpus's inflections, or the dictionary's rare tail), built once per bucket and kept."""
        key = (first, n, max_d, tail)
        pool = self._pools.get(key)
        if pool is None:
            vocab = _candidate_vocab(tail)
            corpus_vocab = self._corpus_words()
            pool = []
            for L in range(max(1, n - max_d), n + max_d + 1):
                pool += vocab.get((first, L), ())
                if not tail:
                    pool += corpus_vocab.get((first, L), ())
            self._pools[key] = pool
        return pool

    def _candidates(self, w: str) -> list[Candidate]:
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        max_d = 1 if len(w) <= 5 else 2
        found: dict[str, float] = {}
        for vocab_tail in (False, True):
            for first in dict.fromkeys(w[:2]):
                pool = self._pool(first, len(w), max_d, vocab_tail)
                for cand, dist, _ in process.extract(w, pool, scorer=OSA.distance, score_cutoff=max_d, limit=60):
                    d = float(dist)
                    if _squeeze(cand) == _squeeze(w):
                        d -= 0.5  # doubled/undoubled letters: "skiier", "tatttoos"
                    found[cand] = min(found.get(cand, 9.0), d)
                if found:
                    break  # the second letter's buckets only when the first letter itself may be the typo
            if found:
                break  # the dictionary's rare tail only when nothing common is close
        if len(w) >= FIRST_LETTER_MIN_LEN and min(found.values(), default=9.0) > 1:
            # nothing one edit away keeps the first letters: the first letter itself may be the slip
            # ("enscription" -> inscription): a common word with another first letter one edit away
            for cand in _first_letter_neighbours(w):
                found[cand] = min(found.get(cand, 9.0), 1.0)
        found = {c: d for c, d in found.items() if c.isascii() and c != w}
        # run-ons: "witha" -> "with a", "infront" -> "in front"
        for i in range(1, len(w)):
            a, b = w[:i], w[i:]
            if self._common(a) and self._common(b):
                # a phrase the captions use all the time ("a room", "with a") is the likelier reading of a run-on
                found[f"{a} {b}"] = RUN_ON_COMMON_DISTANCE if self.corpus.bi(a, b) >= RUN_ON_COMMON_PHRASE else 1.2
        # missing apostrophe: "dont" -> "don't", "womens" -> "women's"
        for i in range(1, len(w)):
            c = f"{w[:i]}'{w[i:]}"
            if self.lex.known(c):
                found[c] = 0.5
        key = sound_key(w)
        for c in found:
            if " " not in c and sound_key(c) == key:
                found[c] -= 0.3  # sounds like the typo: "frisby" -> "frisbee" rather than "frisky"
        plural = w.endswith("s") and not w.endswith("ss")
        # a typo keeps its inflection: "blankes" -> "blankets" rather than "blanket"
        cands = [Candidate(c, d - (0.2 if c.endswith("s") == plural else 0.0), self._prior(c))
                 for c, d in found.items()]
        cands.sort(key=lambda c: (-(self._score(c)), c.word))
        return cands[:20]

    def _unattested(self, w: str) -> bool:
        """No trace of `w` in English: wordfreq has never seen it, fewer than three images use it, and it is neither
        two common words written solid ("wakeboarder"; not "breast"+"eses") nor a prefix or suffix on a dictionary
        word ("unbagged", "graffitied")."""
        if len(w) < 5 or _zipf(w) > 0 or self.corpus.images(w) >= MIN_IMAGES_FOR_WORD:
            return False
        known = self.lex.known
        part = self._solid_part
        if any(part(w[:i]) and part(w[i:]) for i in range(3, len(w) - 2)):
            return False
        if any(w.startswith(p) and known(w[len(p):]) for p in _PREFIXES):
            return False
        return not any(w.endswith(s) and len(w) - len(s) >= 3 and known(w[:-len(s)]) for s in _WORD_SUFFIXES)

    def _solid_part(self, w: str) -> bool:
        """A dictionary word common enough in English (wordfreq) to be one half of a solid compound ("wake",
        "skiers"; not "eses")."""
        return self.lex.known(w) and _zipf(w) >= PART_ZIPF

    def _far_correction(self, w: str) -> str | None:
        """The commonest caption word three edits from a long unattested word that keeps its first letter
        ("catheridal" -> "cathedral"); None for shorter words or when none is."""
        if len(w) < FAR_MIN_LEN:
            return None
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        vocab = _candidate_vocab(False)
        pool = [c for L in range(len(w) - 3, len(w) + 4) for c in vocab.get((w[0], L), ())
                if self.corpus.images(c) >= MIN_IMAGES_FOR_WORD]
        near = [c for c, _, _ in process.extract(w, pool, scorer=OSA.distance, score_cutoff=3, limit=None)]
        return max(near, key=lambda c: (self._prior(c), c), default=None)

    def _hyphen_compound_known(self, text: str, tok: Token) -> bool:
        """The token is one part of a hyphenated word ("zig-zag") whose parts joined are a known word."""
        a, b = tok.start, tok.end
        if not (text[a - 1:a] == "-" or text[b:b + 1] == "-"):
            return False
        while a > 0 and (text[a - 1].isalpha() or (text[a - 1] == "-" and a > 1 and text[a - 2].isalpha())):
            a -= 1
        while b < len(text) and (text[b].isalpha() or (text[b] == "-" and b + 1 < len(text) and text[b + 1].isalpha())):
            b += 1
        joined = text[a:b].replace("-", "").lower()
        return joined != tok.lower and self.lex.known(joined)

    def _compound_split(self, w: str) -> tuple[str, str, int] | None:
        """The split of `w` into two common content words (3+ letters, no function word, no -ing/-ed part) whose
        spaced form the corpus uses most, with that count (singular or plural second part); None if none."""
        best = None
        for i in range(3, len(w) - 2):
            a, b = w[:i], w[i:]
            if (self._part(a) and self._part(b) and a not in _FUNCTION_WORDS and b not in _FUNCTION_WORDS
                    and not a.endswith(("ing", "ed")) and not b.endswith("ed")):
                n = self.corpus.bi(a, b) + self.corpus.bi(a, b + "s")
                if best is None or n > best[2]:
                    best = (a, b, n)
        return best

    def _solid_compound(self, w: str) -> bool:
        """Two content words of 3+ letters written as one, neither a function word nor an -ing/-ed form, whose spaced
        form the corpus uses too ("stove top" -> "stovetop"; not "sand which")."""
        for i in range(3, len(w) - 2):
            a, b = w[:i], w[i:]
            if (self._common(a) and self._common(b) and a not in _FUNCTION_WORDS and b not in _FUNCTION_WORDS
                    and not a.endswith(("ing", "ed")) and not b.endswith(("ing", "ed"))
                    and self.corpus.bi(a, b) + self.corpus.bi(a, b + "s") >= 2):
                return True
        return False

    def _written_apart(self, w: str, spaced: int) -> bool:
        """The corpus writes this compound apart almost always ("ice cream" vs "icecream"): solid is a typo."""
        return spaced >= RUN_TOGETHER_MIN and spaced >= RUN_TOGETHER_RATIO * max(1, self.corpus.uni(w))

    def _part(self, w: str) -> bool:
        """A word that can be one part of a closed compound: known, 3+ letters, not from the dictionary's rare tail."""
        return self._common(w) or (len(w) >= 3 and self.lex.known(w) and self.lex.freq(w) >= 1000)

    def _common(self, w: str) -> bool:
        if len(w) <= 2:
            return w in _SHORT_WORDS
        return self.lex.freq(w) >= 20000 or self.corpus.images(w) >= 50

    @staticmethod
    def _score(c: Candidate, ctx: float = 0.0) -> float:
        # edit distance first, frequency next; neighbours' bigram counts break near-ties, they do not override
        return -3.0 * c.distance + c.prior + 0.3 * min(math.log1p(ctx), 5.0)

    # -- occurrence level -------------------------------------------------------------------------------------
    def rank(self, cands: list[Candidate], prev: str, nxt: str,
             siblings: frozenset[str] | set[str] = frozenset(), context=None) -> list[tuple[Candidate, float]]:
        """Re-rank a word's candidates with the corpus bigram counts of its neighbours and the other captions of the
        same image: several people described one picture, so a correction one of them wrote is the likelier one.
        `context(words) -> ln P` (the caption LM around the word) re-ranks the leading candidates."""
        bi = self.corpus.bi
        scored = []
        for c in cands:
            parts = c.word.split()
            ctx = bi(prev, parts[0]) + bi(parts[-1], nxt)
            bonus = SIBLING_BONUS if any(p in siblings for p in parts if len(p) > 2) else 0.0
            scored.append((c, self._score(c, ctx) + bonus))
        scored.sort(key=lambda t: (-t[1], t[0].word))
        if context is not None and len(scored) > 1:
            head = [t for t in scored[:LM_RERANK_TOP] if t[1] >= scored[0][1] - LM_RERANK_WINDOW]
            if len(head) > 1:
                lp = context([c.word for c, _ in head])
                top = max(lp)
                head = [(c, sc + LM_CONTEXT_WEIGHT * max(lp_c - top, -LM_CONTEXT_CAP)) for (c, sc), lp_c in zip(head, lp)]
                scored = sorted(head, key=lambda t: (-t[1], t[0].word)) + scored[len(head):]
        return scored

    def _sibling_candidates(self, w: str, cands: list[Candidate], siblings: set[str]) -> list[Candidate]:
        """Words of the image's other captions within two edits of a non-word (one for short words), or sounding
        the same, that the dictionary search missed: "freesby" -> the "frisbee" the others wrote."""
        from rapidfuzz.distance import OSA

        have = {c.word for c in cands}
        max_d = 1 if len(w) <= 4 else 2
        key = sound_key(w) if len(w) >= 5 else None
        extra = []
        for v in siblings:
            if v in have or len(v) <= 2 or not v.isalpha() or not self.lex.known(v):
                continue
            if abs(len(v) - len(w)) <= max_d and (d := OSA.distance(w, v, score_cutoff=max_d)) <= max_d:
                extra.append(Candidate(v, float(d), self._prior(v)))
            elif key is not None and sound_key(v) == key and v[0] == w[0]:
                extra.append(Candidate(v, 2.0, self._prior(v)))  # sounds the same: "freesby" / "frisbee"
        return cands + extra if extra else cands

    def check(self, caption_id: str, image_id: str, text: str, words: list[str],
              siblings: set[str] | frozenset[str] = frozenset(), context=None) -> list[Finding]:
        """Findings for one caption; `siblings` = the words of the other captions of the same image; `context(i,
        replacements) -> ln P` scores corrections of word i in the caption (the caption LM), when given."""
        out: list[Finding] = []
        ok = self._ok
        if ok.issuperset(words):
            return out
        decide = self.decide
        tokens: list[Token] | None = None
        caps: bool | None = None
        for i, w in enumerate(words):
            if w in ok or len(w) < 2 or not w[0].isalpha():
                continue
            cands = decide(w)
            if cands is None:
                continue
            if tokens is None:
                tokens = tokenize(text)
            tok = tokens[i]
            if len(w) <= 3 and tok.start > 0 and (text[tok.start - 1].isdigit() or (
                    i > 0 and tokens[i - 1].text[-1:].isdigit())):
                continue  # after a number: an ordinal or a unit ("2nd", "4th", "10mm", "5 pm")
            if caps is None:
                caps = text.isupper() and len(words) >= 4  # an ALL CAPS caption: capitals say nothing
            if (tok.text.isupper() and len(tok.text) <= 5 and not caps) or (
                    _ACRONYM_PLURAL.fullmatch(tok.text) and not caps) or (
                any(ch.isupper() for ch in tok.text[1:]) and not tok.text.isupper()
            ):
                continue  # acronyms and brand spellings: KLM, ATV, TVs, iPod
            if i > 1 and tok.text[:1].isupper() and tokens[i - 1].text[:1].isupper() and not _title_case(tokens):
                continue  # a capitalised word after another one mid-caption: part of a name ("Queens Bl", "PUSHKIN Str")
            if self._hyphen_compound_known(text, tok):
                continue  # one part of a hyphenated word English writes as one ("zig-zag": zigzag)
            prev = tokens[i - 1].lower if i > 0 else BOS
            nxt = tokens[i + 1].lower if i + 1 < len(tokens) else EOS
            if siblings and w not in self._decided:
                cands = self._sibling_candidates(w, cands, siblings)
            ranked = self.rank(cands, prev, nxt, siblings,
                               None if context is None else (lambda reps, i=i: context(i, reps)))
            best = ranked[0] if ranked else None
            if i > 0 and tok.text[:1].isupper() and not _title_case(tokens) and (
                best is None or best[0].distance > 1 or best[0].word[:1] != w[:1] or (
                    "'" not in best[0].word and self.corpus.images(best[0].word.split()[0]) < 5)
            ):
                continue  # a capitalised unknown word with no common caption word one edit away that keeps its
                # first letter: a name (Haight, a Woodie)
            conf = 0.95 if self.corpus.images(w) < MIN_IMAGES_FOR_WORD else 0.8
            suggestion = None
            rule = "spelling.unknown_word"
            if best is None:
                rule = "spelling.no_close_word"
                # nothing known is within two edits: more often a rare real word (heterochromia) than a typo,
                # unless English has no trace of it (`_unattested`: "catheridal", "breasteses")
                conf = NO_CANDIDATE_CONFIDENCE
                if tok.text.islower() and self._unattested(w):
                    rule = "spelling.no_close_word.unattested"
                    far = self._far_correction(w)
                    suggestion = None if far is None else match_case(tok.text, far)
            elif self._solid_compound(w):
                split = self._compound_split(w)
                if split is not None and split[2] >= RUN_TOGETHER_MIN and split[2] >= RUN_TOGETHER_RATIO * max(
                        1, self.corpus.uni(w)):
                    # the corpus writes it apart almost always: "firehydrant", "teddybear", "traintracks"
                    conf, rule = 0.75, "spelling.run_together"
                    suggestion = match_case(tok.text, f"{split[0]} {split[1]}")
                else:
                    # two content words written solid (stovetop, racecar): a style choice more often than an error
                    conf, rule = COMPOUND_CONFIDENCE, "spelling.solid_compound"
                    suggestion = match_case(tok.text, best[0].word)
            if best is not None and rule == "spelling.unknown_word":
                margin = best[1] - ranked[1][1] if len(ranked) > 1 else 3.0
                suggestion = match_case(tok.text, best[0].word)
                if best[0].distance >= 2:
                    conf -= 0.1
                if margin < 0.5:
                    conf -= 0.1
            out.append(Finding(caption_id, image_id, "spelling", tok.start, tok.end, text[tok.start:tok.end],
                               suggestion, rule, round(conf, 3)))
        return out
