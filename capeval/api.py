"""The public Python API: `capeval.score`, `capeval.audit`, `capeval.correlate` (and `capeval.load`).

Each accepts what a notebook has at hand — file paths, dataset names (`coco-karpathy-test`), URLs, or plain Python
data (`{image_id: caption}`, `[{"image_id": ..., "caption": ...}]`, DataFrames) — and returns a documented result
object whose `.to_pandas()` gives its main table. They are thin wrappers over the library functions the commands
use (`capeval.metrics.engine.score_systems`, `capeval.audit.audit_captions`, `capeval.meta.correlate.correlate`),
so numbers are identical to the CLI's. Heavy modules are imported on first call: `import capeval` stays fast.
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from capeval.audit.run import AuditResult
    from capeval.meta.correlate import CorrelationResult
    from capeval.records import CaptionSet

DEFAULT_METRICS = ("bleu", "cider", "rouge")
#: score names captioning papers report x 100 (BLEU, METEOR, ROUGE-L, CIDEr-D, SPICE)
X100_PREFIXES = ("bleu", "cider", "rouge", "meteor", "spice")


def load(source: object, **options: Any) -> CaptionSet:
    """Captions from a file, a dataset name, a URL or Python data; see `capeval.io.load`."""
    from capeval.io import load as io_load

    return io_load(source, **options)


# ------------------------------------------------------------------------------------------ score


@dataclass
class ScoreResult:
    """Scores of one or more caption systems against one reference set.

    corpus: DataFrame, one row per system (index `system`), one column per score (`bleu1`..`bleu4`, `cider`,
    `rouge`, `meteor`, ...), raw values as pycocoevalcap returns them (BLEU 0-1, CIDEr-D 0-10).
    per_caption: DataFrame, one row per system x image: system, image_id, caption_id, one column per score.
    signatures: score name -> reproducibility signature (tokenizer, idf source, references per image, version).
    unavailable: metric -> why it could not run here (e.g. SPICE without its jars); the other metrics are computed.
    """

    corpus: pd.DataFrame
    per_caption: pd.DataFrame
    signatures: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def systems(self) -> list[str]:
        return [str(s) for s in self.corpus.index]

    def to_pandas(self, level: str = "corpus", *, x100: bool = False) -> pd.DataFrame:
        """`level="corpus"` (systems x scores) or `"caption"` (per caption); `x100=True` scales BLEU, METEOR,
        ROUGE-L, CIDEr-D and SPICE by 100 as captioning papers report them."""
        if level not in ("corpus", "caption"):
            from capeval.errors import InputError

            raise InputError(f"unknown level {level!r}; expected 'corpus' or 'caption'")
        df = (self.corpus if level == "corpus" else self.per_caption).copy()
        if x100:
            for c in df.columns:
                if str(c).startswith(X100_PREFIXES):
                    df[c] = df[c] * 100
        return df

    def __getitem__(self, system: str) -> dict[str, float]:
        """Corpus scores of one system: `result["blip2"]["cider"]`."""
        return {str(k): float(v) for k, v in self.corpus.loc[system].items()}

    def __repr__(self) -> str:
        return f"ScoreResult({len(self.systems)} systems)\n{self.to_pandas(x100=True).round(1).to_string()}"

    def _repr_html_(self) -> str:
        return self.to_pandas(x100=True).round(1)._repr_html_()  # type: ignore[operator]


def _is_source(value: object) -> bool:
    """A value that names or holds one caption set (not a caption itself)."""
    from capeval.records import CaptionSet

    if isinstance(value, (CaptionSet, os.PathLike, Mapping)) or type(value).__name__ == "DataFrame":
        return True
    if isinstance(value, (list, tuple)):
        return bool(value) and not isinstance(value[0], str)
    if isinstance(value, str):
        from capeval.datasets import REGISTRY

        return value in REGISTRY or os.path.exists(value) or value.startswith(("http://", "https://", "file://"))
    return False


def _systems(candidates: object, name: str | None, allow_empty: bool) -> dict[str, CaptionSet]:
    """{system name: CaptionSet} from one source, a list of sources, or {name: source}."""
    from capeval.errors import InputError
    from capeval.io import load as io_load
    from capeval.records import Caption

    if isinstance(candidates, Mapping) and candidates and all(_is_source(v) for v in candidates.values()):
        return {str(k): io_load(v, name=str(k), allow_empty=allow_empty) for k, v in candidates.items()}
    if isinstance(candidates, (list, tuple)) and candidates and all(
            isinstance(c, (str, os.PathLike)) or type(c).__name__ == "CaptionSet" for c in candidates):
        out: dict[str, CaptionSet] = {}
        for c in candidates:
            cs = io_load(c, allow_empty=allow_empty)
            key, k = cs.name or "system", 2
            while key in out:
                key, k = f"{cs.name or 'system'}-{k}", k + 1
            out[key] = cs
        return out
    if candidates is None or (isinstance(candidates, (list, tuple, Mapping)) and not candidates):
        raise InputError("no candidates given; expected a caption file, dataset name, {image_id: caption} or "
                         "[{'image_id': ..., 'caption': ...}]")
    if isinstance(candidates, (list, tuple)) and candidates and isinstance(candidates[0], Caption):
        candidates = list(candidates)
    cs = io_load(candidates, allow_empty=allow_empty, name=name)
    return {name or cs.name or "system": cs}


def score(candidates: object, references: object, metrics: str | Sequence[str] = DEFAULT_METRICS, *,
          name: str | None = None, exclude_caption_ids: Iterable[str] = (), cider_idf: object = None,
          allow_empty: bool = False, progress: bool = False, **metric_options: Any) -> ScoreResult:
    """Score caption systems against references with exact pycocoevalcap metrics.

    candidates: one system (a file, dataset name, URL, `{image_id: caption}`, `[{"image_id", "caption"}]`, a
    DataFrame or CaptionSet; named `name`, else after its file or dataset), a list of files/dataset names, or
    `{system name: source}`. references: a file, dataset name, URL or `{image_id: [captions]}`.
    metrics: names or a comma-separated string (bleu, cider, rouge, meteor, spice, sacrebleu, bertscore; aliases
    bleu4, cider-d, rouge-l). `exclude_caption_ids` drops references first (e.g. the audit's flagged ids);
    `cider_idf` fixes CIDEr-D's document frequencies; `metric_options` go to the metrics that take them
    (bertscore_model=..., spice_lib=...). A caption that is None or not a string is an error naming it.
    """
    from capeval.io import load as io_load
    from capeval.metrics.engine import score_systems

    systems = _systems(candidates, name, allow_empty)
    refs = io_load(references, allow_empty=allow_empty, name="references")
    report = score_systems(systems, refs, list(metrics) if not isinstance(metrics, str) else metrics,
                           exclude_caption_ids=exclude_caption_ids, cider_idf=cider_idf, progress=progress,
                           **metric_options)
    return ScoreResult(report.corpus, report.per_caption, dict(report.signatures), dict(report.unavailable))


# ------------------------------------------------------------------------------------------ audit


class _Wrapped:
    """Attribute access falls through to the library result (`.result`), so its methods stay available."""

    result: Any

    def __getattr__(self, item: str) -> Any:
        if item == "result":
            raise AttributeError(item)
        return getattr(self.result, item)


@dataclass
class AuditReport(_Wrapped):
    """Findings of a reference audit.

    findings: DataFrame, one row per finding: caption_id, image_id, category (misspelling, real_word, grammar,
    truncated, thin, off_consensus, duplicate, formatting, ...), rule, span, suggestion, confidence, message.
    result: the library's `capeval.audit.AuditResult` (its methods work on the report too: `flagged_ids()`,
    `corrected_texts()`, `captions`).
    """

    findings: pd.DataFrame
    result: AuditResult

    def to_pandas(self) -> pd.DataFrame:
        return self.findings.copy()

    def counts(self) -> pd.Series:
        """Findings per category."""
        return self.findings["category"].value_counts() if len(self.findings) else self.findings["category"]

    def __repr__(self) -> str:
        n_caps = len(self.result.captions)
        flagged = self.findings["caption_id"].nunique() if len(self.findings) else 0
        by_cat = ", ".join(f"{k} {v}" for k, v in self.counts().items()) if len(self.findings) else "none"
        return f"AuditReport({n_caps} captions, {flagged} flagged; {by_cat})"

    def _repr_html_(self) -> str:
        return self.findings.head(50)._repr_html_()  # type: ignore[operator]


def audit(captions: object, *, name: str | None = None, allow_empty: bool = True, progress: bool = False,
          **options: Any) -> AuditReport:
    """Audit caption references for misspellings, real-word errors, grammar slips, truncated, thin, off-consensus
    and duplicate captions. `captions`: a file, dataset name, URL or Python data (as `capeval.load`); empty
    captions are read (and reported) by default. `options` go to `capeval.audit.audit_captions` (backend=,
    min_confidence=, lt_url=). The corpus is never modified."""
    from capeval.audit.run import audit_captions
    from capeval.io import load as io_load

    cs = io_load(captions, allow_empty=allow_empty, name=name)
    result = audit_captions(cs, progress=progress, **options)
    return AuditReport(result.findings_frame(), result)


class AuditModule(types.ModuleType):
    """The `capeval.audit` package is also the API function: `capeval.audit(captions)` calls `capeval.api.audit`
    (a package and a function cannot share the name otherwise)."""

    def __call__(self, captions: object, **options: Any) -> AuditReport:
        return audit(captions, **options)


# ------------------------------------------------------------------------------------------ correlate


@dataclass
class CorrelationReport(_Wrapped):
    """Agreement of each metric with human judgments, with 95% bootstrap CIs.

    table: DataFrame, one row per metric x level x statistic: metric, level, statistic (kendall tau-b/tau-c,
    pearson, spearman, accuracy ...), value, ci_low, ci_high, n, n_images.
    scores: DataFrame, one row per judgment: image_id, caption_id, system, rating, one column per metric.
    result: the library's `capeval.meta.correlate.CorrelationResult` (`wide()`, `protocol`, `signatures`,
    `write(path)` work on the report too).
    """

    table: pd.DataFrame
    scores: pd.DataFrame
    result: CorrelationResult

    def to_pandas(self) -> pd.DataFrame:
        return self.table.copy()

    def __repr__(self) -> str:
        return f"CorrelationReport({self.result.judgments}, {self.result.n_rows} judgments)\n" \
               f"{self.result.wide().to_string()}"

    def _repr_html_(self) -> str:
        return self.result.wide()._repr_html_()  # type: ignore[operator]


def correlate(judgments: object, references: object = None, *, candidates: object = None,
              metrics: str | Sequence[str] | None = None, **options: Any) -> CorrelationReport:
    """Score judged captions with capeval's metrics and correlate them with the human ratings.

    judgments: a registered set (`flickr8k-expert`, `flickr8k-crowdflower`, ...), a judgments file, or records
    (a DataFrame or list of dicts with image_id, caption_id or system, caption, rating[, rater, scale]).
    references: a file, dataset name or Python data (default: the set's own). candidates: caption files or
    {system: source} to look judged systems up in. `options` go to `capeval.meta.correlate.correlate`
    (level=, statistics=, bootstrap=, seed=, leave_one_out=, compare_metrics=, unit=, ...).
    """
    from capeval.io import load as io_load
    from capeval.meta.correlate import DEFAULT_METRICS as CORR_METRICS
    from capeval.meta.correlate import correlate as _correlate
    from capeval.meta.judgments import judgments_from_records

    human = judgments
    if not isinstance(judgments, (str, os.PathLike)) and (
            type(judgments).__name__ == "DataFrame" or isinstance(judgments, (list, tuple))):
        human = judgments_from_records(judgments, name="judgments")  # type: ignore[arg-type]
    refs = None if references is None else io_load(references, allow_empty=True, name="references")
    cands = None
    if candidates is not None:
        cands = _systems(candidates, None, allow_empty=False)
    if metrics is None:
        metrics = CORR_METRICS
    elif isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    result = _correlate(human, refs, cands, list(metrics), **options)  # type: ignore[arg-type]
    return CorrelationReport(result.table, result.scores, result)


__all__ = ["AuditReport", "CorrelationReport", "ScoreResult", "audit", "correlate", "load", "score"]
