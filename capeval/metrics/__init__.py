"""capeval metrics: exact, Java-free BLEU-1..4 / CIDEr-D / ROUGE-L (identical to pycocoevalcap), plus METEOR, SPICE,
sacreBLEU and BERTScore through the same interface. Entry points: `compute_metric` (raw lists) and `score_systems`."""

from capeval.metrics.base import Metric, MetricResult, Signature
from capeval.metrics.engine import ScoreReport, compute_metric, compute_metric_many, score_systems
from capeval.metrics.registry import ALIASES, METRICS, NATIVE, REPORTED_X100, parse_metric_names


def build_cider_idf(references: object, path: object = None, **kwargs: object) -> object:
    """Document frequencies for CIDEr-D from a fixed reference corpus (see capeval.metrics.cider.build_cider_idf)."""
    from capeval.metrics.cider import build_cider_idf as _build

    return _build(references, path, **kwargs)  # type: ignore[arg-type]


__all__ = [
    "ALIASES",
    "METRICS",
    "NATIVE",
    "REPORTED_X100",
    "Metric",
    "MetricResult",
    "ScoreReport",
    "Signature",
    "build_cider_idf",
    "compute_metric",
    "compute_metric_many",
    "parse_metric_names",
    "score_systems",
]
