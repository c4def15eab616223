"""Real-word error candidates and their context scores: is a correctly spelled word the wrong word?

For a word of a caption, `CandidateIndex` proposes real words the writer may have meant: one edit away (with
keyboard-neighbour slips marked), two edits away for longer words, the same sound (a phonetic key), an apostrophe
form (its/it's, whose/who's, drivers/driver's), two words run together or one word split, and the near-spellings
used by the other captions of the same image. Each candidate sentence is scored against the original as posterior
log-odds of a noisy channel:

    log_ratio = [ln P_LM(with candidate) - ln P_LM(original)]        over the n-gram window the change touches
              + sibling evidence                                      the other captions use one word or the other
              + ln P(this kind of slip)                               the channel prior of the mechanism

and a token is reported when its best candidate reaches the threshold. Only tokens that the caption LM finds
surprising in context (or whose next word it finds surprising) are examined, and every candidate of a batch of
captions is scored in one vectorised LM call, so the checker costs tens of microseconds a caption.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from capeval.audit.lm import CaptionLM

MECHANISMS = ("apostrophe", "keyboard", "edit1", "sound", "edit2", "merge", "split", "sibling")
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
    "edit2": math.log(1e-4),
}
SUSPECT_LOGP = math.log(0.02)  # examine a token when it, or the word after it, has P < this in context
MAX_CANDIDATES = 24  # per word, the most frequent ones (the index is cached per word)
SIBLING_CAP = math.log(200.0)  # bound on the evidence from the other captions of the image
DEFAULT_THRESHOLD = 0.0  # posterior odds 1:1
EDIT2_MIN_LEN = 6  # two-edit candidates only for words this long (both of them)
SIBLING_EDIT2_MIN_LEN = 4  # ... or this long when a sibling caption uses the candidate
MIN_LM_COUNT = 3  # a candidate the LM knows must be this common in the training captions
MIN_ZIPF = 3.5  # ... or, outside the LM vocabulary, this common in wordfreq
WORDFREQ_TOP = 40000  # dictionary: the LM vocabulary plus this many of wordfreq's commonest English words
_WORD = re.compile(r"^[a-z]+(?:'[a-z]+)?$")
_LETTERS = "abcdefghijklmnopqrstuvwxyz'"
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


# ---------------------------------------------------------------- string helpers


def sound_key(word: str) -> str:
    """A coarse phonetic key (Metaphone-like): consonants with common English spellings of one sound merged, each
    vowel group one '*', so threw/through, there/their, whose/who's, desert/dessert share a key."""
    w = word.replace("'", "")
    for a, b in (("tch", "ch"), ("ph", "f"), ("ck", "k"), ("dg", "j"), ("sch", "sk"), ("qu", "kw"), ("x", "ks"),
                 ("th", "0"), ("sh", "x"), ("ch", "x")):
        w = w.replace(a, b)
    if w[:2] in ("kn", "gn", "wr"):
        w = w[1:]
    elif w[:2] == "wh":
        w = "w" + w[2:]
    w = re.sub(r"c(?=[eiy])", "s", w).replace("c", "k").replace("q", "k").replace("z", "s")
    w = re.sub(r"(?<=.)gh", "", w)
    if len(w) > 2 and w.endswith("e"):
        w = w[:-1]
    w = w[:1] + re.sub(r"(?<=[aeiouy])w|h", "", w[1:])
    w = re.sub(r"[aeiouy]+", "*", w)
    return re.sub(r"(.)\1+", r"\1", w)


def _edits1(word: str) -> set[str]:
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    out |= {a + c + b for a, b in splits for c in _LETTERS}
    out.discard(word)
    return out


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
    from rapidfuzz.distance import OSA

    return OSA.distance(a, b)


@lru_cache(maxsize=1 << 16)
def _lemmas(word: str) -> frozenset[str]:
    from lemminflect import getAllLemmas

    out = {word}
    for forms in getAllLemmas(word).values():
        out.update(forms)
    return frozenset(out)


def _variant(a: str, b: str) -> bool:
    """Two forms of one word (dog/dogs, sit/sat, woman/women, a/an): a grammar matter, not a real-word slip. An
    apostrophe form (driver/driver's) is no variant."""
    if "'" in a or "'" in b:
        return False
    if {a, b} == {"a", "an"}:
        return True
    short, long_ = sorted((a, b), key=len)
    if long_.startswith(short) and long_[len(short):] in ("s", "es", "d", "ed", "ing", "r", "er", "est", "ly"):
        return not (long_ == short + "s" and short.endswith("s"))  # bus/buss are two words
    return bool(_lemmas(a) & _lemmas(b))


# ---------------------------------------------------------------- the candidate index


class CandidateIndex:
    """Real-word candidates per word (cached), the dictionary they come from, and word probabilities outside the LM
    vocabulary. Built once per language model (`CandidateIndex.for_lm`)."""

    def __init__(self, lm: CaptionLM, wordfreq_top: int = WORDFREQ_TOP):
        from wordfreq import top_n_list, word_frequency, zipf_frequency

        self.lm = lm
        lm_words = [w for w in lm.vocab[3:] if _WORD.match(w)]
        wf_words = [w for w in top_n_list("en", wordfreq_top) if _WORD.match(w)]
        words = [w for w in dict.fromkeys(lm_words + wf_words) if len(w) > 1 or w in ("a", "i")]
        self.words = frozenset(words)
        counts = lm.unigram_count
        zipf = {w: zipf_frequency(w, "en") for w in wf_words}

        def suggestable(w: str) -> bool:
            c = int(counts[lm.index[w]]) if w in lm.index else 0
            if len(w) <= 2:
                return c >= 20 * MIN_LM_COUNT
            return c >= MIN_LM_COUNT or zipf.get(w, 0.0) >= MIN_ZIPF

        self.suggestable = frozenset(w for w in words if suggestable(w))
        # ln q(w): the share of <unk>'s probability a word outside the LM vocabulary gets (wordfreq frequency,
        # normalised over the dictionary words the LM does not know)
        oov = [w for w in words if w not in lm.index]
        freq = {w: word_frequency(w, "en") for w in oov}
        z = sum(freq.values()) or 1.0
        self._z = z
        self.oov_logq = {w: math.log(max(f, 1e-9) / z) for w, f in freq.items()}
        self.rank = {w: i for i, w in enumerate(words)}  # LM words first by count, then wordfreq order
        self.freq_score = {w: (math.log(counts[lm.index[w]] + 1) if w in lm.index else 0.0) for w in words}
        self.by_sound: dict[str, list[str]] = {}
        self.by_apostrophe: dict[str, list[str]] = {}
        for w in self.suggestable:
            self.by_sound.setdefault(sound_key(w), []).append(w)
            self.by_apostrophe.setdefault(_apostrophe_key(w), []).append(w)
        self._long_by_len: dict[int, list[str]] = {}
        for w in sorted(self.suggestable):
            if len(w) >= EDIT2_MIN_LEN and w in lm.index:  # two-edit candidates: caption words only
                self._long_by_len.setdefault(len(w), []).append(w)
        self._cache: dict[str, tuple[tuple[str, str], ...]] = {}

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

            q = math.log(max(word_frequency(word, "en"), 1e-9) / self._z)
            self.oov_logq[word] = q
        return q

    def mechanism(self, orig: str, cand: str) -> str | None:
        """The kind of slip that turns `cand` into `orig`, or None when they are unrelated or forms of one word."""
        if cand == orig or _variant(orig, cand):
            return None
        if ("'" in orig) != ("'" in cand) and _apostrophe_key(orig) == _apostrophe_key(cand):
            return "apostrophe"
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

    def candidates(self, word: str) -> tuple[tuple[str, str], ...]:
        """(candidate, mechanism) pairs for `word`, most frequent caption words first, at most MAX_CANDIDATES."""
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        pool: set[str] = {w for w in _edits1(word) if w in self.suggestable}
        pool.update(self.by_apostrophe.get(_apostrophe_key(word), ()))
        pool.update(self.by_sound.get(sound_key(word), ()))
        if len(word) >= EDIT2_MIN_LEN:
            from rapidfuzz import process
            from rapidfuzz.distance import OSA

            for n in range(len(word) - 2, len(word) + 3):
                choices = self._long_by_len.get(n)
                if choices:
                    pool.update(m[0] for m in process.extract(word, choices, scorer=OSA.distance, score_cutoff=2,
                                                              limit=None))
        out = []
        for cand in pool:
            mech = self.mechanism(word, cand)
            if mech is not None:
                out.append((cand, mech))
        out.sort(key=lambda cm: (-(self.freq_score[cm[0]] + PRIOR[cm[1]]), cm[0]))
        result = tuple(out[:MAX_CANDIDATES])
        self._cache[word] = result
        return result

    def merges(self, left: str, right: str) -> tuple[tuple[str, str], ...]:
        """One word for two tokens when one of them is no word on its own: an apostrophe lost in typing or
        tokenizing ('it;s' -> 'it', 's' -> "it's"/'its'). Two real words ('bath room') are a split compound, a
        matter of style, and are left alone."""
        if left in self.suggestable and right in self.suggestable:
            return ()
        out = []
        for cand, mech in ((left + "'" + right, "apostrophe"), (left + right, "merge")):
            if cand in self.suggestable and cand in self.lm.index:
                out.append((cand, mech))
        return tuple(out)

    def splits(self, word: str) -> tuple[tuple[str, str], ...]:
        """Two common caption words for one rare word ('apart' -> 'a part'); common words are never split."""
        if word in self.lm.index and self.lm.unigram_count[self.lm.index[word]] >= MIN_LM_COUNT:
            return ()
        out = []
        for i in range(1, len(word)):
            a, b = word[:i], word[i:]
            if a in self.suggestable and b in self.suggestable and a in self.lm.index and b in self.lm.index:
                out.append((a + " " + b, "split"))
        return tuple(out)


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


@dataclass
class _Caption:
    ids: list[int]  # <s> w1 .. wn </s>
    logps: np.ndarray  # ln P of positions 1..n+1 (tokens and </s>)
    oov: np.ndarray  # ln q of positions 1..n+1 for <unk> tokens (0 otherwise)


def real_word_hits(tokens: Sequence[str], sibling_tokens: Sequence[Sequence[str]], lm: CaptionLM, *,
                   threshold: float = DEFAULT_THRESHOLD) -> list[RealWordHit]:
    """Real-word slips in one caption (lower-cased word tokens), judged with the other captions of its image."""
    return real_word_hits_batch([tokens], [sibling_tokens], lm, threshold=threshold)[0]


def real_word_hits_batch(captions: Sequence[Sequence[str]], siblings: Sequence[Sequence[Sequence[str]]],
                         lm: CaptionLM, *, threshold: float = DEFAULT_THRESHOLD) -> list[list[RealWordHit]]:
    """`real_word_hits` for many captions at once (one vectorised LM call for all their candidates)."""
    index = CandidateIndex.for_lm(lm)
    n = lm.order
    get, unk = lm.index.get, lm.unk

    # pass A: every token's probability in context, all captions in one call
    flat: list[int] = []
    where: list[int] = []
    states: list[_Caption] = []
    for toks in captions:
        ids = [lm.bos, *(get(t, unk) for t in toks), lm.eos]
        base = len(flat) + n - 1
        flat.extend([-1] * (n - 1))
        flat.extend(ids)
        where.extend(range(base + 1, base + len(ids)))
        states.append(_Caption(ids, np.empty(0), np.empty(0)))
    arr = np.asarray(flat, np.int64)
    pos = np.asarray(where, np.int64)
    logps = lm.logprob_rows(arr[pos[:, None] + np.arange(-(n - 1), 1)[None, :]]) if len(pos) else np.empty(0)
    at = 0
    for toks, st in zip(captions, states):
        k = len(st.ids) - 1
        st.logps = logps[at: at + k]
        at += k
        oov = np.zeros(k)
        for j, t in enumerate(toks):
            if st.ids[j + 1] == unk:
                oov[j] = index.oov_logprob(t)
        st.logps = st.logps + oov
        st.oov = oov

    # pass B: candidates of the suspicious tokens; rows of every candidate's changed window
    rows: list[list[int]] = []
    row_q: list[float] = []  # ln q of a candidate word scored as <unk>
    jobs: list[tuple[int, int, int, str, str, int, int]] = []  # caption, start, end, suggestion, mech, row0, nrows
    for c, (toks, st) in enumerate(zip(captions, states)):
        m = len(toks)
        if not m:
            continue
        low = st.logps < SUSPECT_LOGP
        sib_vocab: set[str] | None = None
        for i, tok in enumerate(toks):
            if not (low[i] or low[i + 1]) or not index.is_word(tok):
                continue
            options: list[tuple[str, str, int]] = [(cand, mech, i + 1) for cand, mech in index.candidates(tok)]
            if i + 1 < m:
                options.extend((cand, mech, i + 2) for cand, mech in index.merges(tok, toks[i + 1]))
            options.extend((cand, mech, i + 1) for cand, mech in index.splits(tok))
            if siblings[c] and len(tok) >= 3:
                if sib_vocab is None:
                    sib_vocab = {w for s in siblings[c] for w in s}
                options.extend(_sibling_options(index, tok, sib_vocab, {o[0] for o in options}, i + 1))
            for cand, mech, end in options:
                new = cand.split(" ")
                new_ids = [get(w, unk) for w in new]
                seq = st.ids[: i + 1] + new_ids + st.ids[end + 1:]
                last = min(i + len(new) + n - 1, len(seq) - 1)  # predicted positions i+1 .. last change
                padded = [-1] * (n - 1) + seq
                r0 = len(rows)
                for p in range(i + 1, last + 1):
                    rows.append(padded[p: p + n])
                    j = p - (i + 1)
                    if j < len(new):
                        row_q.append(index.oov_logprob(new[j]) if new_ids[j] == unk else 0.0)
                    else:  # an unchanged word after the change: its own ln q if it is outside the vocabulary
                        row_q.append(float(st.oov[p - len(new) + (end - i) - 1]))
                jobs.append((c, i, end, cand, mech, r0, len(rows) - r0))  # end: token-exclusive
    if not jobs:
        return [[] for _ in captions]
    scores = lm.logprob_rows(np.asarray(rows, np.int64)) + np.asarray(row_q)
    csum = np.concatenate([[0.0], np.cumsum(scores)])

    best: dict[tuple[int, int], RealWordHit] = {}
    sib_sets: dict[int, set[str]] = {}
    for c, i, end, cand, mech, r0, nr in jobs:
        st, toks = states[c], captions[c]
        new_sum = csum[r0 + nr] - csum[r0]
        # the same positions of the original: tokens i .. end - 1 and the n - 1 words after them (or </s>)
        old_last = min(i + (end - i) + n - 1, len(toks) + 1) - 1
        old_sum = float(st.logps[i: old_last + 1].sum())
        lm_ratio = float(new_sum - old_sum)
        if lm_ratio + PRIOR[mech] + SIBLING_CAP < threshold:
            continue
        if c not in sib_sets:
            sib_sets[c] = {w for s in siblings[c] for w in s}
        orig_words = list(toks[i:end])
        ev = sibling_evidence(lm, orig_words, cand.split(" "), sib_sets[c], len(siblings[c]))
        total = lm_ratio + ev + PRIOR[mech]
        if total < threshold:
            continue
        key = (c, i)
        if key not in best or total > best[key].log_ratio:
            best[key] = RealWordHit(i, " ".join(orig_words), cand, total, mech, end, lm_ratio, ev)
    out: list[list[RealWordHit]] = [[] for _ in captions]
    for (c, _), hit in sorted(best.items()):
        out[c].append(hit)
    return out


def _sibling_options(index: CandidateIndex, tok: str, sib_vocab: set[str], seen: set[str],
                     end: int) -> list[tuple[str, str, int]]:
    """Words of the other captions within two edits of `tok` (a sibling's spelling of the word meant)."""
    out = []
    for w in sib_vocab:
        if w in seen or w == tok or abs(len(w) - len(tok)) > 2 or w not in index.suggestable:
            continue
        if _osa(tok, w) <= 2:
            mech = index.mechanism(tok, w)
            if mech is None and len(tok) >= SIBLING_EDIT2_MIN_LEN and _osa(tok, w) == 2 and not _variant(tok, w):
                mech = "edit2"
            if mech is not None:
                out.append((w, mech, end))
    return out
