"""sacreBLEU on raw captions: corpus BLEU (sacrebleu defaults, 13a, exp smoothing) and sentence BLEU per caption.

This is the MT community's BLEU, on its own tokenization and on sacrebleu's 0-100 scale; it is *not* the COCO BLEU
(`bleu1..4`, PTB tokenization, no smoothing). The signature embeds sacrebleu's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from capeval import __version__
from capeval.metrics.base import Metric, MetricResult, Signature, check_inputs


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Transpose per-candidate reference lists into sacrebleu's reference streams, padding short lists with None."""
    width = max((len(r) for r in references), default=0)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


class SacreBLEU(Metric):
    """Corpus BLEU via `sacrebleu.metrics.BLEU.corpus_score`; per caption `sentence_score` with `effective_order=True`.

    Multi-reference with a variable number of references per caption (sacrebleu ignores the None padding).
    """

    name = "sacrebleu"
    outputs = ("sacrebleu",)

    def __init__(self, *, tokenize: str = "13a", lowercase: bool = False, smooth_method: str = "exp",
                 smooth_value: float | None = None) -> None:
        self.tokenize = tokenize
        self.lowercase = lowercase
        self.smooth_method = smooth_method
        self.smooth_value = smooth_value

    def unavailable_reason(self) -> str | None:
        try:
            import sacrebleu  # noqa: F401
        except ImportError:
            return "sacreBLEU needs the sacrebleu package: `pip install sacrebleu`"
        return None

    def _bleu(self, effective_order: bool):  # -> sacrebleu.metrics.BLEU
        from sacrebleu.metrics import BLEU

        return BLEU(tokenize=self.tokenize, lowercase=self.lowercase, smooth_method=self.smooth_method,
                    smooth_value=self.smooth_value, effective_order=effective_order)

    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[MetricResult]:
        check_inputs(candidates, references, "sacreBLEU")
        cands = list(candidates)
        corpus_bleu = self._bleu(effective_order=False)
        sentence_bleu = self._bleu(effective_order=True)
        if not cands:
            return [MetricResult("sacrebleu", float("nan"), np.zeros(0), self._signature(None))]
        result = corpus_bleu.corpus_score(cands, reference_streams(references))
        per_item = np.array([sentence_bleu.sentence_score(c, list(rs)).score for c, rs in zip(cands, references)],
                            dtype=float)
        details = {
            "sacrebleu": str(result),
            "precisions": list(result.precisions),
            "bp": result.bp,
            "sys_len": result.sys_len,
            "ref_len": result.ref_len,
            "scale": "0-100 (sacrebleu)",
            "per_item": "sentence BLEU, smooth exp, effective order",
        }
        return [MetricResult("sacrebleu", float(result.score), per_item, self._signature(corpus_bleu), details)]

    def _signature(self, bleu) -> Signature:  # bleu: sacrebleu BLEU after scoring, or None
        if bleu is None:
            import sacrebleu

            info = {"nrefs": "0", "case": "lc" if self.lowercase else "mixed", "eff": "no", "tok": self.tokenize,
                    "smooth": self.smooth_method, "version": sacrebleu.__version__}
        else:
            # sacrebleu's own signature, e.g. nrefs:5|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0
            info = dict(part.split(":", 1) for part in bleu.get_signature().format().split("|"))
        return Signature.make("sacrebleu", **info, sent=f"{self.smooth_method}+eff", scale=100,
                              capeval=__version__)
