"""Real-word error candidates and their context scores: is a correctly spelled word the wrong word?

For a word of a caption, `CandidateIndex` proposes real words the writer may have meant: one edit away (with
keyboard-neighbour slips marked), two edits away for longer words, the same sound (a phonetic key), an apostrophe
form (its/it's, whose/who's, drivers/driver's), two words run together or one word split, and the near-spellings
used by the other captions of the same image. Each candidate sentence is scored against the original as posterior
log-odds of a noisy channel:

    log_ratio = [ln P_LM(with candidate) - ln P_LM(original)]        over the n-gram window the change touches
              + sibling evidence                                      the other captions use one word or the other
              + ln P(this kind of slip)                               the channel prior of the mechanism

and a token is reported when its best candidate reaches the threshold. Only suspicious tokens are examined: the
model has not seen the token with its left neighbour, or with both neighbours, at least twice (n-grams seen once are
pruned from the model), or the token has an apostrophe form. The candidates of every vocabulary word are computed
when the model is built and shipped with it (`candidate_table`), and all candidates of a batch of captions are scored
in one vectorised LM call.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

from capeval.audit.lm import CaptionLM, pack_rows, with_id_at

MECHANISMS = ("apostrophe", "keyboard", "edit1", "sound", "edit2", "merge", "split")
# ln P(slip of this kind | the candidate was meant), per candidate. Real-word slips are rare (a few in a hundred
# captions, so about one token in a thousand) and spread over many candidates; apostrophe and run-together slips
# are the commonest kinds in crowd-written captions, two-edit slips the rarest.
PRIOR = {
    "apostrophe": math.log(1e-2),
    "merge": math.log(1e-3),
    "keyboard": math.log(1e-3),
    "edit1": math.log(1e-3),
    "sound": math.log(5e-4),
    "split": math.log(1e-4),
    "edit2": math.log(1e-5),
}
MAX_CANDIDATES = 16  # per word, the most frequent ones (the index is cached per word)
MAX_PER_MECHANISM = {"edit2": 4, "sound": 6}  # the rarer kinds of slip get fewer of those places
SUSPECT_ORDER = 3  # examine a token unless the model saw it with both neighbours (3) / its right neighbour (2)
SIBLING_CAP = math.log(200.0)  # bound on the evidence from the other captions of the image
TOPIC_WEIGHT = 0.5  # weight of the rest of the caption's words (naive Bayes over co-occurrence; chosen on dev)
TOPIC_CAP = math.log(20.0)  # bound on that evidence, before the weight
TOPIC_SMOOTHING = 1.0  # pseudo-count of a word pair: a pair of rare words seen once (pruned) or never says little
TOPIC_MIN_DISTANCE = 2  # context words at least this far from the slip (the neighbours are the n-gram model's)
TOPIC_MECHANISMS = frozenset(("keyboard", "edit1", "sound", "edit2"))  # slips that change which word it is
TOPIC_BOUND = TOPIC_WEIGHT * TOPIC_CAP
EXTRA_BOUND = SIBLING_CAP + TOPIC_BOUND  # the most the evidence beyond the n-gram window can add
DEFAULT_THRESHOLD = 3.0  # posterior log-odds; chosen on the dev split (see data/lm.README.md)
EDIT2_MIN_LEN = 6  # two-edit candidates only for words this long (both of them)
SIBLING_EDIT2_MIN_LEN = 4  # ... or this long when a sibling caption uses the candidate
MIN_LM_COUNT = 3  # a candidate the LM knows must be this common in the training captions
MIN_ZIPF = 3.5  # ... or, outside the LM vocabulary, this common in wordfreq
WORDFREQ_TOP = 40000  # dictionary: the LM vocabulary plus this many of wordfreq's commonest English words
WORD_ZIPF = 3.0  # a token outside the LM vocabulary is a real word (worth candidates) from this wordfreq zipf on
VOCAB_WORD_ZIPF = 2.0  # a vocabulary word is a real word from this zipf on, or when captions use it this often:
VOCAB_WORD_COUNT = 20  # ... (a misspelling captions repeat, "skiis", is the spelling checker's, not a real word)
# A contraction is judged in its full form: writers often put "it's" for "its" (and "who's" for "whose"), so the
# training captions teach the model the slip; "it is head" is what the model must judge, and it knows better.
# (Expanding the training captions too would carry the slips over to "it is head": measured worse on dev.)
CONTRACTIONS = {
    "it's": "it is", "that's": "that is", "there's": "there is", "here's": "here is", "what's": "what is",
    "who's": "who is", "he's": "he is", "she's": "she is", "where's": "where is", "let's": "let us",
    "they're": "they are", "you're": "you are", "we're": "we are", "i'm": "i am", "i've": "i have",
    "you've": "you have", "we've": "we have", "they've": "they have", "i'll": "i will", "you'll": "you will",
    "he'll": "he will", "she'll": "she will", "we'll": "we will", "they'll": "they will", "it'll": "it will",
    "can't": "can not", "don't": "do not", "doesn't": "does not", "didn't": "did not", "isn't": "is not",
    "aren't": "are not", "wasn't": "was not", "weren't": "were not", "won't": "will not", "hasn't": "has not",
    "haven't": "have not", "couldn't": "could not", "wouldn't": "would not", "shouldn't": "should not",
}
_WORD = re.compile(r"^[a-z]+(?:'[a-z]+)?$")
_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, frozenset[str]]:
    pos = {ch: (r, c + 0.5 * r) for r, row in enumerate(_KEY_ROWS) for c, ch in enumerate(row)}
    return {a: frozenset(b for b, (r2, c2) in pos.items() if b != a and abs(r - r2) <= 1 and abs(c - c2) <= 1.0)
            for a, (r, c) in pos.items()}


KEYBOARD = _keyboard_neighbours()


@dataclass(frozen=True, slots=True)
class RealWordHit:
    """A token (or, for `merge`, the tokens `index`..`end`-1) that reads as a slip for `suggestion`."""

    index: int
    original: str
    suggestion: str
    log_ratio: float  # posterior log-odds: LM window ratio + sibling evidence + channel prior
    mechanism: str
    end: int  # one past the last original token replaced
    lm_log_ratio: float
    sibling_log_ratio: float
    topic_log_ratio: float = 0.0  # the rest of the caption's words (`topic_evidence`), weighted


# ---------------------------------------------------------------- string helpers


_SOUND_SPELLINGS = (("tch", "ch"), ("ph", "f"), ("ck", "k"), ("dg", "j"), ("sch", "sk"), ("qu", "kw"), ("x", "ks"),
                    ("th", "0"), ("sh", "x"), ("ch", "x"))
_SOFT_C = re.compile(r"c(?=[eiy])")
_INNER_GH = re.compile(r"(?<=.)gh")
_SILENT = re.compile(r"(?<=[aeiouy])w|h")
_VOWELS = re.compile(r"[aeiouy]+")
_DOUBLE = re.compile(r"(.)\1+")


@lru_cache(maxsize=1 << 17)
def sound_key(word: str) -> str:
    """A coarse phonetic key (Metaphone-like): consonants with common English spellings of one sound merged, each
    vowel group one '*', so threw/through, there/their, whose/who's, desert/dessert share a key."""
    w = word.replace("'", "")
    for a, b in _SOUND_SPELLINGS:
        w = w.replace(a, b)
    if w[:2] in ("kn", "gn", "wr"):
        w = w[1:]
    elif w[:2] == "wh":
        w = "w" + w[2:]
    w = _SOFT_C.sub("s", w).replace("c", "k").replace("q", "k").replace("z", "s")
    w = _INNER_GH.sub("", w)
    if len(w) > 2 and w.endswith("e"):
        w = w[:-1]
    w = w[:1] + _SILENT.sub("", w[1:])
    return _DOUBLE.sub(r"\1", _VOWELS.sub("*", w))


def _is_keyboard_slip(orig: str, cand: str) -> bool:
    """`orig` is `cand` with one key replaced by a neighbouring key, or with a neighbouring key (or the same key
    again) pressed next to a letter."""
    if len(orig) == len(cand):
        diff = [i for i in range(len(orig)) if orig[i] != cand[i]]
        return len(diff) == 1 and orig[diff[0]] in KEYBOARD.get(cand[diff[0]], ())
    if len(orig) == len(cand) + 1:
        for i in range(len(orig)):
            if orig[:i] + orig[i + 1:] == cand:
                extra = orig[i]
                near = {orig[i - 1] if i else "", orig[i + 1] if i + 1 < len(orig) else ""} - {""}
                return any(extra == n or extra in KEYBOARD.get(n, ()) for n in near)
    return False


def _apostrophe_key(word: str) -> str:
    w = word.replace("'", "")
    return w[:-1] if len(w) > 2 and w.endswith("e") else w


def _osa(a: str, b: str) -> int:
    """Optimal-string-alignment distance (Levenshtein with adjacent transpositions)."""
    return OSA.distance(a, b)


@lru_cache(maxsize=1 << 16)
def _lemmas(word: str) -> frozenset[str]:
    from lemminflect import getAllLemmas

    out = {word}
    for forms in getAllLemmas(word).values():
        out.update(forms)
    return frozenset(out)


def _form_pair(a: str, b: str) -> bool | None:
    """True/False when spelling alone says whether a and b are two forms of one word, None when it does not."""
    if "'" in a or "'" in b:
        return False  # an apostrophe form (driver/driver's) is no variant: it is a real-word matter
    if {a, b} == {"a", "an"}:
        return True
    short, long_ = sorted((a, b), key=len)
    if len(short) < 3:
        return None  # i/is, a/as, be/bed: a short word plus a letter is usually another word (lemminflect decides)
    suffix = long_[len(short):] if long_.startswith(short) else None
    if suffix in ("s", "es", "ed", "ing", "er", "est", "ly") or (suffix in ("r", "d") and short.endswith("e")):
        return not (long_ == short + "s" and short.endswith("s"))  # bus/buss are two words
    return None  # (chai/chair, ban/band: a letter that is no suffix there; lemminflect decides)


def _variant(a: str, b: str) -> bool:
    """Two forms of one word (dog/dogs, sit/sat, woman/women, a/an): a grammar matter, not a real-word slip
    (lemminflect decides what spelling cannot)."""
    pair = _form_pair(a, b)
    return bool(_lemmas(a) & _lemmas(b)) if pair is None else pair


def lemma_groups(vocab: Sequence[str]) -> np.ndarray:
    """Per word, the smallest index of a word sharing a lemma with it, transitively (lemminflect), so that two
    vocabulary words are forms of one word when their groups are equal (shipped, so that scoring needs no
    lemmatizer)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for w in vocab:
        for lemma in sorted(_lemmas(w) if _WORD.match(w) else {w}):
            ra, rb = find(w), find(lemma)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    first: dict[str, int] = {}
    out = np.zeros(len(vocab), np.int32)
    for i, w in enumerate(vocab):
        out[i] = first.setdefault(find(w), i)
    return out


# ---------------------------------------------------------------- the candidate index


class CandidateIndex:
    """Real-word candidates of any word (cached per word), the dictionary they come from, and word probabilities
    outside the LM vocabulary. Built at most once per language model (`CandidateIndex.for_lm`); the fast path of
    `real_word_hits` needs it only for words outside the LM vocabulary and for the siblings' words."""

    def __init__(self, lm: CaptionLM, wordfreq_top: int = WORDFREQ_TOP, *, variant=None):
        """`wordfreq_top` = 0: suggest caption words only (the LM vocabulary) and need no wordfreq word list (the
        quick index for words outside the vocabulary at audit time). `variant(a, b)`: are a and b forms of one word
        (default: spelling and lemminflect)."""
        from wordfreq import get_frequency_dict, top_n_list

        self.lm = lm
        self.variant = variant or _variant
        lm_words = [w for w in lm.vocab[3:] if _WORD.match(w)]
        wf_words = [w for w in top_n_list("en", wordfreq_top) if _WORD.match(w)] if wordfreq_top else []
        words = [w for w in dict.fromkeys(lm_words + wf_words) if len(w) > 1 or w in ("a", "i")]
        self.words = frozenset(words)
        counts = lm.unigram_count
        wf = get_frequency_dict("en") if wordfreq_top else {}
        zipf = {w: math.log10(wf[w]) + 9 if wf.get(w) else 0.0 for w in wf_words}

        def suggestable(w: str) -> bool:
            c = int(counts[lm.index[w]]) if w in lm.index else 0
            if len(w) <= 2:
                return c >= 20 * MIN_LM_COUNT
            return c >= MIN_LM_COUNT or zipf.get(w, 0.0) >= MIN_ZIPF

        self.suggestable = frozenset(w for w in words if suggestable(w))
        # ln q(w): the share of <unk>'s probability a word outside the LM vocabulary gets (wordfreq frequency,
        # normalised over the dictionary words the LM does not know)
        freq = {w: wf.get(w, 0.0) for w in words if w not in lm.index}
        self.oov_z = sum(freq.values()) or 1.0
        self.oov_logq = {w: math.log(max(f, 1e-9) / self.oov_z) for w, f in freq.items()}
        self.freq_score = {w: (math.log(counts[lm.index[w]] + 1) if w in lm.index else 0.0) for w in words}
        self.by_sound: dict[str, list[str]] = {}
        self.by_apostrophe: dict[str, list[str]] = {}
        for w in sorted(self.suggestable):
            self.by_sound.setdefault(sound_key(w), []).append(w)
            self.by_apostrophe.setdefault(_apostrophe_key(w), []).append(w)
        self._long_by_len: dict[int, list[str]] = {}
        for w in sorted(self.suggestable):
            if len(w) >= EDIT2_MIN_LEN and w in lm.index:  # two-edit candidates: caption words only
                self._long_by_len.setdefault(len(w), []).append(w)
        self._cache: dict[str, tuple[tuple[str, str], ...]] = {}
        self._edit2: dict[str, list[str]] = {}
        self._edit2_choices: dict[int, list[str]] = {}
        # one-edit neighbours through deletions: two words one edit apart share a one-deletion form (or one is a
        # deletion of the other); the real distance is checked afterwards
        self._by_deletion: dict[str, list[str]] = {}
        for w in sorted(self.suggestable):
            for d in {w[:i] + w[i + 1:] for i in range(len(w))}:
                self._by_deletion.setdefault(d, []).append(w)

    def prefetch_edit2(self, words: Sequence[str]) -> None:
        """The caption words two edits away from each of `words`, found with one C-level distance matrix per word
        length (instead of one scan per word)."""
        by_len: dict[int, list[str]] = {}
        for w in words:
            if len(w) >= EDIT2_MIN_LEN and w not in self._edit2:
                by_len.setdefault(len(w), []).append(w)
        for n, queries in sorted(by_len.items()):
            choices = self._edit2_choices.get(n)
            if choices is None:  # the caption words of lengths n - 2 .. n + 2 (kept: words come one at a time)
                choices = [c for m in range(n - 2, n + 3) for c in self._long_by_len.get(m, ())]
                self._edit2_choices[n] = choices
            if not choices:
                self._edit2.update((q, []) for q in queries)
                continue
            dist = process.cdist(queries, choices, scorer=OSA.distance, score_cutoff=2, dtype=np.uint8, workers=1)
            for q, row in zip(queries, dist):
                self._edit2[q] = [choices[j] for j in np.flatnonzero(row <= 2)]

    @classmethod
    def for_lm(cls, lm: CaptionLM) -> CandidateIndex:
        """The index of `lm`, built on first use and kept with the model."""
        index = lm.__dict__.get("_candidate_index")
        if index is None:
            index = cls(lm)
            lm.__dict__["_candidate_index"] = index
        return index

    def is_word(self, word: str) -> bool:
        return word in self.words

    def oov_logprob(self, word: str) -> float:
        """ln q(word) for a word the LM scores as <unk>."""
        q = self.oov_logq.get(word)
        if q is None:
            from wordfreq import word_frequency

            q = math.log(max(word_frequency(word, "en"), 1e-9) / self.oov_z)
            self.oov_logq[word] = q
        return q

    def candidates(self, word: str) -> tuple[tuple[str, str], ...]:
        """(candidate, mechanism) pairs for `word`, most frequent caption words first, at most MAX_CANDIDATES."""
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        pool: set[str] = set(self._by_deletion.get(word, ()))  # insertions
        for d in {word[:i] + word[i + 1:] for i in range(len(word))}:
            if d in self.suggestable:
                pool.add(d)  # deletions
            pool.update(self._by_deletion.get(d, ()))  # substitutions, transpositions (and some two-edit words)
        pool = {w for w in pool if _osa(word, w) == 1}
        pool.update(self.by_apostrophe.get(_apostrophe_key(word), ()))
        pool.update(self.by_sound.get(sound_key(word), ()))
        if len(word) >= EDIT2_MIN_LEN:
            if word not in self._edit2:
                self.prefetch_edit2([word])
            pool.update(self._edit2[word])
        out = []
        for cand in pool:
            mech = _mechanism(word, cand, self.variant)
            if mech is not None:
                out.append((cand, mech))
        out.sort(key=lambda cm: (-(self.freq_score[cm[0]] + PRIOR[cm[1]]), cm[0]))
        taken: dict[str, int] = {}
        kept = []
        for cand, mech in out:
            taken[mech] = taken.get(mech, 0) + 1
            if taken[mech] <= MAX_PER_MECHANISM.get(mech, MAX_CANDIDATES):
                kept.append((cand, mech))
        result = tuple(kept[:MAX_CANDIDATES])
        self._cache[word] = result
        return result


@lru_cache(maxsize=1 << 17)
def mechanism(orig: str, cand: str) -> str | None:
    """The kind of slip that turns `cand` into `orig`, or None when they are unrelated or forms of one word."""
    return _mechanism(orig, cand, _variant)


def _mechanism(orig: str, cand: str, variant) -> str | None:
    if cand == orig or variant(orig, cand):
        return None
    if ("'" in orig) != ("'" in cand) and _apostrophe_key(orig) == _apostrophe_key(cand):
        return "apostrophe"
    if cand == orig + "'s":
        return "apostrophe"  # a possessive written without its 's ("a person legs")
    d = _osa(orig, cand)
    if d == 1:
        if "'" in orig or "'" in cand:
            return "apostrophe"
        return "keyboard" if _is_keyboard_slip(orig, cand) else "edit1"
    if sound_key(orig) == sound_key(cand) and d <= max(len(orig), len(cand)) // 2 + 1:
        return "sound"
    if d == 2 and min(len(orig), len(cand)) >= EDIT2_MIN_LEN:
        return "edit2"
    return None


def candidate_table(lm: CaptionLM) -> dict[str, np.ndarray]:
    """The candidates of every LM vocabulary word as arrays kept with the model (`build_lm` ships them in lm.npz):
    word id -> `cand_idx[cand_ptr[id]:cand_ptr[id + 1]]` (into `cand_lexicon`) and `cand_mech` (into MECHANISMS);
    `cand_logq` is ln q of each lexicon word outside the LM vocabulary; `cand_suggestable` lists every word that may
    be suggested (for the siblings' words and merges), `cand_oov_z` is the normaliser of q, `cand_lemma_group`
    tells forms of one word apart from other words (`lemma_groups`) and `cand_is_word` which vocabulary words are
    real words (worth real-word candidates)."""
    from wordfreq import get_frequency_dict

    wf = get_frequency_dict("en")
    index = CandidateIndex(lm)
    index.prefetch_edit2([w for w in lm.vocab[3:] if index.is_word(w)])
    lexicon: dict[str, int] = {}
    ptr = np.zeros(len(lm.vocab) + 1, np.int64)
    idx: list[int] = []
    mech: list[int] = []
    for i, w in enumerate(lm.vocab):
        if i >= 3 and index.is_word(w):
            for cand, m in index.candidates(w):
                idx.append(lexicon.setdefault(cand, len(lexicon)))
                mech.append(MECHANISMS.index(m))
        ptr[i + 1] = len(idx)
    words = list(lexicon)
    logq = np.array([0.0 if w in lm.index else index.oov_logprob(w) for w in words], np.float32)
    return {
        "cand_ptr": ptr.astype(np.int32),
        "cand_idx": np.array(idx, np.int32),
        "cand_mech": np.array(mech, np.uint8),
        "cand_lexicon": np.frombuffer("\n".join(words).encode("utf-8"), np.uint8),
        "cand_logq": logq,
        "cand_suggestable": np.frombuffer("\n".join(sorted(index.suggestable)).encode("utf-8"), np.uint8),
        "cand_oov_z": np.array(index.oov_z),
        "cand_lemma_group": lemma_groups(lm.vocab),
        "cand_is_word": np.array([i > 2 and _vocab_word(lm, wf, w) for i, w in enumerate(lm.vocab)], bool),
    }


def _vocab_word(lm: CaptionLM, wf: dict[str, float], w: str) -> bool:
    """A vocabulary word that is a real word: common in the captions or in wordfreq, or the possessive of such a
    word ("ski's", whose slip for "skis" is a real-word matter, not a misspelling)."""
    if w.endswith("'s") and len(w) > 3:
        w = w[:-2]
    i = lm.index.get(w)
    return (i is not None and lm.unigram_count[i] >= VOCAB_WORD_COUNT) or (
        w in wf and math.log10(wf[w]) + 9 >= VOCAB_WORD_ZIPF)


class _Table:
    """The candidate table of one model, ready for vectorised scoring."""

    def __init__(self, lm: CaptionLM):
        arrays = lm.extras if "cand_ptr" in lm.extras else candidate_table(lm)
        self.lm = lm
        self.ptr = np.asarray(arrays["cand_ptr"], np.int64)
        self.lexicon = bytes(arrays["cand_lexicon"]).decode("utf-8").split("\n")
        entry_lex = np.asarray(arrays["cand_idx"], np.int64)
        lex_ids = np.array([lm.index.get(w, lm.unk) for w in self.lexicon], np.int64)
        self.entry_lex = entry_lex
        self.entry_id = lex_ids[entry_lex] if len(entry_lex) else np.zeros(0, np.int64)
        self.entry_mech = np.asarray(arrays["cand_mech"], np.int64)
        self.entry_prior = np.array([PRIOR[m] for m in MECHANISMS])[self.entry_mech]
        self.entry_logq = np.asarray(arrays["cand_logq"], np.float64)[entry_lex]
        self.suggestable = frozenset(bytes(arrays["cand_suggestable"]).decode("utf-8").split("\n"))
        self.oov_z = float(arrays["cand_oov_z"])
        owner = np.repeat(np.arange(len(self.ptr) - 1), np.diff(self.ptr))
        # contractions, as words and as candidates, are scored in their full form (the slow path)
        self.is_contraction = np.zeros(len(self.ptr) - 1, bool)
        for w, i in lm.index.items():
            if w in CONTRACTIONS:
                self.is_contraction[i] = True
        self.entry_contraction = np.array([w in CONTRACTIONS for w in self.lexicon], bool)[entry_lex] \
            if len(entry_lex) else np.zeros(0, bool)
        self.has_contraction = np.zeros(len(self.ptr) - 1, bool)
        self.has_contraction[owner[self.entry_contraction]] = True
        self.has_apostrophe = np.zeros(len(self.ptr) - 1, bool)
        self.has_apostrophe[owner[self.entry_mech == MECHANISMS.index("apostrophe")]] = True
        self.group = np.asarray(arrays["cand_lemma_group"], np.int64)
        self.is_word = np.asarray(arrays["cand_is_word"], bool)
        self.word_len = np.array([len(w) for w in lm.vocab], np.int64)
        self.rare = (lm.unigram_count < MIN_LM_COUNT) & (np.arange(len(lm.vocab)) > 2)
        self.fragment = np.array([i > 2 and len(w) <= 2 and w not in self.suggestable for i, w in enumerate(lm.vocab)],
                                 bool)
        self._cands_of: dict[int, frozenset[str]] = {}
        self._oov_logq: dict[str, float] = {}
        self._mech: dict[tuple[str, str], str | None] = {}
        self._oov_index: CandidateIndex | None = None

    def variant(self, a: str, b: str) -> bool:
        """Forms of one word: by spelling, else by the shipped lemma groups (words outside the vocabulary: no)."""
        pair = _form_pair(a, b)
        if pair is not None:
            return pair
        ia, ib = self.lm.index.get(a), self.lm.index.get(b)
        return ia is not None and ib is not None and self.group[ia] == self.group[ib]

    def mechanism(self, orig: str, cand: str) -> str | None:
        key = (orig, cand)
        if key not in self._mech:
            self._mech[key] = _mechanism(orig, cand, self.variant)
        return self._mech[key]

    def oov_candidates(self, word: str) -> tuple[tuple[str, str], ...]:
        """Candidates of a real word outside the LM vocabulary: caption words only (a quick index, built on first
        use)."""
        if self._oov_index is None:
            self._oov_index = CandidateIndex(self.lm, 0, variant=self.variant)
        return self._oov_index.candidates(word)

    @classmethod
    def for_lm(cls, lm: CaptionLM) -> _Table:
        table = lm.__dict__.get("_candidate_table")
        if table is None:
            table = cls(lm)
            lm.__dict__["_candidate_table"] = table
        return table

    def table_candidates(self, word_id: int, *, contractions_only: bool = False) -> list[tuple[str, str]]:
        lo, hi = self.ptr[word_id], self.ptr[word_id + 1]
        return [(self.lexicon[self.entry_lex[e]], MECHANISMS[self.entry_mech[e]]) for e in range(lo, hi)
                if not contractions_only or self.entry_contraction[e]]

    def candidate_words(self, word_id: int) -> frozenset[str]:
        got = self._cands_of.get(word_id)
        if got is None:
            got = frozenset(self.lexicon[j] for j in self.entry_lex[self.ptr[word_id]: self.ptr[word_id + 1]])
            self._cands_of[word_id] = got
        return got

    def oov_logprob(self, word: str) -> float:
        q = self._oov_logq.get(word)
        if q is None:
            from wordfreq import word_frequency

            q = math.log(max(word_frequency(word, "en"), 1e-9) / self.oov_z)
            self._oov_logq[word] = q
        return q

    def is_common_word(self, word: str) -> bool:
        """A real word by the model's own standard (a vocabulary word common in captions or in wordfreq, or a word
        outside the vocabulary common in wordfreq), as opposed to a rare word only the spelling checker vouches
        for: slips for those are reported as their own rule family (`real_word.lm.rare`)."""
        i = self.lm.index.get(word)
        return bool(self.is_word[i]) if i is not None else self.is_oov_word(word)

    def is_oov_word(self, word: str) -> bool:
        """A token outside the LM vocabulary that is still a real word (worth real-word candidates)."""
        from wordfreq import zipf_frequency

        return bool(_WORD.match(word)) and len(word) > 1 and zipf_frequency(word, "en") >= WORD_ZIPF

    def merges(self, left: str, right: str) -> list[tuple[str, str]]:
        """One word for two tokens when one of them is a fragment of at most two letters that is no word on its
        own: an apostrophe lost in typing or tokenizing ('it;s' -> 'it', 's' -> "it's"/'its'). Two real words
        ('bath room') are a split compound, a matter of style, and are left alone."""
        if left in self.suggestable and right in self.suggestable:
            return []
        if not any(len(x) <= 2 and x not in self.suggestable for x in (left, right)):
            return []  # a longer fragment ('under neath') is a split compound, not a lost apostrophe
        return [(cand, m) for cand, m in ((left + "'" + right, "apostrophe"), (left + right, "merge"))
                if cand in self.suggestable and (cand in self.lm.index or cand in CONTRACTIONS)]

    def splits(self, word: str) -> list[tuple[str, str]]:
        """Two common caption words for one rare word ('apart' -> 'a part'); common words are never split."""
        lm = self.lm
        if word in lm.index and lm.unigram_count[lm.index[word]] >= MIN_LM_COUNT:
            return []
        return [(word[:i] + " " + word[i:], "split") for i in range(1, len(word))
                if word[:i] in lm and word[i:] in lm and word[:i] in self.suggestable and word[i:] in self.suggestable
                and (i > 1 or word[0] in "ai") and len(word) - i > 1]


# ---------------------------------------------------------------- scoring


def _sibling_terms(lm: CaptionLM, word: str, present: bool, n_siblings: int) -> float:
    """ln P(siblings use / do not use `word` | it was meant) - ln P(same | it was not), from the LM's sibling
    statistics (measured on groups of four siblings; rescaled to the number given)."""
    i = lm.index.get(word)
    if i is None or lm.sib_agree is None or i < 3:
        agree, base = 0.3, 1e-4
    else:
        agree, base = float(lm.sib_agree[i]), float(lm.sib_base[i])
    if n_siblings != 4:
        agree = 1 - (1 - agree) ** (n_siblings / 4)
        base = 1 - (1 - base) ** (n_siblings / 4)
    agree, base = min(max(agree, 1e-6), 1 - 1e-6), min(max(base, 1e-6), 1 - 1e-6)
    return math.log(agree / base) if present else math.log((1 - agree) / (1 - base))


def sibling_evidence(lm: CaptionLM, original: Sequence[str], suggestion: Sequence[str],
                     sibling_words: set[str], n_siblings: int) -> float:
    """Log likelihood ratio that the other captions of the image favour `suggestion` over `original` (a sibling
    using the suggested word is evidence for it; a sibling using the written word is evidence against)."""
    if not n_siblings:
        return 0.0
    ev = 0.0
    for w in suggestion:
        if w not in original:
            ev += _sibling_terms(lm, w, w in sibling_words, n_siblings)
    for w in original:
        if w not in suggestion:
            ev -= _sibling_terms(lm, w, w in sibling_words, n_siblings)
    return max(-SIBLING_CAP, min(SIBLING_CAP, ev))


class _Cooccurrence:
    """The shipped within-caption co-occurrence counts of one model, as a lookup."""

    def __init__(self, lm: CaptionLM):
        c = lm.cooc
        self.pairs: dict[int, int] = dict(zip(c["cooc_keys"].tolist(), c["cooc_count"].tolist()))
        self.df = c["cooc_df"].astype(np.float64)
        self.n = float(c["cooc_n"])

    @classmethod
    def for_lm(cls, lm: CaptionLM) -> _Cooccurrence | None:
        if lm.cooc is None:
            return None
        got = lm.__dict__.get("_cooccurrence")
        if got is None:
            got = lm.__dict__["_cooccurrence"] = cls(lm)
        return got

    def log_ratio(self, context: Sequence[int], cand: int, orig: int) -> float:
        """sum over context words x of ln lift(x, cand) - ln lift(x, orig), where lift = (pairs + a) / (pairs
        expected were the words independent + a): a pair seen far more often than chance is evidence, one seen far
        less often (while chance expects many) is evidence against, and an unseen pair of rare words is none."""
        df, pairs, a, n = self.df, self.pairs, TOPIC_SMOOTHING, self.n
        total = 0.0
        for x in context:
            px = df[x] / n
            for w, sign in ((cand, 1.0), (orig, -1.0)):
                lo, hi = (x, w) if x < w else (w, x)
                total += sign * math.log((pairs.get(lo << 16 | hi, 0) + a) / (df[w] * px + a))
        return total


def topic_context(lm: CaptionLM, words: Sequence[str], i: int) -> frozenset[int]:
    """The content-word ids of a caption at least `TOPIC_MIN_DISTANCE` tokens from position i (what
    `topic_evidence` weighs; the same for every candidate of that position)."""
    co = _Cooccurrence.for_lm(lm)
    if co is None:
        return frozenset()
    get = lm.index.get
    ids = {get(w) for j, w in enumerate(words) if abs(j - i) >= TOPIC_MIN_DISTANCE} - {None}
    return frozenset(x for x in ids if co.df[x] > 0)


def topic_evidence(lm: CaptionLM, words: Sequence[str], i: int, end: int, suggestion: str, mechanism: str,
                   context: frozenset[int] | None = None) -> float:
    """Weighted log likelihood ratio that the caption's other content words (outside the n-gram window's nearest
    neighbours; `context`, from `topic_context`) go with `suggestion` rather than the written word: "kit" -> "kite"
    in "a blue and pink kit with streamers flying in a clear blue sky". Zero for apostrophe, merge and split slips
    (the same word either way)."""
    co = _Cooccurrence.for_lm(lm)
    if co is None or mechanism not in TOPIC_MECHANISMS or end != i + 1 or " " in suggestion:
        return 0.0
    get = lm.index.get
    cand, orig = get(suggestion), get(words[i])
    if cand is None or orig is None or not (co.df[cand] and co.df[orig]):
        return 0.0  # a function word on either side: its company says nothing about the topic
    if context is None:
        context = topic_context(lm, words, i)
    ev = co.log_ratio([x for x in context if x != cand and x != orig], cand, orig)
    return TOPIC_WEIGHT * max(-TOPIC_CAP, min(TOPIC_CAP, ev))


def context_logprobs(lm: CaptionLM, words: Sequence[str], i: int, replacements: Sequence[str]) -> np.ndarray:
    """For each replacement of token i (one word or several, space-separated): ln P of the replacement and of the
    n - 1 tokens after it (or up to </s>) under the caption LM, plus ln q for replacement words outside its
    vocabulary; the context score that ranks a misspelling's corrections ("coww" in "two coww" -> "cows")."""
    n = lm.order
    get, unk = lm.index.get, lm.unk
    table = _Table.for_lm(lm)
    left = [lm.bos, *(get(w, unk) for w in words[:i])]
    right = [get(w, unk) for w in words[i + 1:]] + [lm.eos]
    rows, owner, q = [], [], np.zeros(len(replacements))
    for r, rep in enumerate(replacements):
        new = rep.split(" ")
        new_ids = [get(x, unk) for x in new]
        q[r] = sum(table.oov_logprob(x) for x, xi in zip(new, new_ids) if xi == unk)
        seq = [-1] * (n - 1) + left + new_ids + right[: n - 1]
        start = n - 1 + len(left)
        for p in range(start, len(seq)):
            rows.append(seq[p - n + 1: p + 1])
            owner.append(r)
    if not rows:
        return q
    lp = lm.logprob_rows(np.asarray(rows, np.int64))
    return q + np.bincount(np.asarray(owner), weights=lp, minlength=len(replacements))


def is_common_word(lm: CaptionLM, word: str) -> bool:
    """`word` (lower-cased) is a real word by the model's own standard, not only by the spelling checker's."""
    return _Table.for_lm(lm).is_common_word(word)


def preload(lm: CaptionLM) -> None:
    """Build now what the first `real_word_hits` call on `lm` would (the table view, the quick index for words
    outside the vocabulary), e.g. before timing an audit or forking workers. `CandidateIndex` is not needed for it."""
    _Table.for_lm(lm).oov_candidates("a")


def real_word_hits(tokens: Sequence[str], sibling_tokens: Sequence[Sequence[str]], lm: CaptionLM, *,
                   threshold: float = DEFAULT_THRESHOLD, is_word: Callable[[str], bool] | None = None
                   ) -> tuple[RealWordHit, ...]:
    """Real-word slips in one caption (lower-cased word tokens), judged with the other captions of its image."""
    return real_word_hits_batch([tokens], [sibling_tokens], lm, threshold=threshold, is_word=is_word)[0]


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """concatenate(arange(s, s + c) for s, c in zip(starts, counts)), vectorised."""
    total = int(counts.sum())
    if not total:
        return np.zeros(0, np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + (np.arange(total) - offsets)


def real_word_hits_batch(captions: Sequence[Sequence[str]], siblings: Sequence[Sequence[Sequence[str]]],
                         lm: CaptionLM, *, threshold: float = DEFAULT_THRESHOLD,
                         is_word: Callable[[str], bool] | None = None) -> list[tuple[RealWordHit, ...]]:
    """`real_word_hits` for many captions at once: one vectorised LM call scores every caption's tokens, one more
    scores all candidates of the suspicious ones. `is_word` (the spelling checker's verdict) also makes a real word
    of a rare token the model would leave to the spelling checker ("fulled", "sheered"): a word the spelling
    checker accepts is nobody's to check otherwise, and a rare real word is the likeliest slip of all."""
    if len(siblings) != len(captions):
        raise ValueError(f"{len(captions)} captions but {len(siblings)} sibling lists")
    if not captions:
        return []
    table = _Table.for_lm(lm)
    n = lm.order
    get, unk = lm.index.get, lm.unk

    # pass A: every token (and </s>) of every caption in its context
    lengths = np.fromiter((len(t) for t in captions), np.int64, len(captions))
    n_rows = lengths + 1  # tokens and </s>
    starts = np.concatenate([[0], np.cumsum(n_rows)[:-1]]).astype(np.int64)  # row of each caption's first token
    row_cap = np.repeat(np.arange(len(captions)), n_rows)
    # each caption is laid out as n - 1 pads (-1), <s>, its ids, </s>; `pos` is where each predicted id sits
    pos = np.arange(int(n_rows.sum())) + np.repeat(np.arange(len(captions)) * n + n, n_rows)
    arr = np.full(int(n_rows.sum()) + n * len(captions), -1, np.int64)
    arr[pos - 1 - (np.arange(len(pos)) - np.repeat(starts, n_rows))] = lm.bos  # n_rows times each, harmless
    is_tok_row = np.arange(len(pos)) < np.repeat(starts + lengths, n_rows)
    arr[pos[is_tok_row]] = np.fromiter((get(t, unk) for t in itertools.chain.from_iterable(captions)), np.int64,
                                       int(lengths.sum()))
    arr[pos[~is_tok_row]] = lm.eos
    rows_a = arr[pos[:, None] + np.arange(-(n - 1), 1)[None, :]]
    keys_a = pack_rows(rows_a)
    lp, seen = lm.logprob_keys(keys_a, with_order=True)
    row_end = np.repeat(starts + lengths, n_rows)  # the </s> row of each row's caption
    word = rows_a[:, n - 1]

    is_token = np.arange(len(word)) < row_end
    nxt = np.minimum(np.arange(len(word)) + 1, len(word) - 1)
    # suspicious tokens: the token with its left neighbour, or with both neighbours, was not seen twice in
    # training (or it has an apostrophe form, a slip so common that training captions repeat it); words outside
    # the vocabulary are always examined (<unk> contexts say nothing about the word)
    suspicious = is_token & ((seen < 2) | (seen[nxt] < SUSPECT_ORDER) | table.has_apostrophe[word] | (word == unk))
    contraction = table.is_contraction[word]
    suspicious |= contraction & is_token
    real = table.is_word[word] | (word == unk)  # misspellings are the spelling checker's
    if is_word is not None:
        undecided = np.flatnonzero(is_token & ~real & (word > 2))
        accepted = [int(u) for u in np.unique(word[undecided]) if is_word(lm.vocab[u])]
        real[undecided] = np.isin(word[undecided], accepted)
    suspicious &= real
    in_vocab = suspicious & (word > 2) & ~contraction

    # fast path: candidates of vocabulary words from the shipped table, all scored at once
    sus = np.flatnonzero(in_vocab)
    w = word[sus]
    counts = table.ptr[w + 1] - table.ptr[w]
    entries = _ranges(table.ptr[w], counts)
    job_row = np.repeat(sus, counts)
    fast = ~table.entry_contraction[entries]
    entries, job_row = entries[fast], job_row[fast]
    cand_id = table.entry_id[entries]
    csum_old = np.concatenate([[0.0], np.cumsum(lp)])
    # the window a substitution changes: the token and the n - 1 predictions after it (or up to </s>); scored in
    # two steps: the first two predictions, then the rest only where the odds can still reach the threshold (the
    # rest can at best raise the odds by the original's surprisal there)
    win = np.minimum(n, row_end[job_row] - job_row + 1)
    head = np.minimum(win, 2)
    rest_old = csum_old[job_row + win] - csum_old[job_row + head]
    # the candidate's own prediction first; the one after it is bounded by the most any history gives that word,
    # and a job that cannot reach the threshold even so is dropped before it is scored (most are)
    ratio = _window_sums(lm, keys_a, job_row, cand_id, 0, 1) - (csum_old[job_row + head] - csum_old[job_row])
    ratio += table.entry_logq[entries]
    second = head > 1
    bound = ratio + np.where(second, lm.max_logprob[word[np.minimum(job_row + 1, len(word) - 1)]], 0.0)
    alive = np.flatnonzero(bound - rest_old + table.entry_prior[entries] + EXTRA_BOUND >= threshold)
    entries, job_row, cand_id, ratio = entries[alive], job_row[alive], cand_id[alive], ratio[alive]
    win, head, rest_old, second = win[alive], head[alive], rest_old[alive], second[alive]
    two = np.flatnonzero(second)
    ratio[two] += _window_sums(lm, keys_a, job_row[two], cand_id[two], 1, 2)
    open_ = np.flatnonzero((ratio - rest_old + table.entry_prior[entries] + EXTRA_BOUND >= threshold) & (win > head))
    if len(open_):
        ratio[open_] += _window_sums(lm, keys_a, job_row[open_], cand_id[open_], head[open_], win[open_]) \
            - rest_old[open_]
    closed = win > head
    closed[open_] = False  # windows not scored to the end cannot reach the threshold
    keep = np.flatnonzero((ratio + table.entry_prior[entries] + EXTRA_BOUND >= threshold) & ~closed)

    # slow path (few): merges, splits, the siblings' near-spellings, real words outside the vocabulary
    # which suspects may have candidates outside the table: words outside the vocabulary, contractions, a short
    # fragment next to them (merges), rare words (splits), and words that do not fit a neighbour while the image has
    # other captions (their near-spellings)
    has_siblings = np.repeat(np.fromiter((bool(s) for s in siblings), bool, len(siblings)), n_rows)
    nxt_is_token = nxt < row_end
    slow = suspicious & (
        (word == unk) | contraction | table.has_contraction[word] | table.rare[word]
        | (nxt_is_token & (table.fragment[word] | table.fragment[word[nxt]] | (word[nxt] == unk)))
        | (has_siblings & (table.word_len[word] >= 3) & ((seen < 2) | (seen[nxt] < 2))))
    extra = _extra_jobs(captions, siblings, table, lm, np.flatnonzero(slow), row_cap, starts, word, contraction,
                        is_word)
    extra_rows = [r for job in extra for r in job[6]]
    extra_scores = lm.logprob_rows(np.asarray(extra_rows, np.int64).reshape(-1, n)) if extra_rows else np.zeros(0)
    csum_new = np.concatenate([[0.0], np.cumsum(extra_scores)])

    best: dict[tuple[int, int], RealWordHit] = {}
    sib_sets: dict[int, set[str]] = {}
    topic_contexts: dict[tuple[int, int], frozenset[int]] = {}  # per position, shared by its candidates

    def consider(c: int, i: int, end: int, cand: str, mech: str, lm_ratio: float) -> None:
        if c not in sib_sets:
            sib_sets[c] = {x for s in siblings[c] for x in s}
        orig = list(captions[c][i:end])
        ev = sibling_evidence(lm, orig, cand.split(" "), sib_sets[c], len(siblings[c]))
        total = lm_ratio + ev + PRIOR[mech]
        if total + TOPIC_BOUND < threshold:
            return
        if (c, i) not in topic_contexts:
            topic_contexts[(c, i)] = topic_context(lm, captions[c], i)
        topic = topic_evidence(lm, captions[c], i, end, cand, mech, topic_contexts[(c, i)])
        total += topic
        if total >= threshold and ((c, i) not in best or total > best[(c, i)].log_ratio):
            best[(c, i)] = RealWordHit(i, " ".join(orig), cand, total, mech, end, lm_ratio, ev, topic)

    for j in keep.tolist():
        r = int(job_row[j])
        c = int(row_cap[r])
        i = r - int(starts[c])
        e = int(entries[j])
        consider(c, i, i + 1, table.lexicon[table.entry_lex[e]], MECHANISMS[table.entry_mech[e]], float(ratio[j]))

    at = 0
    baseline: dict[tuple[int, int, int], float] = {}
    for c, i, end, cand, mech, q_delta, rows in extra:
        k = len(rows)
        new = csum_new[at + k] - csum_new[at]
        at += k
        r0 = int(starts[c]) + i
        old_last = min(r0 + (end - i) + n - 1, int(starts[c] + lengths[c]) + 1)  # exclusive
        old = csum_old[old_last] - csum_old[r0]
        lm_ratio = float(new - old + q_delta)
        if not mech:  # the full form of an original contraction: what the candidates are compared with
            baseline[(c, i, end)] = lm_ratio
            continue
        lm_ratio -= baseline.get((c, i, end), 0.0)
        if lm_ratio + PRIOR[mech] + EXTRA_BOUND >= threshold:
            consider(c, i, end, cand, mech, lm_ratio)

    found: dict[int, list[RealWordHit]] = {}
    for (c, _), hit in sorted(best.items()):
        found.setdefault(c, []).append(hit)
    return [tuple(found.get(c, ())) for c in range(len(captions))]  # tuples: untracked by the gc when empty


def _window_sums(lm: CaptionLM, keys_a: np.ndarray, job_row: np.ndarray, cand_id: np.ndarray, lo, hi) -> np.ndarray:
    """For each job (the token at row `job_row` replaced by `cand_id`), the summed ln P of the predictions at
    offsets lo..hi-1 after it, with the replacement in their histories (`keys_a`: the packed rows of pass A; each
    changed row's key is made from its original's, `with_id_at`)."""
    lo = np.broadcast_to(np.asarray(lo, np.int64), job_row.shape)
    hi = np.broadcast_to(np.asarray(hi, np.int64), job_row.shape)
    k = hi - lo
    if not int(k.sum()):
        return np.zeros(len(job_row))
    idx = _ranges(job_row + lo, k)
    offset = idx - np.repeat(job_row, k)  # how many places before the predicted word the replaced one sits
    sums = np.concatenate([[0.0], np.cumsum(lm.logprob_keys(with_id_at(keys_a[idx], offset, np.repeat(cand_id, k))))])
    bounds = np.concatenate([[0], np.cumsum(k)])
    return sums[bounds[1:]] - sums[bounds[:-1]]


def _extra_jobs(captions, siblings, table: _Table, lm: CaptionLM, suspects: np.ndarray, row_cap: np.ndarray,
                starts: np.ndarray, word: np.ndarray, contraction: np.ndarray,
                is_word: Callable[[str], bool] | None = None) -> list[tuple]:
    """Candidates outside the shipped table, each with the LM rows of its changed window: (caption, start, end,
    suggestion, mechanism, ln q difference, rows)."""
    n = lm.order
    get, unk = lm.index.get, lm.unk
    jobs: list[tuple] = []
    sib_vocab: dict[int, tuple[dict[str, None], list[str]]] = {}
    for r in suspects.tolist():
        c = int(row_cap[r])
        toks = captions[c]
        i = r - int(starts[c])
        tok = toks[i]
        wid = int(word[r])
        options: list[tuple[str, str, int]] = []
        if wid == unk:
            if not (table.is_oov_word(tok) or (is_word is not None and _WORD.match(tok) and is_word(tok))):
                continue
            options.extend((cand, m, i + 1) for cand, m in table.oov_candidates(tok))
            known: frozenset[str] = frozenset(cand for cand, _, _ in options)
        else:
            known = table.candidate_words(wid)
            if contraction[r] or table.has_contraction[wid]:
                options.extend((cand, m, i + 1) for cand, m in
                               table.table_candidates(wid, contractions_only=not contraction[r]))
        if i + 1 < len(toks):
            options.extend((cand, m, i + 2) for cand, m in table.merges(tok, toks[i + 1]))
        options.extend((cand, m, i + 1) for cand, m in table.splits(tok))
        if siblings[c] and len(tok) >= 3:
            if c not in sib_vocab:  # the siblings' words in first-use order (deterministic)
                used = dict.fromkeys(itertools.chain.from_iterable(siblings[c]))
                sib_vocab[c] = used, tuple(used)
            used, near = sib_vocab[c]
            if tok not in used:  # a sibling writing the same word is evidence for it: no sibling candidates
                options.extend(_sibling_options(table, tok, near, known, toks, i + 1))
        if not options:
            continue
        ids = [lm.bos, *(get(t, unk) for t in toks), lm.eos]
        # an original contraction is judged in its full form: every candidate is compared with "it is ..."
        spans = {end for _, _, end in options}
        baselines = [(" ".join(toks[i:end]), "", end) for end in sorted(spans)
                     if any(t in CONTRACTIONS for t in toks[i:end])]
        for cand, mech, end in baselines + options:
            new = " ".join(CONTRACTIONS.get(x, x) for x in cand.split(" ")).split(" ")
            new_ids = [get(x, unk) for x in new]
            seq = ids[: i + 1] + new_ids + ids[end + 1:]
            last = min(i + len(new) + n - 1, len(seq) - 1)
            padded = (-1,) * (n - 1) + tuple(seq)
            rows = tuple(padded[p: p + n] for p in range(i + 1, last + 1))  # of ints: not tracked by the gc
            # ln q of words scored as <unk>: the new words in, the replaced words out (unchanged ones cancel)
            q_delta = sum(table.oov_logprob(x) for x, xi in zip(new, new_ids) if xi == unk) \
                - sum(table.oov_logprob(x) for x in toks[i:end] if get(x, unk) == unk)
            jobs.append((c, i, end, cand, mech, q_delta, rows))
    return jobs


def _sibling_options(table: _Table, tok: str, sib_vocab: list[str], known: frozenset[str], own: Sequence[str],
                     end: int) -> list[tuple[str, str, int]]:
    """Words of the other captions (not of this one) within two edits of `tok` (a sibling's spelling of the word
    meant)."""
    out = []
    for w, d, _ in process.extract(tok, sib_vocab, scorer=OSA.distance, score_cutoff=2, limit=None):
        if w == tok or w in known or len(w) < 3 or w not in table.suggestable or w in own:
            continue
        mech = table.mechanism(tok, w)
        if mech is None and d == 2 and len(tok) >= SIBLING_EDIT2_MIN_LEN and not table.variant(tok, w):
            mech = "edit2"
        if mech is not None:
            out.append((w, mech, end))
    return out
