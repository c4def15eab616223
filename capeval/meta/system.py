"""System level on the numbers `capeval score` reports: per-system metric and human scores with 95% CIs from an
image bootstrap that recomputes every system's corpus score on each resample, correlations over systems with CIs,
and a disagreement table (every pair of systems: metric delta and human delta, each with a CI and a p-value).

Resampling: images are drawn with replacement (the same draw for every system, so system differences are paired);
each system's corpus score is recomputed from its per-image additive statistics (capeval.meta.protocols): exact
corpus BLEU, CIDEr-D with the document frequencies of the full evaluation held fixed, ROUGE-L; human scores are
the mean over the drawn images of each image's mean rating. p-values: a paired approximate-randomisation test over
the images both systems were judged on (swap the two systems' captions of an image with probability 1/2 and
recompute both corpus scores; two-sided), for the metric and for people alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capeval.meta import stats as S
from capeval.meta.protocols import AdditiveStats, finalise


@dataclass
class SystemLevel:
    """Everything the system-level report shows."""

    systems: pd.DataFrame  # system, n_images, human, human_ci_low/high, <metric>, <metric>_ci_low/high, rank columns
    correlation: pd.DataFrame  # metric, level, statistic, value, ci_low, ci_high, n, n_images, note
    pairs: pd.DataFrame  # the disagreement table
    n_resamples: int
    n_permutations: int
    seed: int
    notes: list[str] = field(default_factory=list)


def _matrix(stats: Mapping[str, AdditiveStats], systems: Sequence[str], images: Sequence[str]
            ) -> tuple[np.ndarray, str, int]:
    """(systems, images, K) statistics aligned on `images` (zeros where a system has no caption)."""
    pos = {img: g for g, img in enumerate(images)}
    first = next(iter(stats.values()))
    k = first.values.shape[1]
    out = np.zeros((len(systems), len(images), k))
    for si, s in enumerate(systems):
        st = stats[s]
        out[si, [pos[i] for i in st.images]] = st.values
    return out, first.kind, first.order


def _final(kind: str, order: int, sums: np.ndarray) -> np.ndarray:
    return finalise(AdditiveStats(kind, [], np.zeros((0, sums.shape[-1])), order), sums)


def _pair_test(st: np.ndarray, kind: str, order: int, a: int, b: int, shared: np.ndarray, n_perm: int,
               rng: np.random.Generator) -> tuple[float, float]:
    """(delta on the shared images, two-sided approximate-randomisation p)."""
    sa, sb = st[a, shared], st[b, shared]
    base_a, base_b = sa.sum(axis=0), sb.sum(axis=0)
    obs = float(_final(kind, order, base_a) - _final(kind, order, base_b))
    d = sb - sa
    hits, done = 0, 0
    while done < n_perm:
        m = min(2000, n_perm - done)
        flip = rng.integers(0, 2, (m, len(d))).astype(np.float64)
        shift = flip @ d
        delta = _final(kind, order, base_a + shift) - _final(kind, order, base_b - shift)
        hits += int((np.abs(delta) >= abs(obs) - 1e-12).sum())
        done += m
    return obs, (hits + 1) / (n_perm + 1)


def _ci(v: np.ndarray, confidence: float) -> tuple[float, float]:
    v = v[~np.isnan(v)]
    if not len(v):
        return float("nan"), float("nan")
    q = (1 - confidence) / 2
    lo, hi = np.quantile(v, [q, 1 - q])
    return float(lo), float(hi)


def system_level(metric_stats: Mapping[str, Mapping[str, AdditiveStats]], corpus: Mapping[str, Mapping[str, float]],
                 human: pd.DataFrame, statistics: Sequence[str], *, n_resamples: int = 1000,
                 n_permutations: int = 10000, seed: int = 0, confidence: float = 0.95,
                 display: Mapping[str, str] | None = None, scale: Mapping[str, float] | None = None,
                 n_images: int | None = None) -> SystemLevel:
    """System-level scores, correlations and pair table. `human`: one row per judged caption with system,
    image_id, rating (raters already averaged); `metric_stats[m][system]`: per-image additive statistics;
    `corpus[m][system]`: the exact corpus score (the point estimate)."""
    display = dict(display or {})
    scale = dict(scale or {})
    systems = list(dict.fromkeys(human["system"].astype(str)))
    images = list(dict.fromkeys(human["image_id"].astype(str)))
    h = human.assign(system=human["system"].astype(str), image_id=human["image_id"].astype(str)) \
        .groupby(["system", "image_id"], sort=False)["rating"].mean()
    hstats = {s: AdditiveStats("mean", list(h[s].index), np.column_stack([h[s].to_numpy(), np.ones(len(h[s]))]))
              for s in systems}
    hmat, _, _ = _matrix(hstats, systems, images)
    present = hmat[:, :, 1] > 0
    rng = np.random.default_rng(seed)
    w = S.cluster_bootstrap_counts(len(images), n_resamples, rng) if n_resamples else np.zeros((0, len(images)))

    def resample(mat: np.ndarray, kind: str, order: int) -> np.ndarray:
        return _final(kind, order, np.einsum("bg,sgk->bsk", w, mat))

    h_point = _final("mean", 0, hmat.sum(axis=1))
    h_boot = resample(hmat, "mean", 0)
    sys_frame = pd.DataFrame({"system": systems, "n_images": present.sum(axis=1), "human": h_point})
    lo_hi = [_ci(h_boot[:, i], confidence) for i in range(len(systems))]
    sys_frame["human_ci_low"] = [x[0] for x in lo_hi]
    sys_frame["human_ci_high"] = [x[1] for x in lo_hi]
    sys_frame["human_rank"] = sys_frame["human"].rank(ascending=False, method="min").astype(int)
    mats: dict[str, tuple[np.ndarray, str, int]] = {}
    boots: dict[str, np.ndarray] = {}
    corr_rows = []
    for m, per_sys in metric_stats.items():
        mat, kind, order = _matrix(per_sys, systems, images)
        mats[m] = (mat, kind, order)
        point = np.array([corpus[m][s] for s in systems])
        boots[m] = resample(mat, kind, order)
        sys_frame[m] = point
        ci = [_ci(boots[m][:, i], confidence) for i in range(len(systems))]
        sys_frame[f"{m}_ci_low"] = [x[0] for x in ci]
        sys_frame[f"{m}_ci_high"] = [x[1] for x in ci]
        sys_frame[f"{m}_rank"] = pd.Series(point).rank(ascending=False, method="min").astype(int).to_numpy()
        est, why = S.system_statistics(point[None, :], h_point[None, :], statistics)
        bs, _ = S.system_statistics(boots[m], h_boot, statistics) if n_resamples else ({}, {})
        for st in statistics:
            lo, hi = _ci(bs[st], confidence) if n_resamples else (np.nan, np.nan)
            corr_rows.append({"metric": m, "level": "system", "statistic": st, "value": float(est[st][0]),
                              "ci_low": lo, "ci_high": hi, "n": len(systems),
                              "n_images": n_images or len(images), "note": why.get(st, "")})
    pairs = []
    notes: list[str] = []
    for a, b in itertools.combinations(range(len(systems)), 2):
        shared = present[a] & present[b]
        if shared.sum() < 2:
            notes.append(f"systems {systems[a]} and {systems[b]} share {int(shared.sum())} judged image(s): not "
                         "compared (a paired test needs at least 2)")
            continue
        if shared.sum() < max(present[a].sum(), present[b].sum()):
            notes.append(f"{systems[a]} vs {systems[b]}: deltas compare each system's full evaluation; p-values use "
                         f"the {int(shared.sum())} images both were judged on")
        ha = _pair_test(hmat, "mean", 0, a, b, shared, n_permutations, np.random.default_rng(seed))
        hd_boot = h_boot[:, a] - h_boot[:, b]
        hlo, hhi = _ci(hd_boot, confidence)
        hdelta = float(h_point[a] - h_point[b])
        for m, (mat, kind, order) in mats.items():
            mdelta = float(corpus[m][systems[a]] - corpus[m][systems[b]])
            _, mp = _pair_test(mat, kind, order, a, b, shared, n_permutations, np.random.default_rng(seed))
            mlo, mhi = _ci(boots[m][:, a] - boots[m][:, b], confidence)
            agree = bool(np.sign(mdelta) == np.sign(hdelta))
            rec = {"system_x": systems[a], "system_y": systems[b], "metric": m,
                   "metric_x": float(corpus[m][systems[a]]), "metric_y": float(corpus[m][systems[b]]),
                   "metric_delta": mdelta, "metric_ci_low": mlo, "metric_ci_high": mhi, "metric_p": mp,
                   "human_x": float(h_point[a]), "human_y": float(h_point[b]), "human_delta": hdelta,
                   "human_ci_low": hlo, "human_ci_high": hhi, "human_p": ha[1], "n_images": int(shared.sum()),
                   "agree": agree,
                   "significant_disagreement": bool(not agree and mp < 0.05 and ha[1] < 0.05)}
            rec["verdict"] = pair_sentence(rec, display.get(m, m), scale.get(m, 1.0))
            pairs.append(rec)
    return SystemLevel(sys_frame, pd.DataFrame(corr_rows), pd.DataFrame(pairs), n_resamples, n_permutations, seed,
                       notes)


def _fmt_ci(lo: float, hi: float, scale: float, sign: float, digits: int) -> str:
    if np.isnan(lo) or np.isnan(hi):
        return ""
    a, b = sorted((lo * scale * sign, hi * scale * sign))
    return f"95% CI [{a:+.{digits}f}, {b:+.{digits}f}], "


def pair_sentence(rec: Mapping[str, object], metric_name: str, metric_scale: float = 1.0,
                  human_unit: str = "points") -> str:
    """'BLEU-4 prefers Up-Down over Human by +0.8 (95% CI [...], p=0.31); people prefer Human over Up-Down by
    0.68 points (95% CI [...], p<0.001)': both systems named on both sides."""
    x, y = str(rec["system_x"]), str(rec["system_y"])

    def side(who: str, delta: float, lo: float, hi: float, p: float, sc: float, unit: str) -> str:
        if delta == 0:
            return f"{who} see no difference between {x} and {y} ({S.format_p(p)})" if who == "people" else \
                f"{who} scores {x} and {y} the same ({S.format_p(p)})"
        win, lose, sign = (x, y, 1.0) if delta > 0 else (y, x, -1.0)
        verb = "prefer" if who == "people" else "prefers"
        digits = 2 if unit else 1
        mag = f"+{abs(delta) * sc:.1f}" if not unit else f"{abs(delta) * sc:.2f} {unit}"
        return f"{who} {verb} {win} over {lose} by {mag} ({_fmt_ci(lo, hi, sc, sign, digits)}{S.format_p(p)})"

    def num(key: str) -> float:
        return float(rec[key])  # type: ignore[arg-type]

    return (side(metric_name, num("metric_delta"), num("metric_ci_low"), num("metric_ci_high"), num("metric_p"),
                 metric_scale, "")
            + "; " + side("people", num("human_delta"), num("human_ci_low"), num("human_ci_high"), num("human_p"),
                          1.0, human_unit))
