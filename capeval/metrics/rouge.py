"""ROUGE-L exactly as pycocoevalcap's `Rouge`: LCS over space-split PTB tokens, beta 1.2, the maximum precision and
the maximum recall over references (taken separately), then the F-measure. LCS runs in rapidfuzz (compiled)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz.distance import LCSseq

from capeval.metrics.base import Metric, MetricResult, Signature
from capeval.metrics.ngrams import PreparedCandidates, PreparedReferences, prepare_candidates, prepare_references

BETA = 1.2
_EMPTY = -1  # pycoco splits "" on " " into [""]: one empty token that only matches another empty caption


def _ids(ids: Sequence[Sequence[int]]) -> list[Sequence[int]]:
    return [t if t else (_EMPTY,) for t in ids]


def rouge_results(refs: PreparedReferences, cands: PreparedCandidates, beta: float = BETA, tok: str = "ptb-py"
                  ) -> list[MetricResult]:
    ref_ids = _ids(refs.ids)
    cand_ids = _ids(cands.ids)
    lcs = LCSseq.similarity
    scores = np.empty(len(cand_ids))
    b2 = beta ** 2
    pos = 0
    for d, (c, nr) in enumerate(zip(cand_ids, refs.nrefs.tolist())):
        lc = float(len(c))
        prec_max = rec_max = 0.0
        for r in ref_ids[pos:pos + nr]:
            m = lcs(r, c)
            p, rc = m / lc, m / float(len(r))
            if p > prec_max:
                prec_max = p
            if rc > rec_max:
                rec_max = rc
        pos += nr
        if prec_max != 0 and rec_max != 0:
            scores[d] = ((1 + b2) * prec_max * rec_max) / float(rec_max + b2 * prec_max)
        else:
            scores[d] = 0.0
    from capeval import __version__
    from capeval.metrics.bleu import _nrefs_str

    sig = Signature.make("rouge-l", beta=f"{beta:g}", agg="max-p,max-r", tok=tok, nrefs=_nrefs_str(refs.nrefs),
                         capeval=__version__)
    return [MetricResult("rouge", float(np.mean(scores)) if len(scores) else float("nan"), scores, sig)]


class RougeL(Metric):
    """ROUGE-L (pycocoevalcap `Rouge`)."""

    name = "rouge"
    outputs = ("rouge",)

    def __init__(self, beta: float = BETA) -> None:
        self.beta = beta

    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[MetricResult]:
        from capeval.text.tokenize import PTBTokenizer

        tok = PTBTokenizer()
        refs = prepare_references([[tok.tokenize(r) for r in rs] for rs in references])
        cands = prepare_candidates(refs, [tok.tokenize(c) for c in candidates])
        return rouge_results(refs, cands, self.beta)
