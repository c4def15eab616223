"""PASCAL-50S (Vedantam et al. 2015): pairwise judgments "which of two candidates is closer to the references?",
and a metric's accuracy per category (HC, HI, HM, MM): the share of pairs where it prefers the caption people chose.

Protocol used here: the `expert_repo_pascal_50s.json` release (hjkim811/EXPERT), 1,000 pairs per category, each with
the human majority label (0 = first caption preferred) and the 5 references per image that file ships;
both captions of every pair are scored in one engine call per metric (CIDEr-D idf over all 8,000 documents);
a metric tie is broken by a seeded fair coin; accuracy = correct / 1,000 per category, mean over the 4 categories.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from capeval.errors import InputError, MetricUnavailable
from capeval.records import normalize_image_id

CATEGORIES = ("HC", "HI", "HM", "MM")
CATEGORY_MEANING = {"HC": "two correct human captions", "HI": "human vs incorrect (another image's) caption",
                    "HM": "human vs machine caption", "MM": "two machine captions"}


@dataclass
class PairwiseJudgments:
    """Pairwise human preferences: `frame` has category, image_id, caption_a, caption_b, label (0 = a preferred,
    1 = b preferred) and references (list of strings)."""

    frame: pd.DataFrame
    name: str = "pascal50s"
    source: str | None = None

    @property
    def n_references(self) -> int:
        n = self.frame["references"].map(len)
        return int(n.iloc[0]) if n.nunique() == 1 else -1


def load_pascal50s(path: str | os.PathLike[str] | None = None) -> PairwiseJudgments:
    """The PASCAL-50S pairs with 5 references each from `expert_repo_pascal_50s.json` ({HC,HI,HM,MM}: [...])."""
    if path is None:
        from capeval import datasets

        path = datasets.get_file("pascal50s", "expert_repo_pascal_50s.json", progress=False)
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read PASCAL-50S pairs ({exc})", path=str(p)) from None
    if not isinstance(data, dict) or not set(data) & set(CATEGORIES):
        raise InputError(f"expected an object with keys {list(CATEGORIES)}", path=str(p))
    rows = []
    for cat in CATEGORIES:
        for i, e in enumerate(data.get(cat, [])):
            where = f"{cat}[{i}]"
            try:
                a, b = e["captions"]
                label = int(e["label"])
                refs = [str(r) for r in e["references"]]
            except (KeyError, TypeError, ValueError):
                raise InputError("expected {image, captions: [a, b], label: 0|1, references: [...]}", path=str(p),
                                 where=where) from None
            if label not in (0, 1):
                raise InputError(f"label must be 0 or 1, got {label}", path=str(p), where=where)
            if not refs:
                raise InputError("no references", path=str(p), where=where)
            rows.append({"category": cat, "image_id": normalize_image_id(e.get("image", f"{cat}{i}")),
                         "caption_a": str(a), "caption_b": str(b), "label": label, "references": refs})
    return PairwiseJudgments(pd.DataFrame(rows), source=str(p))


def pairwise_accuracy_from_scores(score_a: np.ndarray, score_b: np.ndarray, label: np.ndarray,
                                  rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Per-pair correctness (metric prefers the human choice), ties broken by a fair coin; and the tie count."""
    pick_b = score_b > score_a
    ties = score_a == score_b
    coin = rng.integers(0, 2, len(label)).astype(bool)
    pick_b = np.where(ties, coin, pick_b)
    return (pick_b.astype(int) == label), int(ties.sum())


def pascal50s_accuracy(metrics: Sequence[str] = ("bleu4", "rouge", "cider"), pairs: PairwiseJudgments | None = None,
                       *, seed: int = 0, engine: Callable[..., list] | None = None) -> pd.DataFrame:
    """Accuracy (%) per category and mean for each metric, with the tie count and the number of references."""
    from capeval.meta.correlate import _engine, _family, _pick

    pj = pairs or load_pascal50s()
    f = pj.frame
    engine = engine or _engine()
    cands = list(f["caption_a"]) + list(f["caption_b"])
    refs = list(f["references"]) * 2
    n = len(f)
    rows = []
    by_family: dict[str, list[str]] = {}
    for m in metrics:
        by_family.setdefault(_family(m), []).append(m)
    for fam, names in by_family.items():
        try:
            results = engine(fam, cands, refs)
        except MetricUnavailable as exc:
            for m in names:
                rows.append({"metric": m, "unavailable": str(exc)})
            continue
        for m in names:
            r = _pick(m, results)
            per = np.asarray(r.per_item, dtype=float)  # type: ignore[attr-defined]
            rng = np.random.default_rng(seed)
            correct, ties = pairwise_accuracy_from_scores(per[:n], per[n:], f["label"].to_numpy(), rng)
            rec: dict[str, object] = {"metric": m}
            for cat in CATEGORIES:
                mask = (f["category"] == cat).to_numpy()
                rec[cat] = 100.0 * correct[mask].mean() if mask.any() else np.nan
            rec["mean"] = float(np.nanmean([rec[c] for c in CATEGORIES]))
            rec["ties"] = ties
            rec["n_references"] = pj.n_references
            rec["signature"] = r.signature.format() if hasattr(r.signature, "format") else str(r.signature)  # type: ignore[attr-defined]
            rows.append(rec)
    return pd.DataFrame(rows)


PASCAL50S_PROTOCOL = __doc__.split("Protocol used here: ", 1)[1].strip() if __doc__ else ""

#: PASCAL-50S accuracy (%) published by CLIPScore (Hessel et al. 2021, EMNLP, the PASCAL-50S table), transcribed from
#: a third-party note on the paper (the paper text itself was not retrievable here). Its protocol samples 5 of the
#: ~48 references of each image at random; `expert_repo_pascal_50s.json` fixes one set of 5, so figures that depend
#: on which references are drawn (BLEU-4 most) differ; CIDEr-D, a consensus over references, agrees within 0.5.
CLIPSCORE_PUBLISHED: dict[str, dict[str, float]] = {
    "bleu4": {"HC": 60.4, "HI": 90.6, "HM": 84.9, "MM": 54.7, "mean": 72.6},
    "cider": {"HC": 65.1, "HI": 98.1, "HM": 90.5, "MM": 64.8, "mean": 79.6},
}
