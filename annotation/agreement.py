"""Inter-annotator agreement: Krippendorff's alpha (nominal, ordinal, interval) and weighted Cohen's kappa.

Alpha follows Krippendorff (2011, "Computing Krippendorff's alpha-reliability") through the coincidence matrix, with
missing ratings allowed; the ordinal metric ranks the values that occur in the data (as the `krippendorff` package).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd


def krippendorff_alpha(data: Sequence[Sequence[Any]] | np.ndarray, level: str = "ordinal",
                       value_domain: Sequence[Any] | None = None) -> float:
    """Alpha for a raters x units table (None/NaN = missing). `level`: nominal, ordinal, interval.

    Returns NaN when fewer than two pairable values exist or when there is no variation at all.
    """
    if level not in ("nominal", "ordinal", "interval"):
        raise ValueError("level must be nominal, ordinal or interval")
    table = [list(r) for r in data]
    units = list(zip(*table)) if table else []
    observed = sorted({v for u in units for v in u if not _missing(v)}, key=_sort_key)
    domain = list(value_domain) if value_domain is not None else observed
    pos = {v: i for i, v in enumerate(domain)}
    k = len(domain)
    if k == 0:
        return float("nan")
    o = np.zeros((k, k))
    for u in units:
        vals = [pos[v] for v in u if not _missing(v)]
        m = len(vals)
        if m < 2:
            continue
        counts = np.bincount(vals, minlength=k).astype(float)
        o += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return float("nan")
    d2 = _delta2(domain, n_c, level)
    d_o = (o * d2).sum()
    d_e = (np.outer(n_c, n_c) * d2).sum() / (n - 1)
    if d_e == 0:
        return float("nan")
    return float(1.0 - d_o / d_e)


def _delta2(domain: list[Any], n_c: np.ndarray, level: str) -> np.ndarray:
    k = len(domain)
    if level == "nominal":
        return 1.0 - np.eye(k)
    if level == "interval":
        v = np.asarray(domain, dtype=float)
        return (v[:, None] - v[None, :]) ** 2
    cum = np.concatenate([[0.0], np.cumsum(n_c)])
    d = np.zeros((k, k))
    for c in range(k):
        for e in range(k):
            lo, hi = min(c, e), max(c, e)
            d[c, e] = (cum[hi + 1] - cum[lo] - (n_c[c] + n_c[e]) / 2.0) ** 2
    return d


def weighted_kappa(a: Sequence[Any], b: Sequence[Any], weights: str | None = "quadratic",
                   levels: Sequence[Any] | None = None) -> float:
    """Cohen's kappa of two raters over the same items; weights None (unweighted), 'linear' or 'quadratic'.

    Disagreement weights use the distance between level positions in `levels` (default: the sorted values seen).
    """
    if len(a) != len(b):
        raise ValueError("both raters need the same number of items")
    if weights not in (None, "linear", "quadratic"):
        raise ValueError("weights must be None, 'linear' or 'quadratic'")
    pairs = [(x, y) for x, y in zip(a, b) if not _missing(x) and not _missing(y)]
    if not pairs:
        return float("nan")
    lv = list(levels) if levels is not None else sorted({v for p in pairs for v in p}, key=_sort_key)
    pos = {v: i for i, v in enumerate(lv)}
    k = len(lv)
    if k < 2:
        return float("nan")
    obs = np.zeros((k, k))
    for x, y in pairs:
        obs[pos[x], pos[y]] += 1
    obs /= obs.sum()
    exp = np.outer(obs.sum(axis=1), obs.sum(axis=0))
    i, j = np.indices((k, k))
    if weights is None:
        w = (i != j).astype(float)
    elif weights == "linear":
        w = np.abs(i - j) / (k - 1)
    else:
        w = ((i - j) / (k - 1)) ** 2
    denom = (w * exp).sum()
    if denom == 0:
        return float("nan")
    return float(1.0 - (w * obs).sum() / denom)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, float(v)) if isinstance(v, (int, float, np.integer, np.floating)) else (1, str(v))


ALPHA_COLUMNS = ["criterion", "level", "alpha", "items_with_2plus_raters", "ratings", "raters"]
KAPPA_COLUMNS = ["criterion", "rater_a", "rater_b", "common_items", "weights", "kappa"]


def campaign_agreement(ratings: pd.DataFrame, criteria: dict[str, tuple[str, list[Any]]],
                       min_common: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Agreement tables from long ratings (columns item, rater, criterion, rating).

    `criteria` maps criterion -> (level of measurement, levels). Returns (alpha per criterion, kappa per rater pair and
    criterion; pairs with fewer than `min_common` shared items are left out).
    """
    alpha_rows, kappa_rows = [], []
    for crit, (level, levels) in criteria.items():
        sub = ratings[ratings["criterion"] == crit]
        if sub.empty:
            continue
        wide = sub.pivot_table(index="rater", columns="item", values="rating", aggfunc="first")
        table = wide.astype(object).where(wide.notna(), None).values.tolist()
        multi = int((wide.notna().sum(axis=0) >= 2).sum())
        alpha = krippendorff_alpha(table, level, levels if level != "ordinal" else None) if multi else float("nan")
        alpha_rows.append({"criterion": crit, "level": level, "alpha": alpha, "items_with_2plus_raters": multi,
                           "ratings": int(sub.shape[0]), "raters": int(wide.shape[0])})
        if level == "nominal" and not all(isinstance(x, (int, float)) for x in levels):
            wt = None
        else:
            wt = "quadratic"
        for ra, rb in combinations(sorted(wide.index), 2):
            both = wide.loc[[ra, rb]].dropna(axis=1)
            if both.shape[1] < min_common:
                continue
            kap = weighted_kappa(both.loc[ra].tolist(), both.loc[rb].tolist(), weights=wt, levels=levels)
            kappa_rows.append({"criterion": crit, "rater_a": ra, "rater_b": rb, "common_items": int(both.shape[1]),
                               "weights": wt or "none", "kappa": kap})
    return pd.DataFrame(alpha_rows, columns=ALPHA_COLUMNS), pd.DataFrame(kappa_rows, columns=KAPPA_COLUMNS)


def _unit_coincidences(table: list[list[Any]], domain: list[Any]) -> np.ndarray:
    """Per unit (item), its contribution to the coincidence matrix: shape (units, k, k)."""
    pos = {v: i for i, v in enumerate(domain)}
    k = len(domain)
    units = list(zip(*table)) if table else []
    out = np.zeros((len(units), k, k))
    for u, col in enumerate(units):
        vals = [pos[v] for v in col if not _missing(v)]
        if len(vals) < 2:
            continue
        counts = np.bincount(vals, minlength=k).astype(float)
        out[u] = (np.outer(counts, counts) - np.diag(counts)) / (len(vals) - 1)
    return out


def _alpha_from_coincidences(o: np.ndarray, domain: list[Any], level: str) -> float:
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return float("nan")
    d2 = _delta2(domain, n_c, level)
    d_e = (np.outer(n_c, n_c) * d2).sum() / (n - 1)
    if d_e == 0:
        return float("nan")
    return float(1.0 - (o * d2).sum() / d_e)


def alpha_bootstrap(data: Sequence[Sequence[Any]] | np.ndarray, level: str = "ordinal",
                    value_domain: Sequence[Any] | None = None, n_boot: int = 1000, ci: float = 0.95,
                    seed: int = 0) -> tuple[float, float, float]:
    """(alpha, low, high): Krippendorff's alpha with a percentile bootstrap CI from resampling units (items) with
    replacement, all ratings of an item kept together. NaN bounds when fewer than 2 items have 2+ ratings."""
    table = [list(r) for r in data]
    point = krippendorff_alpha(table, level, value_domain)
    units = list(zip(*table)) if table else []
    observed = sorted({v for u in units for v in u if not _missing(v)}, key=_sort_key)
    domain = list(value_domain) if value_domain is not None else observed
    per_unit = _unit_coincidences(table, domain)
    pairable = per_unit.reshape(len(per_unit), -1).sum(axis=1) > 0
    per_unit = per_unit[pairable]
    if len(per_unit) < 2 or np.isnan(point):
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(per_unit), size=(n_boot, len(per_unit)))
    weights = np.stack([np.bincount(d, minlength=len(per_unit)) for d in draws]).astype(float)
    mats = np.einsum("bu,ukl->bkl", weights, per_unit)
    boots = np.array([_alpha_from_coincidences(m, domain, level) for m in mats])
    boots = boots[~np.isnan(boots)]
    if boots.size == 0:
        return point, float("nan"), float("nan")
    lo, hi = np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return point, float(lo), float(hi)
