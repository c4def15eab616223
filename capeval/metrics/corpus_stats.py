"""Mergeable corpus statistics for BLEU, CIDEr-D and ROUGE-L, so a corpus split into image shards scores exactly as
the one-process `score_systems` does.

Pass 1 summarises each shard's evaluated documents (images with a candidate): CIDEr-D's document frequencies over the
evaluated references, the number of documents, the vocabulary with the place each token first appears (the
one-process run numbers tokens in that order, and the order of n-gram ids decides floating-point summation order)
and the reference counts. Summaries merge associatively and commutatively (sums, minimums). Pass 2 scores each shard
with the merged summary through the metrics' own functions (`bleu_statistics`, `cider_results`, `rouge_results`);
BLEU's corpus score comes from the summed integer statistics, CIDEr-D's and ROUGE-L's from the mean of the
per-document scores in reference order, so every number equals the one-process run bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from capeval.metrics.cider import CiderIdf, _eval_df
from capeval.metrics.ngrams import PreparedReferences, Vocab, gram_strings, prepare_references

#: first appearance of a token: (phase, document position, reference position, token index); phase 1 is for the
#: pieces of whitespace-bearing tokens, which the one-process run numbers after every whole token
TokenKey = tuple[int, int, int, int]


def _first_seen(docs: Sequence[Sequence[list[str]]], doc_pos: Sequence[int], ref_pos: Sequence[Sequence[int]]
                ) -> dict[str, TokenKey]:
    """Where each token first appears in the flat reference stream, in the numbering `encode_batch` uses."""
    seen: dict[str, TokenKey] = {}
    spaced: list[tuple[int, int, list[str]]] = []
    for d, refs, rpos in zip(doc_pos, docs, ref_pos):
        for q, toks in zip(rpos, refs):
            for m, t in enumerate(toks):
                if t not in seen:
                    seen[t] = (0, d, q, m)
                if len(t.split()) != 1:
                    spaced.append((d, q, toks))
    for d, q, toks in spaced:
        for m, t in enumerate(" ".join(toks).split()):
            if t not in seen:
                seen[t] = (1, d, q, m)
    return seen


@dataclass
class NgramSummary:
    """Pass-1 statistics of the evaluated documents of one system: merge shards with `merge`."""

    num_docs: int = 0
    df: dict[str, int] = field(default_factory=dict)  # n-gram (space-joined, orders 1..n) -> documents containing it
    tokens: dict[str, TokenKey] = field(default_factory=dict)
    nrefs_min: int = 0
    nrefs_max: int = 0
    n: int = 4

    @classmethod
    def from_documents(cls, docs: Sequence[Sequence[list[str]]], doc_pos: Sequence[int],
                       ref_pos: Sequence[Sequence[int]], *, n: int = 4, with_df: bool = True) -> NgramSummary:
        """Summary of tokenized documents (each a list of reference token lists) at input positions `doc_pos`
        (the document's first reference) with reference positions `ref_pos`."""
        if not docs:
            return cls(n=n)
        df: dict[str, int] = {}
        if with_df:
            refs = prepare_references(docs, n=n)
            strings = gram_strings(refs.grams, refs.vocab)
            for k in range(1, n + 1):
                for s, c in zip(strings[k - 1], _eval_df(refs, k).tolist()):
                    if c:
                        df[s] = c
        sizes = [len(d) for d in docs]
        return cls(len(docs), df, _first_seen(docs, doc_pos, ref_pos), min(sizes), max(sizes), n)

    def merge(self, other: NgramSummary) -> NgramSummary:
        """The summary of both shards' documents (shards hold disjoint images)."""
        if other.n != self.n:
            raise ValueError(f"cannot merge n-gram summaries of orders {self.n} and {other.n}")
        if not self.num_docs:
            return other
        if not other.num_docs:
            return self
        big, small = (self.df, other.df) if len(self.df) >= len(other.df) else (other.df, self.df)
        df = dict(big)
        for s, c in small.items():
            df[s] = df.get(s, 0) + c
        tokens = dict(self.tokens)
        for t, key in other.tokens.items():
            mine = tokens.get(t)
            if mine is None or key < mine:
                tokens[t] = key
        return NgramSummary(self.num_docs + other.num_docs, df, tokens, min(self.nrefs_min, other.nrefs_min),
                            max(self.nrefs_max, other.nrefs_max), self.n)

    def vocab(self) -> Vocab:
        """A vocabulary numbering tokens as the one-process run over the whole corpus does."""
        v = Vocab()
        for t in sorted(self.tokens, key=self.tokens.__getitem__):
            v._add(t)
        return v

    def cider_idf(self) -> CiderIdf:
        """The evaluated references' document frequencies as a CiderIdf (what `cider_results(idf=None)` computes
        over the whole corpus)."""
        return MergedIdf(self.df, self.num_docs, self.n, source="eval-refs")

    def nrefs(self) -> np.ndarray:
        """Smallest and largest reference count (what signatures report)."""
        return np.array([self.nrefs_min, self.nrefs_max], dtype=np.int64)

    def size_bytes(self) -> int:
        """Approximate pickled size, for reports."""
        import pickle

        return len(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))


@dataclass(frozen=True)
class MergedIdf(CiderIdf):
    """Document frequencies merged from shards. Its digest only keys per-shard caches (hashing every n-gram of a
    web-scale corpus for each shard would cost more than scoring it); the engine reports `df:eval-refs(n=...)`."""

    @property
    def digest(self) -> str:
        return f"merged-{self.num_docs}-{len(self.df)}"


def prepare_shard_references(docs: Sequence[Sequence[list[str]]], summary: NgramSummary) -> PreparedReferences:
    """A shard's references indexed with the merged vocabulary, so n-gram ids sort as in the one-process run."""
    return prepare_references(docs, n=summary.n, vocab=summary.vocab())
