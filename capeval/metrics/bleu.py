"""BLEU-1..4 exactly as pycocoevalcap's BleuScorer computes it for COCO captions: the "closest" reference length
(ties toward the shorter reference), no smoothing but pycoco's tiny=1e-15 / small=1e-9 guards, per-caption scores
and the corpus score from summed statistics. Vectorised over n-gram id arrays (see ngrams.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from capeval.metrics.base import Metric, MetricResult, Signature
from capeval.metrics.ngrams import PreparedCandidates, PreparedReferences, prepare_candidates, prepare_references

TINY = 1e-15
SMALL = 1e-9
_BIG = np.int64(1 << 32)


def _ref_max_counts(refs: PreparedReferences, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (document, n-gram) keys of order k with the maximum count over the document's references (cached)."""
    key = ("bleu-max", k)
    hit = refs.cache.get(key)
    if hit is None:
        g = refs.grams
        num = max(g.num_grams[k - 1], 1)
        rk = refs.ref_doc[g.cap[k - 1]] * num + g.gram[k - 1]
        order = np.argsort(rk, kind="stable")
        rk, cnt = rk[order], g.count[k - 1][order]
        if len(rk):
            starts = np.concatenate([[0], np.nonzero(np.diff(rk))[0] + 1])
            hit = (rk[starts], np.maximum.reduceat(cnt, starts))
        else:
            hit = (rk, cnt)
        refs.cache[key] = hit
    return hit  # type: ignore[return-value]


def _closest_ref_len(refs: PreparedReferences, testlen: np.ndarray) -> np.ndarray:
    """pycoco's `min((abs(l - testlen), l) for l in reflens)[1]` for every document at once."""
    reflen = refs.grams.lengths
    combined = np.abs(reflen - testlen[refs.ref_doc]) * _BIG + reflen
    starts = np.zeros(refs.num_docs, dtype=np.int64)
    np.cumsum(refs.nrefs[:-1], out=starts[1:])
    return np.minimum.reduceat(combined, starts) % _BIG


def bleu_statistics(refs: PreparedReferences, cands: PreparedCandidates, n: int = 4) -> dict[str, np.ndarray]:
    """Per-document sufficient statistics: testlen, closest reflen, guess[k], correct[k] (k = 1..n)."""
    ndocs = refs.num_docs
    testlen = cands.grams.lengths
    correct = np.zeros((n, ndocs), dtype=np.int64)
    guess = np.zeros((n, ndocs), dtype=np.int64)
    for k in range(1, n + 1):
        guess[k - 1] = np.maximum(0, testlen - k + 1)
        rkeys, rmax = _ref_max_counts(refs, k)
        num = max(refs.grams.num_grams[k - 1], 1)
        cg = cands.grams.gram[k - 1]
        ccap = cands.grams.cap[k - 1]
        known = cg < refs.grams.num_grams[k - 1]
        ckey = ccap[known] * num + cg[known]
        pos = np.searchsorted(rkeys, ckey)
        pos_c = np.minimum(pos, max(len(rkeys) - 1, 0))
        hit = (pos < len(rkeys)) & (rkeys[pos_c] == ckey) if len(rkeys) else np.zeros(len(ckey), bool)
        maxref = np.where(hit, rmax[pos_c] if len(rkeys) else 0, 0)
        clipped = np.minimum(cands.grams.count[k - 1][known], maxref)
        correct[k - 1] = np.bincount(ccap[known], weights=clipped, minlength=ndocs).astype(np.int64)
    reflen = _closest_ref_len(refs, testlen) if ndocs else np.zeros(0, np.int64)
    return {"testlen": testlen, "reflen": reflen, "guess": guess, "correct": correct}


def bleu_from_stats(stats: dict[str, np.ndarray], n: int = 4) -> tuple[list[float], np.ndarray]:
    """Corpus BLEU-1..n and per-document scores with pycoco's arithmetic (same operation order)."""
    testlen = stats["testlen"].astype(np.float64)
    reflen = stats["reflen"].astype(np.float64)
    per = np.empty((n, len(testlen)))
    b = np.ones(len(testlen))
    for k in range(n):
        b = b * ((stats["correct"][k].astype(np.float64) + TINY) / (stats["guess"][k].astype(np.float64) + SMALL))
        per[k] = b ** (1.0 / (k + 1))
    ratio = (testlen + TINY) / (reflen + SMALL)
    short = ratio < 1
    if short.any():
        per[:, short] *= np.exp(1 - 1 / ratio[short])
    # corpus: Python floats exactly like BleuScorer.compute_score
    tl, rl = int(stats["testlen"].sum()), int(stats["reflen"].sum())
    corpus, bb = [], 1.0
    for k in range(n):
        bb *= float(int(stats["correct"][k].sum()) + TINY) / (int(stats["guess"][k].sum()) + SMALL)
        corpus.append(bb ** (1.0 / (k + 1)))
    r = (tl + TINY) / (rl + SMALL)
    if r < 1:
        corpus = [c * math.exp(1 - 1 / r) for c in corpus]
    return corpus, per


def bleu_signature(k: int, nrefs: np.ndarray, tok: str) -> Signature:
    from capeval import __version__

    return Signature.make(f"bleu{k}", n=k, **{"ref-len": "closest", "smooth": "none(pycoco tiny=1e-15)", "tok": tok,
                                             "nrefs": _nrefs_str(nrefs), "capeval": __version__})


def _nrefs_str(nrefs: np.ndarray) -> str:
    if len(nrefs) == 0:
        return "0"
    lo, hi = int(nrefs.min()), int(nrefs.max())
    return str(lo) if lo == hi else f"{lo}-{hi}"


def bleu_results(refs: PreparedReferences, cands: PreparedCandidates, n: int = 4, tok: str = "ptb-py"
                 ) -> list[MetricResult]:
    stats = bleu_statistics(refs, cands, n)
    corpus, per = bleu_from_stats(stats, n)
    return [MetricResult(f"bleu{k + 1}", float(corpus[k]), per[k], bleu_signature(k + 1, refs.nrefs, tok),
                         {"testlen": int(stats["testlen"].sum()), "reflen": int(stats["reflen"].sum())})
            for k in range(n)]


class Bleu(Metric):
    """BLEU-1..4 (pycocoevalcap `Bleu(4)`), on PTB tokens from capeval's Java-free tokenizer."""

    name = "bleu"
    outputs = ("bleu1", "bleu2", "bleu3", "bleu4")

    def __init__(self, n: int = 4) -> None:
        self.n = n
        self.outputs = tuple(f"bleu{k}" for k in range(1, n + 1))

    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[MetricResult]:
        from capeval.text.tokenize import PTBTokenizer

        tok = PTBTokenizer()
        refs = prepare_references([[tok.tokenize(r) for r in rs] for rs in references], n=self.n)
        cands = prepare_candidates(refs, [tok.tokenize(c) for c in candidates])
        return bleu_results(refs, cands, self.n)
