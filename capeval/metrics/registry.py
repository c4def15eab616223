"""Metric names -> implementations. Native metrics (bleu, cider, rouge) live here; the others are imported lazily
by dotted path so a missing optional module or dependency makes that metric "unavailable", never an import error."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass

from capeval.errors import InputError, MetricUnavailable
from capeval.metrics.base import Metric

#: metric family -> "module:Class"
METRICS: dict[str, str] = {
    "bleu": "capeval.metrics.bleu:Bleu",
    "cider": "capeval.metrics.cider:CiderD",
    "rouge": "capeval.metrics.rouge:RougeL",
    "meteor": "capeval.metrics.meteor:Meteor",
    "spice": "capeval.metrics.spice:Spice",
    "sacrebleu": "capeval.metrics.sacrebleu_bleu:SacreBLEU",
    "bertscore": "capeval.metrics.bertscore:BERTScore",
}
#: computed natively on shared tokens and n-grams (no Java, exact vs pycocoevalcap)
NATIVE = ("bleu", "cider", "rouge")
#: accepted spellings -> (family, score names to keep; None = all)
ALIASES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    **{f"bleu{k}": ("bleu", (f"bleu{k}",)) for k in range(1, 5)},
    **{f"bleu-{k}": ("bleu", (f"bleu{k}",)) for k in range(1, 5)},
    "cider-d": ("cider", None), "ciderd": ("cider", None),
    "rouge-l": ("rouge", None), "rougel": ("rouge", None),
}
#: scores people report x100 (BLEU, CIDEr-D, ROUGE-L, METEOR, SPICE as in captioning papers)
REPORTED_X100 = ("bleu", "cider", "rouge", "meteor", "spice")


@dataclass(frozen=True)
class MetricRequest:
    """One metric family to compute and which of its scores to keep (None: all of them)."""

    family: str
    keep: tuple[str, ...] | None = None


def parse_metric_names(names: str | Iterable[str]) -> list[MetricRequest]:
    """`"bleu4,cider-d"` or `["bleu1", "bleu4", "rouge"]` -> one request per family, order kept, aliases merged."""
    if isinstance(names, str):
        names = names.split(",")
    order: list[str] = []
    keep: dict[str, set[str] | None] = {}
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name in METRICS:
            fam, k = name, None
        elif name in ALIASES:
            fam, k = ALIASES[name]
        else:
            known = ", ".join([*METRICS, *ALIASES])
            raise InputError(f"unknown metric {raw.strip()!r}; expected one of: {known}")
        if fam not in keep:
            order.append(fam)
            keep[fam] = set(k) if k else None
        elif keep[fam] is not None:
            keep[fam] = None if k is None else keep[fam] | set(k)  # type: ignore[operator]
    return [MetricRequest(f, None if keep[f] is None else tuple(sorted(keep[f]))) for f in order]  # type: ignore[arg-type]


def metric_class(family: str) -> type[Metric]:
    """The implementation class; MetricUnavailable when its module (or a dependency of it) is not installed."""
    target = METRICS[family]
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MetricUnavailable(f"{family}: cannot import {module_name} ({exc})") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise MetricUnavailable(f"{family}: {module_name} has no {cls_name}")
    return cls


_OPTION_NAMES = {"bertscore_model": ("bertscore_model", "model", "model_path", "model_type"),
                 "bertscore_layers": ("bertscore_layers", "num_layers")}


def create_metric(family: str, **options: object) -> Metric:
    """Instantiate a metric with the keyword options its constructor accepts (None-valued options are skipped)."""
    cls = metric_class(family)
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs: dict[str, object] = {}
    for key, value in options.items():
        if value is None:
            continue
        for candidate in _OPTION_NAMES.get(key, (key,)):
            if candidate in params or (takes_any and candidate == key):
                kwargs[candidate] = value
                break
    return cls(**kwargs)
