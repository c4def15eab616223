"""What the audit does to the metrics: each system scored against all references, against the references with
flagged captions removed, and against the corrected references, with the rank changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from capeval.audit.finding import CAPTION_LEVEL, Finding
from capeval.audit.run import AuditResult
from capeval.records import CaptionSet

VARIANTS = ("all", "kept", "fixed")


def _score_column(columns: Iterable[str], want: str) -> str:
    cols = list(columns)
    key = want.replace("-", "").replace("_", "").lower()
    for c in cols:
        if c.replace("-", "").replace("_", "").lower() == key:
            return c
    raise KeyError(f"no {want} column in {cols}")


def rescore_impact(references: CaptionSet, systems: Mapping[str, CaptionSet],
                   findings: AuditResult | Iterable[Finding], *, progress: bool = True) -> pd.DataFrame:
    """BLEU-4 and CIDEr-D of every system with all references, references with a language error removed (as
    `score --exclude-captions findings.jsonl`) and confidently corrected references; ranks by CIDEr-D under each,
    and how they change."""
    from capeval.metrics import score_systems

    result = findings if isinstance(findings, AuditResult) else AuditResult(references, list(findings))
    if result.captions is not references:
        result = AuditResult(references, list(result.findings), backend=result.backend,
                             min_confidence=result.min_confidence)
    flagged = result.flagged_ids(CAPTION_LEVEL)
    kept = result.kept_captions()
    dropped = set(references.by_id()) - set(kept.by_id())
    reports = {
        "all": score_systems(dict(systems), references, ["bleu", "cider"], progress=progress),
        "kept": score_systems(dict(systems), references, ["bleu", "cider"], exclude_caption_ids=dropped,
                              progress=progress),
        "fixed": score_systems(dict(systems), result.fixed_captions(), ["bleu", "cider"], progress=progress),
    }
    rows: dict[str, dict[str, float]] = {name: {} for name in systems}
    for variant, rep in reports.items():
        corpus = rep.corpus
        b4 = _score_column(corpus.columns, "bleu4")
        cd = _score_column(corpus.columns, "cider")
        for name in systems:
            rows[name][f"bleu4_{variant}"] = float(corpus.loc[name, b4])
            rows[name][f"cider_{variant}"] = float(corpus.loc[name, cd])
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "system"
    for variant in VARIANTS:
        df[f"rank_{variant}"] = df[f"cider_{variant}"].rank(ascending=False, method="min").astype(int)
    df["rank_change_kept"] = df["rank_all"] - df["rank_kept"]
    df["rank_change_fixed"] = df["rank_all"] - df["rank_fixed"]
    df.attrs["flagged_references"] = len(flagged)
    df.attrs["removed_references"] = len(dropped)
    df.attrs["fixed_references"] = len(result.corrected_texts())
    return df.reset_index()
