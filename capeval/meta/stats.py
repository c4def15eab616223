"""Correlation statistics for meta-evaluation: Kendall (b, c, ties-credited), pairwise accuracy, Spearman, Pearson,
at caption, image-grouped and system level; image-cluster bootstrap CIs and significance tests.

Everything is computed from *weighted pair counts*: a bootstrap resample of images is the original rows weighted by
how often their image was drawn, so one sort per (metric, human) pair serves all resamples and the resamples are
processed as a matrix (numpy), not one scipy call each. Definitions follow scipy (tau-b, tau-c: Stuart, with
`m = min(#distinct x, #distinct y)`) and mt-metrics-eval / Deutsch et al. 2023 "Ties Matter" (tau_23, acc_23).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

#: statistics computed from pair counts or ranks, by name; values are proportions/correlations in [-1, 1] or [0, 1]
STATISTICS: tuple[str, ...] = ("tau_b", "tau_c", "tau_23", "acc_23", "pairwise_acc", "spearman", "pearson")
KENDALL_STATISTICS = ("tau_b", "tau_c", "tau_23", "acc_23", "pairwise_acc")

STATISTIC_DESCRIPTIONS: dict[str, str] = {
    "tau_b": "Kendall tau-b (ties corrected in both variables; scipy variant='b')",
    "tau_c": "Kendall tau-c (Stuart; 2(C-D)/(n^2 (m-1)/m), m = min distinct values; scipy variant='c')",
    "tau_23": "Kendall tau with ties credited: (C + T_xy - D - T_x - T_y) / all pairs (mt-metrics-eval '23')",
    "acc_23": "pairwise accuracy with ties credited: (C + T_xy) / all pairs (Deutsch et al. 2023)",
    "pairwise_acc": "pairwise accuracy on pairs people did not tie: C / (C + D + T_metric-only)",
    "spearman": "Spearman rank correlation (midranks)",
    "pearson": "Pearson linear correlation",
}


class StatsWarning(UserWarning):
    """A statistic was computed on data that makes it fragile (few systems, degenerate groups)."""


# ----------------------------------------------------------------------------------------------------------------
# pair counts
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairCounts:
    """Pair counts of two rankings (possibly weighted by multiplicities); every Kendall variant derives from them.

    `s` = C - D; `ties_x`/`ties_y` count pairs tied in x / in y (joint ties included), `ties_xy` pairs tied in both.
    """

    n: float
    s: float
    ties_x: float
    ties_y: float
    ties_xy: float
    distinct_x: int
    distinct_y: int

    @property
    def pairs(self) -> float:
        return self.n * (self.n - 1) / 2

    @property
    def concordant(self) -> float:
        return (self.pairs - self.ties_x - self.ties_y + self.ties_xy + self.s) / 2

    @property
    def discordant(self) -> float:
        return (self.pairs - self.ties_x - self.ties_y + self.ties_xy - self.s) / 2


def _dense_codes(v: np.ndarray) -> tuple[np.ndarray, int]:
    uniq, codes = np.unique(v, return_inverse=True)
    return codes.astype(np.int64), len(uniq)


def _group_bounds(keys_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a sorted key array: per position the start and (exclusive) end of its run of equal keys, and run starts."""
    n = len(keys_sorted)
    is_start = np.ones(n, dtype=bool)
    if n > 1:
        is_start[1:] = keys_sorted[1:] != keys_sorted[:-1]
    starts = np.flatnonzero(is_start)
    run = np.cumsum(is_start) - 1
    ends = np.append(starts[1:], n)
    return starts[run], ends[run], starts


class _KendallPlan:
    """Everything about (x, y) that does not depend on the weights: sort orders, tie runs, a bit-split schedule.

    C - D is accumulated level-bit by level-bit over the variable with fewer distinct values ("levels"): at depth d the
    rows are split by the d-th bit of their level code inside each prefix segment, and every (high, low) pair of a
    segment is counted with one cumulative sum along the other variable. Cost per weight row: n * ceil(log2 K).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, full: bool = True) -> None:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self.n = len(x)
        cx, kx = _dense_codes(x)
        cy, ky = _dense_codes(y)
        self.kx, self.ky = kx, ky
        self.cx, self.cy = cx, cy
        # levels = the coarser variable
        if ky <= kx:
            lev, klev, cont = cy, ky, cx
        else:
            lev, klev, cont = cx, kx, cy
        self.bits = max(1, math.ceil(math.log2(klev))) if klev > 1 else 0
        self.lev, self.cont = lev, cont
        self.steps: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        if not full:  # the cluster plan only needs the codes and the level split
            return
        for d in range(self.bits):
            shift = self.bits - d
            seg = lev >> shift
            high = ((lev >> (shift - 1)) & 1).astype(bool)
            order = np.lexsort((cont, seg))  # by segment, then by the continuous variable
            seg_s, cont_s, high_s = seg[order], cont[order], high[order]
            run_start, run_end, _ = _group_bounds(seg_s * (cont.max() + 1) + cont_s)
            seg_start, seg_end, _ = _group_bounds(seg_s)
            hi_pos = np.flatnonzero(high_s)
            self.steps.append((order, ~high_s, hi_pos, run_start[hi_pos], run_end[hi_pos],
                               np.stack([seg_start[hi_pos], seg_end[hi_pos]])))
        # tie runs for x, y and (x, y)
        self.ox = np.argsort(cx, kind="stable")
        self.x_starts = _group_bounds(cx[self.ox])[2]
        self.oy = np.argsort(cy, kind="stable")
        self.y_starts = _group_bounds(cy[self.oy])[2]
        joint = cx * (ky + 1) + cy
        self.oxy = np.argsort(joint, kind="stable")
        self.xy_starts = _group_bounds(joint[self.oxy])[2]

    def counts(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Weighted pair counts for each row of `w` (b x n multiplicities aligned with x, y)."""
        w = np.asarray(w, dtype=np.float64)
        b = w.shape[0]
        s = np.zeros(b)
        for order, low_mask, hi_pos, r_start, r_end, seg_bounds in self.steps:
            ws = w[:, order]
            c = np.zeros((b, self.n + 1))
            np.cumsum(ws * low_mask, axis=1, out=c[:, 1:])
            less = c[:, r_start] - c[:, seg_bounds[0]]
            greater = c[:, seg_bounds[1]] - c[:, r_end]
            s += np.einsum("ij,ij->i", ws[:, hi_pos], less - greater)
        # with levels as the coarse variable the high side is "larger"; the sign convention is symmetric in x/y

        def tie_pairs(order: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            m = np.add.reduceat(w[:, order], starts, axis=1) if len(starts) else np.zeros((b, 0))
            return (m * (m - 1) / 2).sum(axis=1), (m > 0).sum(axis=1)

        tx, ux = tie_pairs(self.ox, self.x_starts)
        ty, uy = tie_pairs(self.oy, self.y_starts)
        txy, _ = tie_pairs(self.oxy, self.xy_starts)
        return {"n": w.sum(axis=1), "s": s, "ties_x": tx, "ties_y": ty, "ties_xy": txy,
                "distinct_x": ux, "distinct_y": uy}


def _cumsum_rows(a: np.ndarray, block: int = 64) -> np.ndarray:
    """In-place cumulative sum down the rows of a C-ordered 2-D array. np.cumsum(axis=0) walks columns with a
    row-sized stride; adding whole rows (within blocks of rows, then block offsets) is several times faster."""
    r = a.shape[0]
    nb = r // block
    start = 1
    if nb >= 2:
        v = a[:nb * block].reshape(nb, block, -1)
        for i in range(1, block):
            v[:, i] += v[:, i - 1]
        tot = v[:, -1]  # a view: becomes the running total at each block's last row
        for k in range(1, nb):
            tot[k] += tot[k - 1]
        v[1:, :-1] += tot[:-1, None, :]
        start = nb * block
    for i in range(start, r):
        a[i] += a[i - 1]
    return a


class _ClusterKendallPlan:
    """Kendall pair counts of any cluster-weighted resample as quadratic forms over clusters (images).

    A resample that draws cluster g W_g times has C - D = W M W^T with M[g, h] = sum over rows i of g (upper level)
    and j of h (lower level) of sign(x_i - x_j), and tied pairs = (W K W^T - N) / 2 with K the Gram matrix of the
    per-cluster value counts. M and K are built once (n x clusters work); each resample then costs clusters^2 (BLAS).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, codes: np.ndarray, n_clusters: int) -> None:
        from scipy import sparse

        # rows identical in (cluster, x, y) are merged into one row with a multiplicity
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        key = pd.DataFrame({"c": codes, "x": x, "y": y})
        uniq = key.groupby(["c", "x", "y"], sort=False).size().reset_index(name="k")
        codes = uniq["c"].to_numpy(np.int64)
        mult = uniq["k"].to_numpy(np.float64)
        base = _KendallPlan(uniq["x"].to_numpy(), uniq["y"].to_numpy(), full=False)
        n, g = base.n, n_clusters
        self.g = g
        self.size = np.bincount(codes, weights=mult, minlength=g)
        m = np.zeros((g, g))
        lev, cont = base.lev, base.cont
        for d in range(base.bits):
            shift = base.bits - d
            seg = lev >> shift
            high = ((lev >> (shift - 1)) & 1).astype(bool)
            order = np.lexsort((cont, seg))
            seg_s, cont_s, high_s = seg[order], cont[order], high[order]
            codes_s, mult_s = codes[order], mult[order]
            # runs = maximal blocks of equal (segment, x); a run's rows are tied with each other
            new_run = np.ones(n, dtype=bool)
            new_run[1:] = (seg_s[1:] != seg_s[:-1]) | (cont_s[1:] != cont_s[:-1])
            run = np.cumsum(new_run) - 1
            n_runs = int(run[-1]) + 1 if n else 0
            run_seg = seg_s[new_run]
            seg_edges = np.flatnonzero(np.r_[True, run_seg[1:] != run_seg[:-1], True])  # run index bounds
            hi = np.flatnonzero(high_s)
            agg = sparse.csr_matrix((mult_s[hi], (run[hi], codes_s[hi])), shape=(n_runs, g),
                                    dtype=np.float32).T.tocsr()
            lo = np.flatnonzero(~high_s)
            chunk = max(1, 16_000_000 // max(1, n_runs))
            for h0 in range(0, g, chunk):
                h1 = min(g, h0 + chunk)
                sel = lo[(codes_s[lo] >= h0) & (codes_s[lo] < h1)]
                width = h1 - h0
                flat = (run[sel] + 1) * width + (codes_s[sel] - h0)
                cum = np.bincount(flat, weights=mult_s[sel], minlength=(n_runs + 1) * width).astype(
                    np.float32).reshape(n_runs + 1, width)  # counts: exact in float32 below 2**24
                _cumsum_rows(cum)  # cum[r] = low rows of each cluster in runs before r
                # sum over low j of sign(x_i - x_j) for i in run r = below - above = cum[r] + cum[r+1] - seg ends
                val = cum[:-1] + cum[1:]
                for a0, a1 in zip(seg_edges[:-1], seg_edges[1:]):
                    val[a0:a1] -= cum[a0] + cum[a1]
                m[:, h0:h1] += (agg @ val).astype(np.float64)
        self.m = m
        # W @ M in float32 is exact while every partial sum stays below 2**24 (integers): bound it conservatively
        bound = float(np.abs(m).sum(axis=1).max(initial=0.0)) * 64.0
        self.m32 = m.astype(np.float32) if bound < 2**24 else None

        def gram(vcodes: np.ndarray, k: int) -> tuple[np.ndarray, object]:
            cmat = sparse.csr_matrix((mult, (codes, vcodes)), shape=(g, k))
            return np.asarray((cmat @ cmat.T).todense()), cmat

        self.kx, cx = gram(base.cx, base.kx)
        self.ky, cy = gram(base.cy, base.ky)
        self.kxy, _ = gram(base.cx * (base.ky + 1) + base.cy, base.kx * (base.ky + 1))
        self.presence = [self._presence(c) for c in (cx, cy)]

    @staticmethod
    def _presence(cmat: object) -> tuple[np.ndarray, object]:
        """Distinct values present given which clusters are drawn: values of one cluster counted per cluster,
        values shared by several clusters kept as a small sparse indicator."""
        csc = cmat.tocsc()  # type: ignore[attr-defined]
        nnz = np.diff(csc.indptr)
        single = np.flatnonzero(nnz == 1)
        owner = csc.indices[csc.indptr[single]]
        per_cluster = np.bincount(owner, minlength=csc.shape[0]).astype(np.float64)
        shared = (csc[:, np.flatnonzero(nnz > 1)] > 0).astype(np.float64)
        return per_cluster, shared

    def counts(self, wc: np.ndarray, need: Sequence[str] = KENDALL_STATISTICS) -> dict[str, np.ndarray]:
        """Pair counts for each row of cluster draw counts `wc`; only what the statistics in `need` use."""
        wc = np.asarray(wc, dtype=np.float64)
        nrows = wc @ self.size
        nan = np.full(len(wc), np.nan)

        def quad(k: np.ndarray) -> np.ndarray:
            return np.einsum("ij,ij->i", wc @ k, wc)

        if self.m32 is not None and float(wc.max(initial=0.0)) <= 64.0:
            s_val = np.einsum("ij,ij->i", (wc.astype(np.float32) @ self.m32).astype(np.float64), wc)
        else:
            s_val = quad(self.m)
        out = {"n": nrows, "s": s_val, "ties_x": nan, "ties_y": nan, "ties_xy": nan, "distinct_x": nan,
               "distinct_y": nan}
        if set(need) - {"tau_c"}:
            out["ties_x"] = (quad(self.kx) - nrows) / 2
            out["ties_y"] = (quad(self.ky) - nrows) / 2
        if set(need) - {"tau_c", "tau_b"}:
            out["ties_xy"] = (quad(self.kxy) - nrows) / 2
        if "tau_c" in need:
            drawn = (wc > 0).astype(np.float64)
            for key, (per_cluster, shared) in zip(("distinct_x", "distinct_y"), self.presence):
                d = drawn @ per_cluster
                if shared.shape[1]:
                    d = d + (np.asarray(shared.T @ drawn.T).T > 0).sum(axis=1)
                out[key] = d
        return out


def _kendall_from_counts(c: Mapping[str, np.ndarray], statistic: str) -> np.ndarray:
    n = np.asarray(c["n"], dtype=np.float64)
    s = np.asarray(c["s"], dtype=np.float64)
    tx, ty, txy = (np.asarray(c[k], dtype=np.float64) for k in ("ties_x", "ties_y", "ties_xy"))
    pairs = n * (n - 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        if statistic == "tau_b":
            val = s / np.sqrt(pairs - tx) / np.sqrt(pairs - ty)
            val = np.where((pairs - tx > 0) & (pairs - ty > 0), val, np.nan)
        elif statistic == "tau_c":
            m = np.minimum(c["distinct_x"], c["distinct_y"]).astype(np.float64)
            val = 2 * s / (n**2 * (m - 1) / m)
            val = np.where(m > 1, val, np.nan)
        else:
            conc = (pairs - tx - ty + txy + s) / 2
            disc = (pairs - tx - ty + txy - s) / 2
            if statistic == "tau_23":
                val = (conc + txy - disc - (tx - txy) - (ty - txy)) / pairs
            elif statistic == "acc_23":
                val = (conc + txy) / pairs
            elif statistic == "pairwise_acc":
                den = conc + disc + (tx - txy)
                val = np.where(den > 0, conc / den, np.nan)
            else:
                raise ValueError(f"unknown Kendall statistic {statistic!r}")
            val = np.where(pairs > 0, val, np.nan)
    return np.clip(val, -1.0, 1.0)


def pair_counts(x: Sequence[float], y: Sequence[float]) -> PairCounts:
    """Concordant/discordant/tie counts of two score lists (exact, O(n log n))."""
    x, y = _as_pair(x, y)
    c = _KendallPlan(x, y).counts(np.ones((1, len(x))))
    return PairCounts(float(c["n"][0]), float(c["s"][0]), float(c["ties_x"][0]), float(c["ties_y"][0]),
                      float(c["ties_xy"][0]), int(c["distinct_x"][0]), int(c["distinct_y"][0]))


# ----------------------------------------------------------------------------------------------------------------
# ranks / Pearson / Spearman (weighted, batched)
# ----------------------------------------------------------------------------------------------------------------


def _weighted_midranks(codes: np.ndarray, order: np.ndarray, starts: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Midranks of each row in the multiset where row i appears w[b, i] times (b x n)."""
    m = np.add.reduceat(w[:, order], starts, axis=1)  # weight of each distinct value (sorted)
    below = np.cumsum(m, axis=1) - m
    rank_of_value = below + (m + 1) / 2
    return rank_of_value[:, codes]


def _weighted_pearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    tot = w.sum(axis=1)
    ma = (w * a).sum(axis=1) / tot
    mb = (w * b).sum(axis=1) / tot
    da = a - ma[:, None]
    db = b - mb[:, None]
    cov = (w * da * db).sum(axis=1)
    va = (w * da * da).sum(axis=1)
    vb = (w * db * db).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / np.sqrt(va * vb)
    return np.clip(np.where((va > 0) & (vb > 0), r, np.nan), -1.0, 1.0)


def _rank_plan(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes, _ = _dense_codes(v)
    order = np.argsort(codes, kind="stable")
    return codes, order, _group_bounds(codes[order])[2]


class _PairPlan:
    """All weight-independent preparation for the statistics of one (x, y) pair."""

    def __init__(self, x: np.ndarray, y: np.ndarray, statistics: Sequence[str]) -> None:
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.statistics = list(statistics)
        self.kendall = _KendallPlan(self.x, self.y) if any(s in KENDALL_STATISTICS for s in statistics) else None
        if "spearman" in statistics:
            self.rank_x = _rank_plan(self.x)
            self.rank_y = _rank_plan(self.y)

    def evaluate(self, w: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.kendall is not None:
            c = self.kendall.counts(w)
            for s in self.statistics:
                if s in KENDALL_STATISTICS:
                    out[s] = _kendall_from_counts(c, s)
        if "spearman" in self.statistics:
            rx = _weighted_midranks(self.rank_x[0], self.rank_x[1], self.rank_x[2], w)
            ry = _weighted_midranks(self.rank_y[0], self.rank_y[1], self.rank_y[2], w)
            out["spearman"] = _weighted_pearson(rx, ry, w)
        if "pearson" in self.statistics:
            out["pearson"] = _weighted_pearson(np.broadcast_to(self.x, w.shape), np.broadcast_to(self.y, w.shape), w)
        return out


def _as_pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({len(x)} vs {len(y)})")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("NaN in the scores: remove or impute them first (a NaN silently changes every statistic)")
    return x, y


def _check_statistics(statistics: Sequence[str]) -> list[str]:
    bad = [s for s in statistics if s not in STATISTICS]
    if bad:
        raise ValueError(f"unknown statistic(s) {bad}; expected some of {list(STATISTICS)}")
    return list(statistics)


# ----------------------------------------------------------------------------------------------------------------
# point estimates
# ----------------------------------------------------------------------------------------------------------------


def correlations(x: Sequence[float], y: Sequence[float], statistics: Sequence[str] = STATISTICS) -> dict[str, float]:
    """Flat (caption-level) statistics of metric scores `x` against human scores `y`."""
    x, y = _as_pair(x, y)
    plan = _PairPlan(x, y, _check_statistics(statistics))
    return {k: float(v[0]) for k, v in plan.evaluate(np.ones((1, len(x)))).items()}


def correlation(x: Sequence[float], y: Sequence[float], statistic: str = "tau_c") -> float:
    return correlations(x, y, [statistic])[statistic]


def kendall_tau(x: Sequence[float], y: Sequence[float], variant: str = "b") -> float:
    """Kendall tau: variant 'b', 'c', '23' (ties credited) or 'acc23' (pairwise accuracy with ties credited)."""
    name = {"b": "tau_b", "c": "tau_c", "23": "tau_23", "acc23": "acc_23"}.get(variant)
    if name is None:
        raise ValueError(f"unknown Kendall variant {variant!r}; expected 'b', 'c', '23' or 'acc23'")
    return correlation(x, y, name)


def pairwise_accuracy(x: Sequence[float], y: Sequence[float], ties: str = "credited") -> float:
    """Share of pairs ordered as people order them. ties='credited': a tie predicted for a human tie counts as right
    (acc_23, all pairs); ties='exclude-human': pairs people tied are left out and metric ties count as wrong."""
    if ties == "credited":
        return correlation(x, y, "acc_23")
    if ties == "exclude-human":
        return correlation(x, y, "pairwise_acc")
    raise ValueError("ties must be 'credited' or 'exclude-human'")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return correlation(x, y, "spearman")


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    return correlation(x, y, "pearson")


@dataclass(frozen=True)
class GroupedValue:
    """An image-grouped statistic: the mean over groups of the within-group value; degenerate groups are dropped."""

    value: float
    n_groups: int
    n_dropped: int


def _group_codes(groups: Sequence[object]) -> tuple[np.ndarray, int]:
    codes, uniq = pd.factorize(pd.Series(list(groups) if not isinstance(groups, np.ndarray) else groups),
                               sort=False)
    return np.asarray(codes, dtype=np.int64), len(uniq)


def _within_group_pairs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All unordered pairs (i, j) of rows sharing a group code, with that code."""
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    npairs = sizes * (sizes - 1) // 2
    gid = np.repeat(np.arange(len(sizes)), npairs)
    # k-th pair of a group of size s -> (a, b) with a < b, enumerated row by row
    k = np.arange(npairs.sum()) - np.repeat(np.cumsum(npairs) - npairs, npairs)
    s = sizes[gid].astype(np.float64)
    a = np.floor((2 * s - 1 - np.sqrt((2 * s - 1) ** 2 - 8 * k)) / 2).astype(np.int64)
    first = a * (2 * sizes[gid] - a - 1) // 2
    fix = first > k  # guard the float sqrt at boundaries
    a[fix] -= 1
    first = a * (2 * sizes[gid] - a - 1) // 2
    nxt = (a + 1) * (2 * sizes[gid] - a - 2) // 2
    over = nxt <= k
    a[over] += 1
    first = a * (2 * sizes[gid] - a - 1) // 2
    b = a + 1 + (k - first)
    return order[starts[gid] + a], order[starts[gid] + b], gid


def per_group_values(x: Sequence[float], y: Sequence[float], groups: Sequence[object],
                     statistics: Sequence[str] = STATISTICS) -> dict[str, np.ndarray]:
    """The statistic inside each group (image): NaN where the group cannot define it (fewer than 2 rows, all tied)."""
    x, y = _as_pair(x, y)
    codes, g = _group_codes(groups)
    statistics = _check_statistics(statistics)
    out: dict[str, np.ndarray] = {}
    i, j, gid = _within_group_pairs(codes)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    size = np.bincount(codes, minlength=g).astype(np.float64)

    def per(v: np.ndarray) -> np.ndarray:
        return np.bincount(gid, weights=v, minlength=g)

    counts = {"n": size, "s": per(sx * sy), "ties_x": per(sx == 0), "ties_y": per(sy == 0),
              "ties_xy": per((sx == 0) & (sy == 0)),
              "distinct_x": pd.DataFrame({"g": codes, "v": x}).drop_duplicates().groupby("g").size()
              .reindex(range(g), fill_value=0).to_numpy(),
              "distinct_y": pd.DataFrame({"g": codes, "v": y}).drop_duplicates().groupby("g").size()
              .reindex(range(g), fill_value=0).to_numpy()}
    for s in statistics:
        if s in KENDALL_STATISTICS:
            out[s] = _kendall_from_counts(counts, s)
    frame = pd.DataFrame({"g": codes, "x": x, "y": y})
    for s in ("spearman", "pearson"):
        if s not in statistics:
            continue
        if s == "spearman":
            a = frame.groupby("g")["x"].rank(method="average").to_numpy()
            b = frame.groupby("g")["y"].rank(method="average").to_numpy()
        else:
            a, b = x, y
        cnt = np.bincount(codes, minlength=g).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ma = np.bincount(codes, weights=a, minlength=g) / cnt
            mb = np.bincount(codes, weights=b, minlength=g) / cnt
            da, db = a - ma[codes], b - mb[codes]
            cov = np.bincount(codes, weights=da * db, minlength=g)
            va = np.bincount(codes, weights=da * da, minlength=g)
            vb = np.bincount(codes, weights=db * db, minlength=g)
            r = cov / np.sqrt(va * vb)
        out[s] = np.clip(np.where((va > 1e-12) & (vb > 1e-12), r, np.nan), -1, 1)
    return out


def grouped_correlation(x: Sequence[float], y: Sequence[float], groups: Sequence[object],
                        statistic: str = "tau_b") -> GroupedValue:
    """Rank the candidates within each group (image), compute the statistic there, average over groups."""
    v = per_group_values(x, y, groups, [statistic])[statistic]
    ok = ~np.isnan(v)
    return GroupedValue(float(v[ok].mean()) if ok.any() else float("nan"), int(ok.sum()), int((~ok).sum()))


# ----------------------------------------------------------------------------------------------------------------
# bootstrap over clusters (images)
# ----------------------------------------------------------------------------------------------------------------


def cluster_bootstrap_counts(n_clusters: int, n_resamples: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """How often each cluster is drawn in each resample (n_resamples x n_clusters), clusters drawn with replacement."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    draws = rng.integers(0, n_clusters, size=(n_resamples, n_clusters))
    flat = draws + (np.arange(n_resamples) * n_clusters)[:, None]
    return np.bincount(flat.ravel(), minlength=n_resamples * n_clusters).reshape(n_resamples, n_clusters).astype(
        np.float64)


@dataclass
class BootstrapResult:
    """Point estimates, percentile CIs and the resampled values of several metrics' statistics (shared resamples)."""

    estimates: dict[str, dict[str, float]]  # metric -> statistic -> value
    samples: dict[str, dict[str, np.ndarray]]  # metric -> statistic -> (n_resamples,)
    n_resamples: int
    confidence: float
    seed: int
    n_clusters: int
    n_rows: int
    level: str = "caption"
    dropped_groups: dict[str, dict[str, int]] = field(default_factory=dict)

    def ci(self, metric: str, statistic: str) -> tuple[float, float]:
        v = self.samples[metric][statistic]
        v = v[~np.isnan(v)]
        if len(v) == 0:
            return float("nan"), float("nan")
        a = (1 - self.confidence) / 2
        lo, hi = np.quantile(v, [a, 1 - a])
        return float(lo), float(hi)

    def diff_ci(self, a: str, b: str, statistic: str) -> tuple[float, float, float]:
        """Paired difference a - b on the same resamples: (estimate, lo, hi)."""
        d = self.samples[a][statistic] - self.samples[b][statistic]
        d = d[~np.isnan(d)]
        q = (1 - self.confidence) / 2
        lo, hi = np.quantile(d, [q, 1 - q]) if len(d) else (np.nan, np.nan)
        return self.estimates[a][statistic] - self.estimates[b][statistic], float(lo), float(hi)

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for m, st in self.estimates.items():
            for s, v in st.items():
                lo, hi = self.ci(m, s) if self.n_resamples else (np.nan, np.nan)
                rows.append({"metric": m, "level": self.level, "statistic": s, "value": v, "ci_low": lo,
                             "ci_high": hi, "n": self.n_rows, "n_images": self.n_clusters})
        return pd.DataFrame(rows)


def _one_blas_thread() -> Any:
    """The per-resample products are small (250 x images x images): threaded BLAS gains little on them and loses a
    lot on a busy machine, so they run on one BLAS thread when threadpoolctl is importable."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _caption_bootstrap(x: np.ndarray, y: np.ndarray, codes: np.ndarray, g: int, counts: np.ndarray,
                       statistics: list[str], chunk_rows: int,
                       progress: Callable[[int], None] | None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Point estimate + resampled values of flat statistics; Kendall/Pearson in cluster space when it fits."""
    nb = counts.shape[0]
    res = {s: np.full(nb, np.nan) for s in statistics}
    kendall = [s for s in statistics if s in KENDALL_STATISTICS]
    rest = [s for s in statistics if s not in KENDALL_STATISTICS]
    est: dict[str, float] = {}
    if kendall and g <= _MAX_CLUSTER_PLAN and nb:
        with _one_blas_thread():
            plan = _ClusterKendallPlan(x, y, codes, g)
            c1 = plan.counts(np.ones((1, g)), kendall)
            est.update({s: float(_kendall_from_counts(c1, s)[0]) for s in kendall})
            for b0 in range(0, nb, 250):
                c = plan.counts(counts[b0:b0 + 250], kendall)
                for s in kendall:
                    res[s][b0:b0 + 250] = _kendall_from_counts(c, s)
    elif kendall:
        rest = kendall + rest
    todo = [s for s in statistics if s not in est]
    if todo:
        est.update({s: float(v[0]) for s, v in _PairPlan(x, y, todo).evaluate(np.ones((1, len(x)))).items()})
    if "pearson" in rest and nb:
        sums = np.stack([np.bincount(codes, weights=v, minlength=g) for v in
                         (np.ones_like(x), x, y, x * x, y * y, x * y)], axis=1)
        tot, sx, sy, sxx, syy, sxy = (counts @ sums).T
        with np.errstate(divide="ignore", invalid="ignore"):
            cov = sxy - sx * sy / tot
            vx, vy = sxx - sx * sx / tot, syy - sy * sy / tot
            r = cov / np.sqrt(vx * vy)
        res["pearson"] = np.clip(np.where((vx > 1e-12 * sxx) & (vy > 1e-12 * syy), r, np.nan), -1, 1)
        rest.remove("pearson")
    if rest and nb:
        plan_rows = _PairPlan(x, y, rest)
        step = max(1, chunk_rows // max(1, len(x)))
        for b0 in range(0, nb, step):
            for s, v in plan_rows.evaluate(counts[b0:b0 + step][:, codes]).items():
                res[s][b0:b0 + step] = v
    if progress:
        progress(nb)
    return est, res


_MAX_CLUSTER_PLAN = 4000


def bootstrap_correlations(metrics: Mapping[str, Sequence[float]], human: Sequence[float], clusters: Sequence[object],
                           statistics: Sequence[str] = ("tau_c",), n_resamples: int = 1000, seed: int = 0,
                           confidence: float = 0.95, level: str = "caption", chunk_rows: int = 2_000_000,
                           progress: Callable[[int], None] | None = None) -> BootstrapResult:
    """Point estimates and cluster-bootstrap CIs (clusters = images) for several metrics on the SAME resamples.

    level='caption': one statistic over all rows; level='image': the mean of the within-image statistic (images where
    it is undefined are dropped, counted in `dropped_groups`). Resampling draws images with replacement and keeps all
    rows of a drawn image together, so ratings of one image never count as independent evidence.
    """
    statistics = _check_statistics(statistics)
    y = np.asarray(human, dtype=np.float64)
    codes, g = _group_codes(clusters)
    if len(codes) != len(y):
        raise ValueError("clusters and human scores differ in length")
    counts = cluster_bootstrap_counts(g, n_resamples, seed) if n_resamples > 0 else np.zeros((0, g))
    estimates: dict[str, dict[str, float]] = {}
    samples: dict[str, dict[str, np.ndarray]] = {}
    dropped: dict[str, dict[str, int]] = {}
    for name, xs in metrics.items():
        x, yy = _as_pair(xs, y)
        if level == "caption":
            estimates[name], samples[name] = _caption_bootstrap(x, yy, codes, g, counts, statistics, chunk_rows,
                                                                progress)
        elif level == "image":
            per = per_group_values(x, yy, codes, statistics)
            estimates[name], samples[name], dropped[name] = {}, {}, {}
            for s, v in per.items():
                ok = ~np.isnan(v)
                estimates[name][s] = float(v[ok].mean()) if ok.any() else float("nan")
                dropped[name][s] = int((~ok).sum())
                vv = np.where(ok, v, 0.0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    samples[name][s] = (counts @ vv) / (counts @ ok.astype(np.float64))
            if progress:
                progress(n_resamples)
        else:
            raise ValueError(f"level must be 'caption' or 'image', not {level!r}")
    return BootstrapResult(estimates, samples, n_resamples, confidence, seed, g, len(y), level, dropped)


# ----------------------------------------------------------------------------------------------------------------
# significance: metric A vs metric B
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricComparison:
    """Is metric A closer to people than metric B? PERM-BOTH permutation test (and Williams for Pearson)."""

    metric_a: str
    metric_b: str
    statistic: str
    value_a: float
    value_b: float
    delta: float
    p_value: float
    n_resamples: int
    test: str


def _level_counts(x: np.ndarray, ycodes: np.ndarray, ky: int, ties_y: float) -> dict[str, np.ndarray]:
    """Unweighted pair counts when y has few levels (codes 0..ky-1): one stable sort of x and an n x ky cumulative
    count table; used where x changes on every draw (permutation tests)."""
    n = len(x)
    order = np.lexsort((ycodes, x))
    xs, ys = x[order], ycodes[order]
    new_x = np.r_[True, xs[1:] != xs[:-1]]
    run = np.cumsum(new_x) - 1
    starts = np.flatnonzero(new_x)
    ends = np.r_[starts[1:], n]
    table = np.zeros((n + 1, ky))
    table[np.arange(1, n + 1), ys] = 1.0
    np.cumsum(table, axis=0, out=table)  # table[p, l] = rows of level l among the first p (in x order)
    below = np.cumsum(table, axis=1) - table  # rows of a lower level among the first p
    lo_less = below[starts[run], ys]
    lo_greater = below[n, ys] - below[ends[run], ys]
    s = float((lo_less - lo_greater).sum())
    run_len = np.diff(np.r_[starts, n]).astype(np.float64)
    new_xy = new_x | np.r_[True, ys[1:] != ys[:-1]]
    joint_len = np.diff(np.r_[np.flatnonzero(new_xy), n]).astype(np.float64)
    return {"n": np.array([float(n)]), "s": np.array([s]),
            "ties_x": np.array([(run_len * (run_len - 1) / 2).sum()]), "ties_y": np.array([ties_y]),
            "ties_xy": np.array([(joint_len * (joint_len - 1) / 2).sum()]),
            "distinct_x": np.array([float(len(starts))]), "distinct_y": np.array([float(ky)])}


def _zscore(v: np.ndarray) -> np.ndarray:
    sd = v.std()
    return (v - v.mean()) / sd if sd > 0 else v - v.mean()


def permutation_test(a: Sequence[float], b: Sequence[float], human: Sequence[float], statistic: str = "tau_c",
                     units: Sequence[object] | None = None, groups: Sequence[object] | None = None,
                     n_resamples: int = 1000, seed: int = 0, names: tuple[str, str] = ("A", "B")) -> MetricComparison:
    """PERM-BOTH (Deutsch, Dror & Roth 2021): z-normalise both metrics, swap their scores per unit (caption) with
    probability 1/2, and count how often the swapped difference reaches the observed one. One-sided: H1 says A > B.

    `units` ties rows that share one metric score (the 3 expert rows of a caption) so they swap together; `groups`
    makes the statistic image-grouped instead of flat.
    """
    _check_statistics([statistic])
    za, y = _as_pair(a, human)
    zb, _ = _as_pair(b, human)
    za, zb = _zscore(za), _zscore(zb)
    ucodes, nu = _group_codes(units) if units is not None else (np.arange(len(y)), len(y))
    rng = np.random.default_rng(seed)

    ycodes, ky = _dense_codes(y)
    fast = groups is None and statistic in KENDALL_STATISTICS and ky <= 64
    ties_y = float((np.bincount(ycodes) * (np.bincount(ycodes) - 1) / 2).sum())

    def stat(x: np.ndarray) -> float:
        if fast:
            return float(_kendall_from_counts(_level_counts(x, ycodes, ky, ties_y), statistic)[0])
        if groups is None:
            return correlation(x, y, statistic)
        return grouped_correlation(x, y, groups, statistic).value

    va, vb = stat(za), stat(zb)
    delta = va - vb
    hits = 0
    for _ in range(n_resamples):
        flip = rng.integers(0, 2, nu).astype(bool)[ucodes]
        xa = np.where(flip, zb, za)
        xb = np.where(flip, za, zb)
        if stat(xa) - stat(xb) >= delta:
            hits += 1
    p = (hits + 1) / (n_resamples + 1)
    return MetricComparison(names[0], names[1], statistic, va, vb, delta, p, n_resamples, "PERM-BOTH")


def williams_test(r12: float, r13: float, r23: float, n: int, one_sided: bool = True) -> float:
    """Williams test (Graham & Baldwin 2014) that r12 > r13 for two dependent Pearson correlations sharing variable 1
    (the human score): r23 is the correlation between the two metrics. Returns the p-value (t with n-3 df)."""
    if n <= 3:
        raise ValueError("the Williams test needs more than 3 items")
    k = 1 - r12**2 - r13**2 - r23**2 + 2 * r12 * r13 * r23
    rbar = (r12 + r13) / 2
    t = (r12 - r13) * math.sqrt((n - 1) * (1 + r23)) / math.sqrt(
        2 * k * (n - 1) / (n - 3) + rbar**2 * (1 - r23) ** 3)
    p = float(sps.t.sf(t, n - 3))
    return p if one_sided else float(min(1.0, 2 * sps.t.sf(abs(t), n - 3)))


def compare_metrics_pearson(a: Sequence[float], b: Sequence[float], human: Sequence[float],
                            names: tuple[str, str] = ("A", "B")) -> MetricComparison:
    """Williams test that metric A's Pearson correlation with people exceeds metric B's."""
    x_a, y = _as_pair(a, human)
    x_b, _ = _as_pair(b, human)
    r1, r2, r12 = pearson(x_a, y), pearson(x_b, y), pearson(x_a, x_b)
    return MetricComparison(names[0], names[1], "pearson", r1, r2, r1 - r2, williams_test(r1, r2, r12, len(y)), 0,
                            "Williams")


# ----------------------------------------------------------------------------------------------------------------
# system level
# ----------------------------------------------------------------------------------------------------------------


def system_correlations(metric: Mapping[str, float], human: Mapping[str, float]) -> dict[str, float]:
    """Correlation over systems (one number per system each). With 2 systems only the pairwise accuracy (1 pair) is
    meaningful; with 3, tau is in {-1, -1/3, 1/3, 1}: a StatsWarning says so. Fewer than 2 systems is an error."""
    common = [s for s in metric if s in human]
    if len(common) < 2:
        raise ValueError(f"system-level correlation needs at least 2 systems; got {len(common)} ({common})")
    x = np.array([metric[s] for s in common], dtype=float)
    y = np.array([human[s] for s in common], dtype=float)
    out = {"pairwise_acc": correlation(x, y, "acc_23")}
    if len(common) < 3:
        warnings.warn(f"only {len(common)} systems: reporting pairwise accuracy over 1 pair, no correlation",
                      StatsWarning, stacklevel=2)
        return out
    if len(common) < 5:
        warnings.warn(f"only {len(common)} systems: system-level correlations take a handful of values; read the "
                      "pairwise accuracy and the per-pair tests instead", StatsWarning, stacklevel=2)
    out.update(correlations(x, y, ["tau_b", "spearman", "pearson"]))
    return out


@dataclass(frozen=True)
class SystemComparison:
    """System X vs Y on the same images: the mean difference by the metric and by people, each with a paired test."""

    system_x: str
    system_y: str
    judge: str  # metric name or "human"
    delta: float  # mean(X) - mean(Y), in the judge's units
    ci_low: float
    ci_high: float
    p_value: float  # two-sided paired permutation (sign flips over images)
    n_images: int
    n_resamples: int

    @property
    def preferred(self) -> str:
        return self.system_x if self.delta > 0 else self.system_y if self.delta < 0 else "neither"


def format_p(p: float, n_resamples: int | None = None) -> str:
    """'p<0.01' style for small p, else 'p=0.02'; never 'p=0' from a finite resampling."""
    if np.isnan(p):
        return "p=n/a"
    if p < 0.001:
        return "p<0.001"
    if p < 0.01:
        return "p<0.01"
    return f"p={p:.2f}"


def paired_system_test(x: Sequence[float], y: Sequence[float], images: Sequence[object], judge: str = "human",
                       names: tuple[str, str] = ("X", "Y"), n_resamples: int = 10000, seed: int = 0,
                       confidence: float = 0.95) -> SystemComparison:
    """Paired test of system X vs Y. `x` and `y` are per-row scores of the two systems aligned on the same images
    (rows of one image share an `images` value; several raters of an image are averaged first). The p-value comes
    from a sign-flip permutation of the per-image differences (two-sided); the CI from an image bootstrap."""
    xa, ya = _as_pair(x, y)
    codes, g = _group_codes(images)
    if g < 2:
        raise ValueError("a paired system test needs at least 2 images")
    cnt = np.bincount(codes, minlength=g).astype(float)
    d = (np.bincount(codes, weights=xa, minlength=g) - np.bincount(codes, weights=ya, minlength=g)) / cnt
    obs = float(d.mean())
    rng = np.random.default_rng(seed)
    hits = 0
    done = 0
    while done < n_resamples:
        b = min(2000, n_resamples - done)
        signs = rng.integers(0, 2, (b, g)) * 2 - 1
        hits += int((np.abs(signs @ d / g) >= abs(obs) - 1e-12).sum())
        done += b
    p = (hits + 1) / (n_resamples + 1)
    boots = (cluster_bootstrap_counts(g, min(n_resamples, 5000), rng) @ d) / g
    q = (1 - confidence) / 2
    lo, hi = np.quantile(boots, [q, 1 - q])
    return SystemComparison(names[0], names[1], judge, obs, float(lo), float(hi), p, g, n_resamples)


def verdict_sentence(metric_cmp: SystemComparison, human_cmp: SystemComparison, metric_scale: float = 100.0,
                     human_unit: str = "points") -> str:
    """'BLEU-4 prefers tuned over baseline by +3.1 (p<0.01); people prefer baseline over tuned by 0.4 points
    (p=0.02)': both systems named on both sides."""
    def part(c: SystemComparison, who: str, scale: float, unit: str) -> str:
        if c.delta == 0:
            return f"{who} see{'' if who == 'people' else 's'} no difference between {c.system_x} and {c.system_y}"
        verb = "prefer" if who == "people" else "prefers"
        sign = "" if unit else "+"
        other = c.system_y if c.preferred == c.system_x else c.system_x
        return (f"{who} {verb} {c.preferred} over {other} by {sign}{abs(c.delta) * scale:.1f}{unit} "
                f"({format_p(c.p_value)})")

    return part(metric_cmp, metric_cmp.judge, metric_scale, "") + "; " + part(human_cmp, "people", 1.0,
                                                                              f" {human_unit}")


def system_statistics(metric: np.ndarray, human: np.ndarray, statistics: Sequence[str]
                      ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Correlation statistics over systems for many draws at once: `metric` and `human` are (draws, systems) system
    scores (one row per bootstrap resample; row 0 may be the point estimate). Returns statistic -> (draws,) and,
    for statistics that cannot be defined for this many systems, statistic -> the reason (values NaN).

    Kendall variants and pairwise accuracies are defined from 2 systems (one pair); Spearman and Pearson need 3
    (with 2 systems any correlation is +-1)."""
    statistics = _check_statistics(statistics)
    x = np.atleast_2d(np.asarray(metric, dtype=np.float64))
    y = np.atleast_2d(np.asarray(human, dtype=np.float64))
    if x.shape != y.shape:
        raise ValueError(f"metric and human system scores differ in shape ({x.shape} vs {y.shape})")
    b, n = x.shape
    out: dict[str, np.ndarray] = {}
    why: dict[str, str] = {}
    if n < 2:
        for s in statistics:
            out[s] = np.full(b, np.nan)
            why[s] = f"needs at least 2 systems ({n} here)"
        return out, why
    i, j = np.triu_indices(n, 1)
    with np.errstate(invalid="ignore"):
        sx = np.sign(x[:, i] - x[:, j])
        sy = np.sign(y[:, i] - y[:, j])
    bad = np.isnan(x).any(axis=1) | np.isnan(y).any(axis=1)
    sx, sy = np.nan_to_num(sx), np.nan_to_num(sy)
    xs, ys = np.sort(np.nan_to_num(x), axis=1), np.sort(np.nan_to_num(y), axis=1)
    counts = {"n": np.full(b, float(n)), "s": (sx * sy).sum(axis=1), "ties_x": (sx == 0).sum(axis=1).astype(float),
              "ties_y": (sy == 0).sum(axis=1).astype(float),
              "ties_xy": ((sx == 0) & (sy == 0)).sum(axis=1).astype(float),
              "distinct_x": 1 + (np.diff(xs, axis=1) != 0).sum(axis=1),
              "distinct_y": 1 + (np.diff(ys, axis=1) != 0).sum(axis=1)}
    for s in statistics:
        if s in KENDALL_STATISTICS:
            out[s] = _kendall_from_counts(counts, s)
        elif n < 3:
            out[s] = np.full(b, np.nan)
            why[s] = "needs at least 3 systems (with 2, any correlation is +-1); read pairwise_acc / tau and the " \
                     "per-pair tests"
        else:
            a, c = (sps.rankdata(x, axis=1), sps.rankdata(y, axis=1)) if s == "spearman" else (x, y)
            out[s] = _weighted_pearson(a, c, np.ones_like(a))
        out[s] = np.where(bad, np.nan, out[s])
    return out, why
