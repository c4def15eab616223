"""Meta-evaluation sections of a report: correlation table with CIs, bar chart with error bars, metric-vs-human
plots, system verdicts with p-values, metric-vs-metric tests and every metric's reproducibility signature."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from capeval.report.render import Report


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def correlation_bar_chart(result: Any, statistic: str | None = None) -> Any:
    """Bars = each metric's statistic (x100), error bars = the bootstrap 95% CI."""
    from capeval.meta.correlate import display_name

    plt = _plt()
    stat = statistic or result.primary_statistic
    t = result.table[(result.table["statistic"] == stat) & (result.table["level"] == result.level)]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(t) + 2), 3.4))
    vals = t["value"].to_numpy() * 100
    lo = np.nan_to_num(vals - t["ci_low"].to_numpy() * 100)
    hi = np.nan_to_num(t["ci_high"].to_numpy() * 100 - vals)
    names = [display_name(m) for m in t["metric"]]
    ax.bar(names, vals, yerr=[lo, hi], capsize=4, color="#4C72B0")
    for i, v in enumerate(vals):
        ax.text(i, v + hi[i] + 0.5, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"{stat} x 100")
    ax.set_title(f"{result.judgments}: {stat} ({result.level} level), 95% image-bootstrap CI", fontsize=9)
    ax.tick_params(axis="x", rotation=30)
    ax.set_ylim(min(0, float(np.nanmin(vals - lo)) - 2) if len(vals) else 0,
                float(np.nanmax(vals + hi)) * 1.15 + 1 if len(vals) else 1)
    fig.tight_layout()
    return fig


def metric_vs_human_figure(result: Any, max_points: int = 4000, seed: int = 0) -> Any:
    """One panel per metric: box plots of the metric by human rating when the ratings take few values, else a
    scatter (subsampled to `max_points`)."""
    from capeval.meta.correlate import display_name

    plt = _plt()
    metrics = [m for m in result.metrics if m in result.scores]
    n = len(metrics)
    cols = min(4, max(1, n))
    rows = int(np.ceil(n / cols)) if n else 1
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    df = result.scores
    human = df["rating"].to_numpy()
    levels = np.unique(human)
    rng = np.random.default_rng(seed)
    for k, m in enumerate(metrics):
        ax = axes[k // cols][k % cols]
        x = df[m].to_numpy()
        if len(levels) <= 12:
            data = [x[human == lv] for lv in levels]
            ax.boxplot(data, showfliers=False)
            ax.set_xticks(range(1, len(levels) + 1), [f"{lv:g}" for lv in levels], fontsize=7)
            ax.set_xlabel("human rating", fontsize=8)
        else:
            idx = rng.choice(len(x), size=min(max_points, len(x)), replace=False)
            ax.scatter(human[idx], x[idx], s=4, alpha=0.35)
            ax.set_xlabel("human rating", fontsize=8)
        ax.set_title(display_name(m), fontsize=9)
        ax.tick_params(labelsize=7)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(f"{result.judgments}: metric score by human rating", fontsize=10)
    fig.tight_layout()
    return fig


def add_correlation_section(report: Report, result: Any, title: str | None = None) -> Report:
    """All the meta-evaluation content for one CorrelationResult."""
    from capeval.meta.correlate import display_name
    from capeval.meta.stats import STATISTIC_DESCRIPTIONS, format_p

    report.add_heading(title or f"Agreement with people: {result.judgments}", 2)
    report.add_text(f"{result.n_rows:,} rating rows over {result.n_images:,} images, level = {result.level}. "
                    f"Values x 100; brackets: 95% percentile CI from {result.n_resamples} bootstrap resamples of "
                    f"images (seed {result.seed}).")
    if result.protocol:
        report.add_list(result.protocol)
    wide = result.wide()
    if len(wide):
        wide = wide.rename_axis("metric").reset_index()
        report.add_table(wide, caption="Correlation with human judgments (x100) and 95% CI")
        report.add_list([f"`{s}`: {STATISTIC_DESCRIPTIONS.get(s, s)}" for s in result.statistics])
        report.add_figure(correlation_bar_chart(result), caption=f"{result.primary_statistic} per metric with 95% CI",
                          name=f"{result.judgments}-bars")
        report.add_figure(metric_vs_human_figure(result), caption="Metric scores against the human rating",
                          name=f"{result.judgments}-scatter")
    if result.metric_tests is not None and len(result.metric_tests):
        mt = result.metric_tests.copy()
        for c in mt.columns:
            if c.startswith("p_"):
                mt[c] = mt[c].map(lambda p: format_p(float(p)))
        for c in ("metric_a", "metric_b"):
            mt[c] = mt[c].map(display_name)
        report.add_heading("Is the best metric significantly better?", 3)
        report.add_table(mt, caption="delta = difference of the statistic on the same image resamples (95% CI); "
                                     "p_perm: PERM-BOTH permutation test; p_williams: Williams test on Pearson")
    if result.systems is not None and len(result.systems):
        report.add_heading("System level", 3)
        report.add_table(result.systems.rename(columns={"rating": "human mean"}), caption="Per-system means")
    if result.verdicts is not None and len(result.verdicts):
        v = result.verdicts.copy()
        v["metric"] = v["metric"].map(display_name)
        for c in ("metric_p", "human_p"):
            v[c] = v[c].map(lambda p: format_p(float(p)))
        report.add_heading("Verdicts: does the metric prefer the system people prefer?", 3)
        report.add_list(list(v["verdict"]))
        report.add_table(v[["system_x", "system_y", "metric", "metric_delta", "metric_p", "human_delta", "human_p",
                            "n_images", "agree"]],
                         caption="delta = mean(X) - mean(Y) per image; p: two-sided paired permutation test over "
                                 "images")
    if result.signatures:
        report.add_heading("Reproducibility signatures", 3)
        report.add_table(pd.DataFrame({"metric": [display_name(m) for m in result.signatures],
                                       "signature": list(result.signatures.values())}))
    if result.unavailable:
        report.add_text("Not computed here: " + "; ".join(f"{display_name(m)}: {why}"
                                                          for m, why in result.unavailable.items()), note=True)
    for w in result.warnings:
        report.add_text(w, note=True)
    return report


@dataclass
class ReportPaths:
    html: Path
    markdown: Path
    results: list[Any]


def write_meta_report(human: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *,
                      refs: str | None = None, candidates: object = None, metrics: Sequence[str] | None = None,
                      level: str = "caption", bootstrap: int = 1000, seed: int = 0, leave_one_out: bool = False,
                      compare_metrics: int = 0, criterion: str | None = None,
                      title: str = "capeval meta-evaluation report",
                      progress: Callable[[str], None] | None = None) -> ReportPaths:
    """Run `correlate` for each judgments set and write one HTML report (+ Markdown twin) to `out_dir`."""
    from capeval.meta.correlate import DEFAULT_METRICS, correlate

    report = Report(title, subtitle="How far each automatic metric agrees with human judgments.")
    results = []
    for h in human:
        r = correlate(h, refs=refs, candidates=candidates, metrics=metrics or DEFAULT_METRICS, level=level,
                      bootstrap=bootstrap, seed=seed, leave_one_out=leave_one_out, compare_metrics=compare_metrics,
                      criterion=criterion, progress=progress)
        results.append(r)
        add_correlation_section(report, r)
    html_path, md_path = report.write(out_dir)
    return ReportPaths(html_path, md_path, results)
