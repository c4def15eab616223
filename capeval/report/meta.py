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


def _name(result: Any) -> str:
    from capeval.report.story import SET_NAMES

    return SET_NAMES.get(result.judgments, result.judgments)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def correlation_bar_chart(result: Any, statistic: str | None = None, level: str | None = None) -> Any:
    """Bars = each metric's statistic (x100) at `level` (default: caption, or image for image-level results),
    error bars = the bootstrap 95% CI."""
    from capeval.meta.correlate import display_name

    plt = _plt()
    stat = statistic or result.primary_statistic
    level = level or ("image" if result.level == "image" else "caption")
    t = result.table[(result.table["statistic"] == stat) & (result.table["level"] == level)]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(t) + 2), 3.4))
    vals = t["value"].to_numpy() * 100
    lo = np.nan_to_num(vals - t["ci_low"].to_numpy() * 100)
    hi = np.nan_to_num(t["ci_high"].to_numpy() * 100 - vals)
    names = [display_name(m) for m in t["metric"]]
    ax.bar(names, vals, yerr=[lo, hi], capsize=4, color="#4C72B0")
    for i, v in enumerate(vals):
        ax.text(i, v + hi[i] + 0.5, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"{stat} x 100")
    ax.set_title(f"{_name(result)}: {stat} ({level} level), 95% image-bootstrap CI", fontsize=9)
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
    fig.suptitle(f"{_name(result)}: metric score by human rating", fontsize=10)
    fig.tight_layout()
    return fig


def system_scores_figure(result: Any) -> Any:
    """One panel per metric: each system at (mean human score, corpus metric score) with 95% CI bars on both axes."""
    from capeval.meta.correlate import display_name
    from capeval.metrics.registry import REPORTED_X100

    plt = _plt()
    s = result.systems
    metrics = [m for m in result.metrics if m in s.columns]
    cols = min(3, max(1, len(metrics)))
    rows = int(np.ceil(len(metrics) / cols)) if metrics else 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    colors = plt.get_cmap("tab10")(np.arange(len(s)) % 10)
    hx = s["human"].to_numpy()
    hxerr = np.abs(np.vstack([hx - s["human_ci_low"].to_numpy(), s["human_ci_high"].to_numpy() - hx]))
    for k, m in enumerate(metrics):
        ax = axes[k // cols][k % cols]
        sc = 100.0 if m.startswith(REPORTED_X100) else 1.0
        y = s[m].to_numpy() * sc
        yerr = np.abs(np.vstack([y - s[f"{m}_ci_low"].to_numpy() * sc, s[f"{m}_ci_high"].to_numpy() * sc - y]))
        for i, name in enumerate(s["system"]):
            ax.errorbar(hx[i], y[i], xerr=np.nan_to_num(hxerr[:, i:i + 1]), yerr=np.nan_to_num(yerr[:, i:i + 1]),
                        fmt="o", color=colors[i], capsize=3, label=name)
            ax.annotate(str(name), (hx[i], y[i]), textcoords="offset points", xytext=(5, 5), fontsize=7)
        ax.set_xlabel("people: mean rating", fontsize=8)
        ax.set_ylabel(f"{display_name(m)} (corpus{', x100' if sc == 100 else ''})", fontsize=8)
        ax.set_title(display_name(m), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for k in range(len(metrics), rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(f"{_name(result)}: each system's metric score vs people's score (95% image-bootstrap CIs)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def rank_figure(result: Any) -> Any:
    """Rank of every system by people (left) and by each metric: a line per system, rank 1 on top."""
    from capeval.meta.correlate import display_name

    plt = _plt()
    s = result.systems
    metrics = [m for m in result.metrics if f"{m}_rank" in s.columns]
    judges = ["people"] + [display_name(m) for m in metrics]
    ranks = np.column_stack([s["human_rank"].to_numpy()] + [s[f"{m}_rank"].to_numpy() for m in metrics])
    fig, ax = plt.subplots(figsize=(max(4.5, 1.5 * len(judges) + 2.5), 0.45 * len(s) + 2.2))
    colors = plt.get_cmap("tab10")(np.arange(len(s)) % 10)
    xs = np.arange(len(judges))
    for i, name in enumerate(s["system"]):
        ax.plot(xs, ranks[i], "-o", color=colors[i], lw=2.2 if ranks[i, 0] == 1 else 1.2)
        ax.annotate(str(name), (xs[0], ranks[i, 0]), textcoords="offset points", xytext=(-8, 0), ha="right",
                    va="center", fontsize=8, color=colors[i])
        ax.annotate(str(name), (xs[-1], ranks[i, -1]), textcoords="offset points", xytext=(8, 0), ha="left",
                    va="center", fontsize=8, color=colors[i])
    ax.set_xticks(xs, judges, fontsize=8)
    ax.set_yticks(range(1, len(s) + 1))
    ax.set_ylim(len(s) + 0.5, 0.5)
    ax.set_ylabel("rank (1 = best)", fontsize=8)
    ax.set_xlim(-0.9, len(judges) - 0.1)
    ax.set_title(f"{_name(result)}: system ranks by people and by each metric", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def add_story(report: Report, result: Any, set_name: str | None = None, heading: str | None = None) -> Any:
    """The plain-words summary and the captions where the metric and people disagree most; returns the Story."""
    from capeval.report.story import tell

    story = tell(result, set_name or result.judgments)
    if heading:
        report.add_heading(heading, 2)
    if story.headline:
        report.add_text(" ".join(story.headline))
    if story.details:
        report.add_list(story.details)
    if result.level == "system" and result.systems is not None and len(result.systems):
        report.add_figure(system_scores_figure(result), name=f"{result.judgments}-systems",
                          caption="Each system's corpus metric score against its mean human score, with 95% CIs "
                                  "(image bootstrap recomputing every system's corpus score)")
        report.add_figure(rank_figure(result), name=f"{result.judgments}-ranks",
                          caption="Rank of each system by people and by each metric")
    if story.disagreements is not None:
        report.add_heading("Where the metric and people disagree most", 3)
        report.add_table(story.disagreements, caption="Captions ranked high by one judge and low by the other "
                         "(percentile-rank gap); references = what the caption was scored against", float_digits=2)
    return story


def add_correlation_section(report: Report, result: Any, title: str | None = None, story: bool = True) -> Report:
    """All the meta-evaluation content for one CorrelationResult: the story first, then the tables."""
    from capeval.meta.correlate import display_name
    from capeval.meta.stats import STATISTIC_DESCRIPTIONS, format_p
    from capeval.metrics.registry import REPORTED_X100

    from capeval.report.story import SET_NAMES

    report.add_heading(title or f"Agreement with people: {SET_NAMES.get(result.judgments, result.judgments)}", 2)
    if story:
        add_story(report, result)
    lvl = "image" if result.level == "image" else "caption"
    report.add_heading("Correlation tables", 3)
    report.add_text(f"{result.n_rows:,} rating rows over {result.n_images:,} images; scoring unit `{result.unit}`. "
                    f"Values x 100; brackets: 95% percentile CI from {result.n_resamples} bootstrap resamples of "
                    f"images (seed {result.seed}).")
    if result.protocol:
        report.add_list(result.protocol)
    wide = result.wide(level=lvl)
    if len(wide):
        report.add_table(wide.rename_axis("metric").reset_index(),
                         caption=f"Correlation with human judgments, {lvl} level (x100) and 95% CI")
        report.add_list([f"`{s}`: {STATISTIC_DESCRIPTIONS.get(s, s)}" for s in result.statistics])
        report.add_figure(correlation_bar_chart(result, level=lvl),
                          caption=f"{result.primary_statistic} per metric ({lvl} level) with 95% CI",
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
        report.add_table(mt, caption=f"delta = difference of {result.primary_statistic} on the same image resamples "
                                     "(95% CI); p_perm: PERM-BOTH permutation test on that statistic; "
                                     "p_williams: Williams test on Pearson r (a different statistic; it tests "
                                     "whether the Pearson correlations differ, not the Kendall ones)")
    if result.level == "system" and result.systems is not None and len(result.systems):
        report.add_heading("System level", 3)
        sw = result.wide(level="system")
        if len(sw):
            report.add_table(sw.rename_axis("metric").reset_index(),
                             caption="Correlation over systems (x100) with 95% CIs from image resamples that "
                                     "recompute every system's corpus score; n/a: not defined for this many systems")
            notes = result.system_correlation[result.system_correlation["note"] != ""]
            for st, note in dict(zip(notes["statistic"], notes["note"])).items():
                report.add_text(f"{st}: {note}", note=True)
        s = result.systems.copy()
        shown = pd.DataFrame({"system": s["system"], "images": s["n_images"],
                              "human": [f"{h:.3f} [{lo:.3f}, {hi:.3f}]" for h, lo, hi in
                                        zip(s["human"], s["human_ci_low"], s["human_ci_high"])],
                              "human rank": s["human_rank"]})
        for m in result.metrics:
            if m in s:
                k = 100.0 if m.startswith(REPORTED_X100) else 1.0
                shown[display_name(m)] = [f"{v * k:.1f} [{lo * k:.1f}, {hi * k:.1f}]" for v, lo, hi in
                                          zip(s[m], s[f"{m}_ci_low"], s[f"{m}_ci_high"])]
                shown[f"{display_name(m)} rank"] = s[f"{m}_rank"]
        report.add_table(shown, caption="Per-system scores with 95% CIs: metric = the system's corpus score, as "
                                        "`capeval score` reports it (x100); human = mean rating")
    if result.verdicts is not None and len(result.verdicts):
        v = result.verdicts.sort_values("agree", kind="stable")  # disagreements first
        report.add_heading("Pairs of systems: does the metric prefer the system people prefer?", 3)
        n_no = int((~v["agree"]).sum())
        report.add_text(f"{n_no} of {len(v)} metric x pair verdicts disagree with people; they come first.")
        report.add_list(list(v["verdict"]))

        def scaled(m: str) -> float:
            return 100.0 if m.startswith(REPORTED_X100) else 1.0

        table = pd.DataFrame({
            "X": v["system_x"], "Y": v["system_y"], "metric": v["metric"].map(display_name),
            "metric X-Y [95% CI]": [f"{d * scaled(m):+.1f} [{lo * scaled(m):+.1f}, {hi * scaled(m):+.1f}]"
                                    for d, lo, hi, m in zip(v["metric_delta"], v["metric_ci_low"],
                                                            v["metric_ci_high"], v["metric"])],
            "metric p": v["metric_p"].map(lambda p: format_p(float(p))),
            "human X-Y [95% CI]": [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi in
                                   zip(v["human_delta"], v["human_ci_low"], v["human_ci_high"])],
            "human p": v["human_p"].map(lambda p: format_p(float(p))),
            "agree": v["agree"].map(lambda a: "yes" if a else "NO"), "images": v["n_images"]})
        report.add_table(table, caption="Disagreement table: delta = X - Y (metric: corpus scores x100; human: mean "
                                        "ratings); CIs from the image bootstrap; p: two-sided paired permutation "
                                        "test over shared images (swap the two systems' captions per image)")
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
                      level: str = "auto", bootstrap: int = 1000, seed: int = 0, leave_one_out: bool = False,
                      compare_metrics: int = 0, criterion: str | None = None, unit: str = "auto",
                      system_tests: int = 10000, title: str = "capeval meta-evaluation report",
                      progress: Callable[[str], None] | None = None) -> ReportPaths:
    """Run `correlate` for each judgments set and write one HTML report (+ Markdown twin) to `out_dir`: for each
    set the story first (system verdicts, disagreeing captions, plots), then the tables. level='auto': 'system'
    for judgments of 2+ systems, else 'caption'."""
    from capeval.meta.correlate import DEFAULT_METRICS, correlate
    from capeval.meta.judgments import resolve_judgments

    report = Report(title, subtitle="How far each automatic metric agrees with human judgments.")
    results = []
    for h in human:
        lvl = level
        spec: Any = h
        if level == "auto":
            spec = resolve_judgments(h, criterion=criterion)
            lvl = "system" if len(spec.systems) >= 2 else "caption"
        if progress:
            progress(f"{getattr(spec, 'name', h)}: correlating ({lvl} level)")
        r = correlate(spec, refs=refs, candidates=candidates, metrics=metrics or DEFAULT_METRICS, level=lvl,
                      bootstrap=bootstrap, seed=seed, leave_one_out=leave_one_out, compare_metrics=compare_metrics,
                      criterion=criterion if not hasattr(spec, "frame") else None, unit=unit,
                      system_tests=system_tests, progress=progress)
        results.append(r)
        if progress:
            progress(f"{r.judgments}: plotting")
        add_correlation_section(report, r)
    html_path, md_path = report.write(out_dir)
    return ReportPaths(html_path, md_path, results)
