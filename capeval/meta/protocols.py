"""Scoring units: which judged captions form one metric evaluation (and so share CIDEr-D document frequencies and
one corpus score).

* `per-system`: every system's captions are scored as that system's own evaluation scores them, by the same
  `capeval.metrics.engine.score_systems` call `capeval score` makes: the system's captions against its references,
  CIDEr-D document frequencies from the images it was evaluated on, corpus BLEU from summed statistics. A system's
  system-level metric score is therefore exactly the corpus score `capeval score` reports for it, and caption-level
  scores are the per-caption scores of that evaluation (pycocoevalcap run per system: THumB's published protocol).
* `pooled`: every judged caption is one document of ONE corpus (CLIPScore's protocol for Flickr8k, Composite,
  Nebula, Polaris): CIDEr-D document frequencies over all judged documents; its published figures need it.

For the image bootstrap each system keeps per-image *additive statistics* of every metric: BLEU's sufficient
statistics (test length, closest reference length, guessed and clipped-correct n-grams per order), so a resample's
corpus BLEU is recomputed exactly; for every other metric the per-image score (CIDEr-D with its document
frequencies fixed at the full evaluation, ROUGE-L, METEOR...), whose mean over a resample's images is its corpus
score there (exact for CIDEr-D with fixed df and ROUGE-L; METEOR's corpus score is not a mean and is flagged).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capeval.errors import CapevalError
from capeval.records import Caption, CaptionSet

UNITS: dict[str, str] = {
    "per-system": "each system scored as its own evaluation (its captions, its references, CIDEr-D document "
                  "frequencies from its evaluated images; system scores = `capeval score` corpus scores)",
    "pooled": "every judged caption one document of one corpus (CIDEr-D document frequencies over all judged "
              "documents; CLIPScore's protocol)",
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def score_column(metric: str, columns: Sequence[str]) -> str | None:
    """The engine's score name answering a requested metric (bleu -> bleu4, cider-d -> cider, rouge-l -> rouge)."""
    want = _norm(metric)
    aliases = {want, {"bleu": "bleu4", "ciderd": "cider", "rougel": "rouge", "bertscoref1": "bertscore"}.get(want,
                                                                                                          want)}
    for c in columns:
        if _norm(c) in aliases:
            return c
    if metric == "bertscore":
        for c in columns:
            if _norm(c).startswith("bertscore"):
                return c
    return None


def per_system_eligible(rows: pd.DataFrame) -> str | None:
    """None when the rows can be scored per system, else the reason why not."""
    if rows["system"].isna().any():
        return f"{int(rows['system'].isna().sum())} judged row(s) name no system"
    texts = rows.groupby(["system", "image_id"])["caption"].nunique()
    if (texts > 1).any():
        (s, img) = texts[texts > 1].index[0]
        return f"system {s!r} has {int(texts.max())} different captions for image {img!r}; a system evaluation " \
               "scores one caption per image"
    return None


@dataclass
class AdditiveStats:
    """Per-image statistics of one metric for one system; `finalise(sum over images)` is the corpus score."""

    kind: str  # "bleu" (sufficient statistics) or "mean" (per-image score, count)
    images: list[str]
    values: np.ndarray  # (images, K)
    order: int = 0  # BLEU's n


@dataclass
class SystemScoring:
    """Per-system scoring of the judged captions (the `per-system` unit)."""

    row_scores: dict[str, np.ndarray]  # metric -> score per plan row
    corpus: dict[str, dict[str, float]]  # metric -> system -> corpus score (as `capeval score` reports it)
    stats: dict[str, dict[str, AdditiveStats]]  # metric -> system -> per-image additive statistics
    signatures: dict[str, str]
    unavailable: dict[str, str]
    references: dict[str, dict[str, list[str]]]  # system -> image -> references it was scored against
    notes: list[str] = field(default_factory=list)


_TINY, _SMALL = 1e-15, 1e-9


def bleu_from_sums(sums: np.ndarray, order: int) -> np.ndarray:
    """Corpus BLEU-`order` from summed sufficient statistics (..., 2 + 2n): testlen, reflen, guess 1..n, correct
    1..n; pycocoevalcap's arithmetic (tiny/small guards, brevity penalty on the summed lengths)."""
    n = (sums.shape[-1] - 2) // 2
    tl, rl = sums[..., 0], sums[..., 1]
    guess, correct = sums[..., 2:2 + n], sums[..., 2 + n:2 + 2 * n]
    with np.errstate(divide="ignore", invalid="ignore"):
        bb = np.prod((correct[..., :order] + _TINY) / (guess[..., :order] + _SMALL), axis=-1)
        score = bb ** (1.0 / order)
        ratio = (tl + _TINY) / (rl + _SMALL)
        score = np.where(ratio < 1, score * np.exp(1 - 1 / ratio), score)
    return score


def finalise(stats: AdditiveStats, sums: np.ndarray) -> np.ndarray:
    """Corpus score from per-image statistics summed (possibly weighted) over images; NaN where no image."""
    if stats.kind == "bleu":
        out = bleu_from_sums(sums, stats.order)
        return np.where(sums[..., 0] + sums[..., 1] > 0, out, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sums[..., 1] > 0, sums[..., 0] / sums[..., 1], np.nan)


def _bleu_image_stats(cands: Sequence[str], refs: Sequence[Sequence[str]], n: int = 4) -> np.ndarray:
    from capeval.metrics.bleu import bleu_statistics
    from capeval.metrics.ngrams import prepare_candidates, prepare_references
    from capeval.text.tokenize import PTBTokenizer

    tok = PTBTokenizer().tokenize
    pr = prepare_references([[tok(r) for r in rs] for rs in refs], n=n)
    pc = prepare_candidates(pr, [tok(c) for c in cands])
    st = bleu_statistics(pr, pc, n)
    return np.column_stack([st["testlen"], st["reflen"], st["guess"].T, st["correct"].T]).astype(np.float64)


def score_by_system(rows: pd.DataFrame, refs: CaptionSet, metrics: Sequence[str], *,
                    excluded: Mapping[str, set[str]] | None = None,
                    metric_options: Mapping[str, Mapping[str, object]] | None = None,
                    on_metric: Callable[[str], None] | None = None) -> SystemScoring:
    """Score each system's judged captions with `score_systems` (what `capeval score` runs), one call per distinct
    reference set (`excluded[system]`: reference caption ids left out for that system, e.g. leave-one-out).

    `rows` needs system, image_id, caption (and caption_id); one caption per (system, image)."""
    from capeval.metrics.engine import score_systems

    excluded = excluded or {}
    systems = list(dict.fromkeys(rows["system"].astype(str)))
    first = rows.drop_duplicates(["system", "image_id"])
    cand_sets: dict[str, CaptionSet] = {}
    for s in systems:
        part = first[first["system"] == s]
        caps = [Caption(str(cid) if cid is not None else f"{s}:{img}", str(img), str(text), s)
                for cid, img, text in zip(part["caption_id"], part["image_id"], part["caption"])]
        cand_sets[s] = CaptionSet(caps, name=s)
    groups: dict[frozenset[str], list[str]] = {}
    for s in systems:
        groups.setdefault(frozenset(excluded.get(s, set())), []).append(s)
    opts: dict[str, object] = {}
    for o in (metric_options or {}).values():
        opts.update(dict(o))
    corpus: dict[str, dict[str, float]] = {}
    stats: dict[str, dict[str, AdditiveStats]] = {}
    per_caption: list[pd.DataFrame] = []
    signatures: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    references: dict[str, dict[str, list[str]]] = {}
    notes: list[str] = []
    resolved: dict[str, str] = {}
    for excl, members in groups.items():
        ref_set = refs.without(excl) if excl else refs
        if on_metric:
            on_metric(f"{', '.join(metrics)} for {len(members)} system(s), each as its own evaluation")
        report = score_systems({s: cand_sets[s] for s in members}, ref_set, list(metrics), progress=False, **opts)
        for fam, why in report.unavailable.items():
            unavailable[fam] = why
        ref_by_image = ref_set.texts_by_image()
        for m in metrics:
            col = score_column(m, list(report.corpus.columns))
            if col is None:
                continue
            resolved[m] = col
            sig = report.signatures.get(col, "")
            signatures[m] = sig
            for s in members:
                corpus.setdefault(m, {})[s] = float(report.corpus.loc[s, col])
        pc = report.per_caption
        per_caption.append(pc)
        for s in members:
            part = pc[pc["system"] == s]
            imgs = [str(i) for i in part["image_id"]]
            references[s] = {i: ref_by_image[i] for i in imgs}
            texts = {c.image_id: c.text for c in cand_sets[s]}
            bleu_cols = [m for m in metrics if resolved.get(m, "").startswith("bleu")]
            bstats = _bleu_image_stats([texts[i] for i in imgs], [ref_by_image[i] for i in imgs]) if bleu_cols \
                else None
            for m in metrics:
                col = resolved.get(m)
                if col is None:
                    continue
                per = part[col].to_numpy(dtype=np.float64)
                if col.startswith("bleu") and bstats is not None:
                    k = int(col[4:]) if col[4:].isdigit() else 4
                    st = AdditiveStats("bleu", imgs, bstats, order=k)
                    got = float(finalise(st, bstats.sum(axis=0)))
                    if abs(got - corpus[m][s]) > 1e-12:  # the statistics must give back the engine's corpus BLEU
                        raise CapevalError(f"{m} for {s}: corpus BLEU from per-image statistics {got!r} differs from "
                                           f"the engine's {corpus[m][s]!r}")
                else:
                    st = AdditiveStats("mean", imgs, np.column_stack([per, np.ones_like(per)]))
                    if abs(per.mean() - corpus[m][s]) > 1e-9:
                        msg = (f"{m}: its corpus score is not the mean of per-caption scores, so resamples and "
                               "pair tests use that mean")
                        if msg not in notes:
                            notes.append(msg)
                stats.setdefault(m, {})[s] = st
    pcs = pd.concat(per_caption, ignore_index=True)
    key = pd.MultiIndex.from_arrays([pcs["system"].astype(str), pcs["image_id"].astype(str)])
    want = pd.MultiIndex.from_arrays([rows["system"].astype(str), rows["image_id"].astype(str)])
    pos = key.get_indexer(want)
    if (pos < 0).any():
        raise CapevalError(f"{int((pos < 0).sum())} judged row(s) were not scored by their system's evaluation")
    row_scores = {m: pcs[col].to_numpy(dtype=np.float64)[pos] for m, col in resolved.items()}
    for m in metrics:
        if m not in resolved and m not in unavailable:
            fam = next((f for f in unavailable if _norm(m).startswith(_norm(f))), None)
            unavailable[m] = unavailable.get(fam, "no score of that name was produced") if fam else \
                "no score of that name was produced"
    for fam in list(unavailable):
        if fam not in metrics:
            for m in metrics:
                if m not in resolved and _norm(m).startswith(_norm(fam)):
                    unavailable[m] = unavailable[fam]
            del unavailable[fam]
    return SystemScoring(row_scores, corpus, stats, signatures, unavailable, references, notes)
