"""Shared n-gram statistics for BLEU and CIDEr-D: tokens become integer ids, n-grams become integer ids per order,
and every count lives in numpy arrays. References are indexed once and reused for every system.

Layout: a `Documents` batch is a list of documents, each one candidate with its own reference list (pycocoevalcap's
`gts[id]` / `res[id]`). References are stored flat, document after document (`ref_doc[i]` is the document of
reference i). For each order k (1..n) the unique (caption, n-gram) pairs are kept as parallel arrays.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: multiplier that packs (prefix n-gram id, token id) into one int64 key; allows 2**24 distinct tokens
_M = np.int64(1 << 24)


class Vocab:
    """Token string -> int id, shared between references and candidates. Tokens that contain whitespace (Java's
    non-breaking space inside "5 7/8") are recorded: pycocoevalcap's BLEU/CIDEr `split()` them, ROUGE-L does not."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.tokens: list[str] = []
        self.spaced: set[str] = set()

    def encode(self, tokens: Sequence[str]) -> tuple[int, ...]:
        """The tokens' ids (new tokens added); a tuple of ints, which the cyclic garbage collector does not track."""
        out = tuple(map(self.ids.get, tokens))
        if None in out:
            out = tuple(self._add(t) if i is None else i for t, i in zip(tokens, out))
        return out  # type: ignore[return-value]

    def _add(self, t: str) -> int:
        i = self.ids.get(t)
        if i is None:
            i = self.ids[t] = len(self.tokens)
            self.tokens.append(t)
            if len(t.split()) != 1:
                self.spaced.add(t)
            if i >= int(_M):
                raise ValueError("more than 16.7M distinct tokens")
        return i

    def split_for_ngrams(self, tokens: list[str]) -> list[str]:
        """The token list pycocoevalcap's BLEU/CIDEr see (`" ".join(tokens).split()`)."""
        if self.spaced and not self.spaced.isdisjoint(tokens):
            return " ".join(tokens).split()
        return tokens


@dataclass
class GramTable:
    """Unique (caption, n-gram) counts for orders 1..n of a batch of captions."""

    n: int
    lengths: np.ndarray  # tokens per caption (after whitespace split)
    cap: list[np.ndarray] = field(default_factory=list)  # per order: caption index of each entry
    gram: list[np.ndarray] = field(default_factory=list)  # per order: n-gram id
    count: list[np.ndarray] = field(default_factory=list)  # per order: count in that caption
    keys: list[np.ndarray] = field(default_factory=list)  # per order: packed key of each id (sorted for references)
    num_grams: list[int] = field(default_factory=list)  # per order: number of distinct ids used


def encode_batch(token_lists: Sequence[Sequence[str]], vocab: Vocab
                 ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]:
    """Flat int64 token ids (whitespace-bearing tokens split like pycocoevalcap's BLEU/CIDEr), per-caption lengths,
    and the per-caption ids of the unsplit tokens (what ROUGE-L compares)."""
    enc = vocab.encode
    unsplit = [enc(toks) for toks in token_lists]
    if vocab.spaced:
        split = [enc(" ".join(t).split()) if not vocab.spaced.isdisjoint(t) else u for t, u in zip(token_lists, unsplit)]
    else:
        split = unsplit
    lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
    flat = np.fromiter(itertools.chain.from_iterable(split), dtype=np.int64, count=int(lengths.sum()))
    return flat, lengths, unsplit


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique for int64 keys via one sort (faster than numpy's hash-based unique here)."""
    if len(a) == 0:
        return a
    s = np.sort(a)
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def build_grams(ids: np.ndarray, lengths: np.ndarray, n: int = 4, reference: GramTable | None = None) -> GramTable:
    """Count n-grams of orders 1..n per caption. With `reference`, ids of n-grams known there are reused and new
    n-grams get fresh ids above them, so candidate and reference ids are comparable."""
    ncap = len(lengths)
    total = int(lengths.sum())
    starts = np.zeros(ncap, dtype=np.int64)
    if ncap:
        np.cumsum(lengths[:-1], out=starts[1:])
    cap_of_tok = np.repeat(np.arange(ncap, dtype=np.int64), lengths)
    remaining = (np.repeat(starts + lengths, lengths) - np.arange(total, dtype=np.int64)) if total else np.zeros(0, np.int64)
    table = GramTable(n=n, lengths=lengths)
    prev_full = np.full(total, -1, dtype=np.int64)
    for k in range(1, n + 1):
        idx = np.nonzero(remaining >= k)[0]
        key = ids[idx] if k == 1 else prev_full[idx] * _M + ids[idx + (k - 1)]
        if reference is None:
            uniq, gram = np.unique(key, return_inverse=True)
            keys_k, num = uniq, len(uniq)
        else:
            rkeys = reference.keys[k - 1]
            pos = np.searchsorted(rkeys, key)
            pos_c = np.minimum(pos, max(len(rkeys) - 1, 0))
            found = (pos < len(rkeys)) & (rkeys[pos_c] == key) if len(rkeys) else np.zeros(len(key), bool)
            gram = np.empty(len(key), dtype=np.int64)
            gram[found] = pos[found]
            new_u, new_inv = np.unique(key[~found], return_inverse=True)
            gram[~found] = len(rkeys) + new_inv
            keys_k, num = np.concatenate([rkeys, new_u]), len(rkeys) + len(new_u)
        gram = gram.astype(np.int64, copy=False)
        prev_full = np.full(total, -1, dtype=np.int64)
        prev_full[idx] = gram
        g = max(num, 1)
        ckey = cap_of_tok[idx] * g + gram
        ckey = np.sort(ckey)
        if len(ckey):
            first = np.concatenate([[0], np.nonzero(ckey[1:] != ckey[:-1])[0] + 1])
            uk, cnt = ckey[first], np.diff(np.append(first, len(ckey)))
        else:
            uk, cnt = ckey, np.zeros(0, np.int64)
        table.cap.append(uk // g)
        table.gram.append(uk % g)
        table.count.append(cnt.astype(np.int64))
        table.keys.append(keys_k)
        table.num_grams.append(num)
    return table


def gram_strings(table: GramTable, vocab: Vocab) -> list[list[str]]:
    """Space-joined text of every n-gram id, per order (to look them up in a fixed document-frequency table)."""
    out: list[list[str]] = []
    toks = vocab.tokens
    m = int(_M)
    for k in range(1, table.n + 1):
        keys = table.keys[k - 1].tolist()
        if k == 1:
            out.append([toks[t] for t in keys])
        else:
            prev = out[-1]
            out.append([prev[key // m] + " " + toks[key % m] for key in keys])
    return out


@dataclass
class PreparedReferences:
    """Reference side of a batch of documents, tokenized and counted once, reused for every system and metric."""

    tokens: list[list[str]]  # pycocoevalcap tokens of every reference, flat, document after document
    ids: list[tuple[int, ...]]  # the same as vocabulary ids (ROUGE-L)
    ref_doc: np.ndarray  # document index of each reference
    nrefs: np.ndarray  # references per document
    vocab: Vocab
    grams: GramTable
    cache: dict[object, object] = field(default_factory=dict)  # per-metric derived statistics (df, max counts...)

    @property
    def num_docs(self) -> int:
        return len(self.nrefs)


@dataclass
class PreparedCandidates:
    """Candidate side: one candidate per document, n-gram ids comparable with the references'."""

    tokens: list[list[str]]
    ids: list[tuple[int, ...]]
    grams: GramTable


def prepare_references(refs_tokens: Sequence[Sequence[list[str]]], n: int = 4, vocab: Vocab | None = None
                       ) -> PreparedReferences:
    """Index tokenized references given per document (each document: a non-empty list of token lists)."""
    vocab = vocab or Vocab()
    flat = [toks for doc in refs_tokens for toks in doc]
    nrefs = np.fromiter((len(doc) for doc in refs_tokens), dtype=np.int64, count=len(refs_tokens))
    if len(nrefs) and int(nrefs.min()) == 0:
        raise ValueError(f"document {int(np.argmin(nrefs))} has no references")
    ids, lengths, unsplit = encode_batch(flat, vocab)
    grams = build_grams(ids, lengths, n=n)
    ref_doc = np.repeat(np.arange(len(nrefs), dtype=np.int64), nrefs)
    return PreparedReferences(list(flat), unsplit, ref_doc, nrefs, vocab, grams)


def prepare_candidates(refs: PreparedReferences, cand_tokens: Sequence[list[str]]) -> PreparedCandidates:
    """Index one tokenized candidate per document against prepared references."""
    if len(cand_tokens) != refs.num_docs:
        raise ValueError(f"{len(cand_tokens)} candidates for {refs.num_docs} documents")
    ids, lengths, unsplit = encode_batch(cand_tokens, refs.vocab)
    return PreparedCandidates(list(cand_tokens), unsplit,
                              build_grams(ids, lengths, n=refs.grams.n, reference=refs.grams))
