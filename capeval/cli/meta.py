"""`capeval correlate` and `capeval report`: how far each metric agrees with human judgments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

HumanOpt = Annotated[list[str], typer.Option(
    "--human", help="Judgments: a judgments-format file (CSV/TSV/JSONL: image_id, caption_id or system, caption, "
                    "rating, rater, scale) or a registered set: flickr8k-expert, flickr8k-crowdflower.")]
RefsOpt = Annotated[Optional[str], typer.Option(
    "--refs", help="References (caption file or dataset name); default: the set's own (Flickr8k captions).")]
CandsOpt = Annotated[Optional[list[str]], typer.Option(
    "--candidates", help="Candidate caption file(s) to look up judged caption ids / systems (repeatable).")]
MetricsOpt = Annotated[str, typer.Option("--metrics", help="Comma-separated metrics.")]
LevelOpt = Annotated[str, typer.Option("--level", help="caption (flat), image (ranked within each image, averaged) "
                                                       "or system.")]
BootOpt = Annotated[int, typer.Option("--bootstrap", help="Image-bootstrap resamples for the 95% CIs (0: none).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap / permutation draws.")]
LooOpt = Annotated[bool, typer.Option("--leave-one-out", help="Score a judged reference against the other "
                                                              "references of its image (references as a 'system').")]
CompareOpt = Annotated[int, typer.Option("--compare", help="PERM-BOTH permutations to test each metric against the "
                                                           "best one (0: only the bootstrap CI of the difference).")]
CriterionOpt = Annotated[Optional[str], typer.Option(
    "--criterion", help="Which rated criterion to use when the judgments hold several (annotation app exports).")]
ScaleOpt = Annotated[Optional[str], typer.Option("--scale", help="Expected rating scale, e.g. 1-4 (checked).")]
DropNanOpt = Annotated[bool, typer.Option("--drop-nan", help="Drop rows with an empty/NaN rating (with a warning) "
                                                             "instead of stopping.")]
DEFAULT_METRICS = "bleu1,bleu4,rouge,meteor,cider,spice,bertscore"


def _progress(console: object) -> object:
    def show(msg: str) -> None:
        console.print(f"[dim]… {msg}[/]", highlight=False)  # type: ignore[attr-defined]

    return show


def _print_result(console: object, result: object) -> None:
    from rich.table import Table

    from capeval.meta.correlate import display_name
    from capeval.meta.stats import format_p

    r = result
    wide = r.wide()  # type: ignore[attr-defined]
    title = (f"{r.judgments}: correlation with people x100, {r.level} level, N={r.n_rows:,} rows / "  # type: ignore[attr-defined]
             f"{r.n_images:,} images, 95% CI from {r.n_resamples} image resamples")  # type: ignore[attr-defined]
    table = Table(title=title)
    table.add_column("metric")
    for c in wide.columns:
        table.add_column(c, justify="right")
    for name, row in wide.iterrows():
        table.add_row(str(name), *[str(v) for v in row])
    console.print(table)  # type: ignore[attr-defined]
    if r.verdicts is not None and len(r.verdicts):  # type: ignore[attr-defined]
        for s in r.verdicts["verdict"]:  # type: ignore[attr-defined]
            console.print(f"• {s}", highlight=False)  # type: ignore[attr-defined]
    if r.metric_tests is not None and len(r.metric_tests):  # type: ignore[attr-defined]
        for _, t in r.metric_tests.iterrows():  # type: ignore[attr-defined]
            parts = [f"{display_name(t['metric_a'])} vs {display_name(t['metric_b'])}"]
            if "delta" in t and t["delta"] == t["delta"]:
                parts.append(f"Δ{t['statistic']} {t['delta'] * 100:+.1f} [{t['delta_ci_low'] * 100:+.1f}, "
                             f"{t['delta_ci_high'] * 100:+.1f}]")
            if "p_perm" in t and t["p_perm"] == t["p_perm"]:
                parts.append(f"PERM-BOTH {format_p(float(t['p_perm']))}")
            if "p_williams" in t and t["p_williams"] == t["p_williams"]:
                parts.append(f"Williams {format_p(float(t['p_williams']))}")
            console.print("  " + "; ".join(parts), highlight=False)  # type: ignore[attr-defined]
    for m, why in r.unavailable.items():  # type: ignore[attr-defined]
        console.print(f"[yellow]{display_name(m)} not computed:[/] {why}", highlight=False)  # type: ignore[attr-defined]
    for w in r.warnings:  # type: ignore[attr-defined]
        if "unavailable" not in w:
            console.print(f"[yellow]warning:[/] {w}", highlight=False)  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    @app.command("correlate")
    def correlate_cmd(human: HumanOpt, refs: RefsOpt = None, candidates: CandsOpt = None,
                      metrics: MetricsOpt = DEFAULT_METRICS, level: LevelOpt = "caption", bootstrap: BootOpt = 1000,
                      seed: SeedOpt = 0, leave_one_out: LooOpt = False, compare: CompareOpt = 0,
                      criterion: CriterionOpt = None, scale: ScaleOpt = None, drop_nan: DropNanOpt = False,
                      stats: Annotated[Optional[str], typer.Option(
                          "--stats", help="Statistics: tau_c,tau_b,tau_23,acc_23,pairwise_acc,spearman,pearson "
                                          "(default: the set's own first, then tau_b/acc_23/spearman/pearson)."
                      )] = None,
                      out: Annotated[Optional[Path], typer.Option(
                          "--out", help="Write the results: .json (everything) or .csv (table).")] = None) -> None:
        """Score judged captions with capeval's metrics and correlate them with human ratings (with 95% CIs)."""
        import warnings

        from rich.console import Console

        from capeval.meta.correlate import correlate

        console = Console()
        for h in human:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # surfaced in the result's warnings instead
                result = correlate(h, refs=refs, candidates=candidates or None,
                                   metrics=[m.strip() for m in metrics.split(",") if m.strip()], level=level,
                                   statistics=[s.strip() for s in stats.split(",")] if stats else None,
                                   bootstrap=bootstrap, seed=seed, leave_one_out=leave_one_out,
                                   compare_metrics=compare, criterion=criterion, scale=scale,
                                   on_nan="drop" if drop_nan else "error",
                                   progress=_progress(console))  # type: ignore[arg-type]
            _print_result(console, result)
            if out is not None:
                target = out if len(human) == 1 else out.with_name(f"{out.stem}.{result.judgments}{out.suffix}")
                console.print(f"wrote {result.write(target)}", highlight=False)

    @app.command("report")
    def report_cmd(human: HumanOpt, out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("report"),
                   refs: RefsOpt = None, candidates: CandsOpt = None, metrics: MetricsOpt = DEFAULT_METRICS,
                   level: LevelOpt = "caption", bootstrap: BootOpt = 1000, seed: SeedOpt = 0,
                   leave_one_out: LooOpt = False, compare: CompareOpt = 0,
                   criterion: CriterionOpt = None) -> None:
        """Write a self-contained HTML report (plots embedded, no network) and a Markdown twin."""
        import warnings

        from rich.console import Console

        from capeval.report.meta import write_meta_report

        console = Console()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            paths = write_meta_report(human, out, refs=refs, candidates=candidates or None,
                                      metrics=[m.strip() for m in metrics.split(",") if m.strip()], level=level,
                                      bootstrap=bootstrap, seed=seed, leave_one_out=leave_one_out,
                                      compare_metrics=compare, criterion=criterion,
                                      progress=_progress(console))  # type: ignore[arg-type]
        for r in paths.results:
            _print_result(console, r)
        console.print(f"report: {paths.html}\nmarkdown: {paths.markdown}", highlight=False)
