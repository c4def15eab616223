"""The caption language model: an interpolated modified Kneser-Ney 4-gram model of caption English in backoff form
(built by `capeval.audit.build_lm` from public reference captions; shipped as `capeval/audit/data/lm.npz`).

Lookups are vectorised: each query is a row of word ids (the history, then the word), packed into one uint64 key per
order and found with `np.searchsorted` in that order's sorted key array. Log-probabilities are natural logs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
_BITS = np.uint64(16)
_FIELD = np.uint64(0xFFFF)  # one id's bits in a packed key


def _low_fields(k: int) -> np.uint64:
    """The mask that keeps the last `k` ids of a packed key."""
    return np.uint64((1 << (16 * k)) - 1)


def default_path() -> Path:
    """The shipped artefact."""
    return Path(str(resources.files("capeval.audit") / "data" / "lm.npz"))


def _pack(rows: np.ndarray) -> np.ndarray:
    """One uint64 key per row of ids, the first id in the highest 16 bits; a pad (-1) becomes 0xFFFF, no word id."""
    fields = rows.astype(np.uint64) & _FIELD
    key = fields[:, 0].copy()
    for j in range(1, fields.shape[1]):
        key <<= _BITS
        key |= fields[:, j]
    return key


def pack_rows(rows: np.ndarray) -> np.ndarray:
    """The packed keys of rows of ids, as `CaptionLM.logprob_keys` takes them."""
    return _pack(np.asarray(rows, dtype=np.int64))


def with_id_at(keys: np.ndarray, back: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Packed keys with the id `back` places before each row's predicted word (0: the word itself) replaced by `ids`:
    the rows of a sentence with one word substituted, without building them."""
    shift = _BITS * np.asarray(back).astype(np.uint64)
    return (keys & ~(_FIELD << shift)) | (np.asarray(ids).astype(np.uint64) << shift)


def _find(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of `query` in the sorted `keys` and whether each was found (binary search: the reference the hash
    index is tested against)."""
    idx = np.searchsorted(keys, query)
    np.minimum(idx, len(keys) - 1, out=idx)
    return idx, keys[idx] == query


_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)  # no key: word ids are below 0xFFFF
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class _HashIndex:
    """Open-addressing hash table (linear probing, load <= 1/2) from the uint64 keys of one order to their positions
    in the sorted arrays: one or two memory reads a lookup instead of a binary search. Built at load time, in numpy;
    the sorted arrays stay the stored form."""

    def __init__(self, keys: np.ndarray):
        self.bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) * 2))))
        size = 1 << self.bits
        self.slots = np.full(size, _EMPTY, np.uint64)
        self.pos = np.zeros(size, np.int64)
        home = self._home(keys)
        pending = np.arange(len(keys))
        probe = 0
        while len(pending):
            slot = (home[pending] + probe) & (size - 1)
            free = self.slots[slot] == _EMPTY
            cand, cslot = pending[free], slot[free]
            _, first = np.unique(cslot, return_index=True)  # one key per free slot this round
            self.slots[cslot[first]] = keys[cand[first]]
            self.pos[cslot[first]] = cand[first]
            placed = np.zeros(len(pending), bool)
            placed[np.flatnonzero(free)[first]] = True
            pending = pending[~placed]
            probe += 1 if len(pending) else 0
            if len(pending) and not (~placed).any():
                break
        self.max_probe = probe + 1

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys * _GOLDEN) >> np.uint64(64 - self.bits)).astype(np.int64)

    def find(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of `query` in the sorted keys (meaningless where absent) and whether each was found."""
        mask = np.int64(len(self.slots) - 1)
        slot = self._home(query)
        k = self.slots[slot]
        hit = k == query
        idx = self.pos[slot]  # the first probe answers most queries: no index arrays for it
        active = np.flatnonzero(~hit & (k != _EMPTY))
        probe = 1
        while len(active) and probe <= self.max_probe:
            s = (slot[active] + probe) & mask
            k = self.slots[s]
            found = k == query[active]
            if found.any():
                a = active[found]
                idx[a] = self.pos[s[found]]
                hit[a] = True
            active = active[~found & (k != _EMPTY)]
            probe += 1
        return idx, hit


class CaptionLM:
    """A backoff n-gram model: P(w | h) = p(h w) if the n-gram is stored, else bow(h) * P(w | h minus its first
    word). Arrays: `vocab` (ids; 0 = <unk>, 1 = <s>, 2 = </s>), `logp1`/`bow1` per word id, and per order k >= 2
    sorted `keys{k}` with `logp{k}` (and `bow{k}` below the top order); `sib_agree`/`sib_base` per word id are the
    sibling statistics the real-word checker weighs (see `build_lm.sibling_statistics`)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.order = int(arrays["order"])
        self.vocab: tuple[str, ...] = tuple(bytes(arrays["vocab"]).decode("utf-8").split("\n"))
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.vocab)}
        self.unigram_count = np.asarray(arrays["unigram_count"])
        self.logp1 = np.asarray(arrays["logp1"], dtype=np.float64)
        self.bow = {k: np.asarray(arrays[f"bow{k}"], dtype=np.float64) for k in range(1, self.order)}
        self.keys = {k: np.asarray(arrays[f"keys{k}"]) for k in range(2, self.order + 1)}
        self._hash = {k: _HashIndex(v) for k, v in self.keys.items()}
        self.logp = {k: np.asarray(arrays[f"logp{k}"], dtype=np.float64) for k in range(2, self.order + 1)}
        self.sib_agree = np.asarray(arrays["sib_agree"], dtype=np.float64) if "sib_agree" in arrays else None
        self.sib_base = np.asarray(arrays["sib_base"], dtype=np.float64) if "sib_base" in arrays else None
        # within-caption co-occurrence of content words (`build_lm.cooccurrence_statistics`), when shipped
        self.cooc = {k: np.asarray(arrays[k]) for k in ("cooc_keys", "cooc_count", "cooc_df", "cooc_n")
                     if k in arrays} if "cooc_keys" in arrays else None
        self.unk, self.bos, self.eos = self.index[UNK], self.index[BOS], self.index[EOS]
        # arrays other modules keep with the model (the real-word candidate table, `candidates.candidate_table`)
        self.extras = {k: v for k, v in arrays.items() if k.startswith("cand_")}

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> CaptionLM:
        """The model at `path` (default: the shipped artefact), loaded once per process and path."""
        return _load(str(Path(path).resolve()) if path is not None else str(default_path()))

    # ------------------------------------------------------------------ ids

    def ids(self, tokens: Sequence[str]) -> list[int]:
        """Word ids (<unk> for words outside the vocabulary)."""
        get, unk = self.index.get, self.unk
        return [get(t, unk) for t in tokens]

    def __contains__(self, word: str) -> bool:
        return word in self.index and self.index[word] > 2

    @cached_property
    def max_logprob(self) -> np.ndarray:
        """Per word id, an upper bound of ln P(word | any history): the best stored n-gram ending in the word at each
        order, an unseen one costing at most the largest backoff weight of the order above (ln weights can be
        positive). Lets a caller skip a prediction that cannot matter."""
        bound = self.logp1.copy()
        for k in range(2, self.order + 1):
            # backing off from order k to k - 1 adds ln bow(history of k - 1 words) at most
            bound += max(0.0, float(self.bow[k - 1].max())) if len(self.bow[k - 1]) else 0.0
            np.maximum.at(bound, (self.keys[k] & _FIELD).astype(np.int64), self.logp[k])
        return bound

    # ------------------------------------------------------------------ scoring

    def logprob_rows(self, rows: np.ndarray, *, with_order: bool = False):
        """ln P(last id | the ids before it) for each row of an (M, order) id matrix; -1 pads a history that is
        shorter than order - 1 (at the start of a sentence, after <s>). With `with_order`, also the length of the
        longest stored n-gram that ends each row (1 = the word alone: nothing of its history was seen with it)."""
        return self.logprob_keys(pack_rows(rows), with_order=with_order)

    def logprob_keys(self, full: np.ndarray, *, with_order: bool = False):
        """`logprob_rows` of rows given as their packed keys (`_pack`: the key of any suffix or history of a row is
        its key masked and shifted, so a row is packed once for all orders, and a caller can make the key of a row
        with one id changed without building the row)."""
        n = self.order
        m = len(full)
        out = np.zeros(m)
        acc = np.zeros(m)  # backoff weights collected so far
        done = np.zeros(m, bool)
        found_order = np.ones(m, np.int8) if with_order else None
        for k in range(n, 1, -1):
            # the row's id k - 1 places before the word is a pad (0xFFFF): no k-gram to look up
            sel = np.flatnonzero(((full >> (_BITS * np.uint64(k - 1))) & _FIELD) != _FIELD)
            sel = sel[~done[sel]]
            if not len(sel):
                continue
            idx, hit = self._hash[k].find(full[sel] & _low_fields(k))
            found = sel[hit]
            out[found] = acc[found] + self.logp[k][idx[hit]]
            done[found] = True
            if with_order:
                found_order[found] = k
            miss = sel[~hit]
            if len(miss):
                if k == 2:
                    acc[miss] += self.bow[1][((full[miss] >> _BITS) & _FIELD).astype(np.int64)]
                else:  # the history: the k - 1 ids before the word
                    cidx, chit = self._hash[k - 1].find((full[miss] >> _BITS) & _low_fields(k - 1))
                    acc[miss[chit]] += self.bow[k - 1][cidx[chit]]
        rest = ~done
        out[rest] = acc[rest] + self.logp1[(full[rest] & _FIELD).astype(np.int64)]
        return (out, found_order) if with_order else out

    def history_rows(self, ids: Sequence[int], positions: Sequence[int] | None = None) -> np.ndarray:
        """Rows for `logprob_rows` predicting ids[p] (for p in `positions`, default all but the first) from the
        ids before it; `ids` must start with <s>."""
        n = self.order
        padded = np.concatenate([np.full(n - 1, -1, np.int64), np.asarray(ids, np.int64)])
        pos = np.arange(1, len(ids)) if positions is None else np.asarray(positions, np.int64)
        return padded[pos[:, None] + np.arange(n)[None, :]]

    def token_logprobs(self, tokens: Sequence[str], *, eos: bool = False) -> list[float]:
        """ln P(token_i | the tokens before it, from the start of the caption) for each token (and for </s> when
        `eos`). A word outside the vocabulary is scored as <unk>."""
        ids = [self.bos, *self.ids(tokens)] + ([self.eos] if eos else [])
        if len(ids) == 1:
            return []
        return self.logprob_rows(self.history_rows(ids)).tolist()

    def logprob(self, tokens: Sequence[str]) -> float:
        """ln P(caption), every token and the end of the caption included."""
        return float(sum(self.token_logprobs(tokens, eos=True)))

    def distribution(self, history: Sequence[str]) -> np.ndarray:
        """P(w | history) for every word id (0 for <s>): sums to one (a test checks it)."""
        ids = [self.bos, *self.ids(history)]
        ctx = ([-1] * (self.order - 1) + ids)[-(self.order - 1):]
        rows = np.array([ctx + [w] for w in range(len(self.vocab))], dtype=np.int64)
        p = np.exp(self.logprob_rows(rows))
        p[self.bos] = 0.0
        return p

    def perplexity(self, sentences: Sequence[Sequence[str]]) -> float:
        """Per-token perplexity (words and </s>)."""
        lp = [x for s in sentences for x in self.token_logprobs(s, eos=True)]
        return math.exp(-sum(lp) / len(lp))


@lru_cache(maxsize=4)
def _load(path: str) -> CaptionLM:
    with np.load(path, allow_pickle=False) as z:
        return CaptionLM({k: z[k] for k in z.files})
