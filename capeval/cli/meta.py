"""`capeval correlate` and `capeval report`: how far each metric agrees with human judgments."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from capeval.cli.output import FormatOpt, OutputFormat

HumanOpt = Annotated[list[str], typer.Option(
    "--human", help="Judgments: a judgments-format file (CSV/TSV/JSONL: image_id, caption_id or system, caption, "
                    "rating, rater, scale), an {imgid, mt, refs, score} JSON list, a Composite *_correctness.csv, "
                    "or a registered set: thumb, flickr8k-expert, flickr8k-crowdflower, nebula, polaris, composite.")]
RefsOpt = Annotated[Optional[str], typer.Option(
    "--refs", help="References (caption file or dataset name); default: the set's own (Flickr8k, THumB, ...).")]
CandsOpt = Annotated[Optional[list[str]], typer.Option(
    "--candidates", help="Candidate caption file(s) to look up judged caption ids / systems (repeatable).")]
MetricsOpt = Annotated[str, typer.Option("--metrics", help="Comma-separated metrics (meteor, spice, bertscore "
                                                           "also work; they need Java / a model).")]
LevelOpt = Annotated[str, typer.Option("--level", help="caption (flat), image (ranked within each image, averaged) "
                                                       "or system (per-system scores, CIs, pair table).")]
UnitOpt = Annotated[str, typer.Option("--unit", help="Scoring unit: per-system (each system as its own evaluation, "
                                                     "capeval score's numbers), pooled (one corpus of all judged "
                                                     "captions: CLIPScore's protocol) or auto (the set's published "
                                                     "unit, else per-system when rows name systems).")]
BootOpt = Annotated[int, typer.Option("--bootstrap", help="Image-bootstrap resamples for the 95% CIs (0: none).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap / permutation draws.")]
LooOpt = Annotated[bool, typer.Option("--leave-one-out", help="Score a judged reference against the other "
                                                              "references of its image (references as a 'system').")]
CompareOpt = Annotated[int, typer.Option("--compare", help="PERM-BOTH permutations to test each metric against the "
                                                           "best one (0: only the bootstrap CI of the difference).")]
TestsOpt = Annotated[int, typer.Option("--system-tests", help="Paired permutations per pair of systems (p-values).")]
CriterionOpt = Annotated[Optional[str], typer.Option(
    "--criterion", help="Which rated criterion to use when the judgments hold several (annotation app exports: "
                        "precision, recall, ...; THumB: human_score, P, R, Fl, Inc, Con).")]
ScaleOpt = Annotated[Optional[str], typer.Option("--scale", help="Expected rating scale, e.g. 1-4 (checked).")]
DropNanOpt = Annotated[bool, typer.Option("--drop-nan", help="Drop rows with an empty/NaN rating (with a warning) "
                                                             "instead of stopping.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


#: = capeval.meta.correlate.DEFAULT_METRICS (fast: native metrics, no Java, no model); kept literal for a quick --help
DEFAULT_METRICS = "bleu1,bleu4,rouge,cider"


@contextmanager
def progress_display(enabled: bool = True) -> Iterator[Any]:
    """A step display on stderr: a spinner with the current step and the elapsed time on a terminal, one line per
    step otherwise. Yields `say(message)`."""
    from rich.console import Console

    err = Console(stderr=True)
    t0 = time.perf_counter()
    if not enabled:
        yield lambda _msg: None
        return
    if err.is_terminal:
        with err.status("starting", spinner="dots") as status:
            yield lambda msg: status.update(f"[{time.perf_counter() - t0:5.1f}s] {msg}")
        err.print(f"[dim]done in {time.perf_counter() - t0:.1f}s[/]", highlight=False)
    else:
        yield lambda msg: err.print(f"[{time.perf_counter() - t0:5.1f}s] {msg}", highlight=False, markup=False)


def _pct(v: float) -> str:
    return "" if v != v else f"{v * 100:.1f}"


def print_result(result: Any, fmt: OutputFormat = OutputFormat.table, console: Any = None) -> None:
    """The story first (system level), then the correlation tables, the pair table and the notes."""
    from capeval.cli.output import emit, notes_console
    from capeval.meta.correlate import display_name
    from capeval.meta.stats import format_p
    from capeval.metrics.registry import REPORTED_X100
    from capeval.report.story import tell

    r = result
    notes = console or notes_console(fmt)
    out_console = console
    story = tell(r, r.judgments)
    for s in story.headline + story.details:
        notes.print(f"• {s}", highlight=False, markup=False, soft_wrap=True)
    lvl = "image" if r.level == "image" else "caption"
    title = (f"{r.judgments}: correlation with people x100, {lvl} level, N={r.n_rows:,} rows / {r.n_images:,} images, "
             f"unit {r.unit}; 95% CI from {r.n_resamples} image resamples")
    emit(r.wide(level=lvl).rename_axis("metric").reset_index(), fmt, title=title, console=out_console)
    if r.level == "system" and r.systems is not None:
        emit(r.wide(level="system").rename_axis("metric").reset_index(), fmt, console=out_console,
             title=f"system level ({len(r.systems)} systems): correlation over systems x100, 95% CI from "
                   f"{r.n_resamples} image resamples recomputing every system's corpus score")
        s = r.systems
        cols = {"system": s["system"], "n_images": s["n_images"],
                "human [95% CI]": [f"{h:.3f} [{lo:.3f}, {hi:.3f}]" for h, lo, hi in
                                   zip(s["human"], s["human_ci_low"], s["human_ci_high"])]}
        for m in r.metrics:
            if m in s:
                k = 100.0 if m.startswith(REPORTED_X100) else 1.0
                cols[f"{display_name(m)} [95% CI]"] = [f"{v * k:.1f} [{lo * k:.1f}, {hi * k:.1f}]" for v, lo, hi in
                                                       zip(s[m], s[f"{m}_ci_low"], s[f"{m}_ci_high"])]
        import pandas as pd

        emit(pd.DataFrame(cols), fmt, console=out_console,
             title="per-system scores: metric = the system's corpus score (x100), human = mean rating")
        v = r.verdicts
        if v is not None and len(v):
            table = pd.DataFrame({"metric": v["metric"].map(display_name), "X": v["system_x"], "Y": v["system_y"],
                                  "metric X-Y": [f"{d * (100 if m.startswith(REPORTED_X100) else 1):+.1f}"
                                                 for d, m in zip(v["metric_delta"], v["metric"])],
                                  "metric p": v["metric_p"].map(format_p),
                                  "human X-Y": v["human_delta"].map(lambda d: f"{d:+.3f}"),
                                  "human p": v["human_p"].map(format_p),
                                  "agree": v["agree"].map(lambda a: "yes" if a else "NO")})
            emit(table, fmt, console=out_console,
                 title="pairs of systems: metric and human deltas (X - Y) with paired permutation p-values; "
                       "CIs in --out and the report")
    if r.metric_tests is not None and len(r.metric_tests):
        for _, t in r.metric_tests.iterrows():
            parts = [f"{display_name(t['metric_a'])} vs {display_name(t['metric_b'])}"]
            if "delta" in t and t["delta"] == t["delta"]:
                parts.append(f"difference of {t['statistic']} x100 {t['delta'] * 100:+.1f} (95% bootstrap CI "
                             f"[{t['delta_ci_low'] * 100:+.1f}, {t['delta_ci_high'] * 100:+.1f}])")
            if "p_perm" in t and t["p_perm"] == t["p_perm"]:
                parts.append(f"PERM-BOTH on {t['statistic']}: {format_p(float(t['p_perm']))}")
            if "p_williams" in t and t["p_williams"] == t["p_williams"]:
                parts.append(f"separately, Williams test on Pearson r ({_pct(t['pearson_a'])} vs "
                             f"{_pct(t['pearson_b'])}; a different statistic): {format_p(float(t['p_williams']))}")
            notes.print("  " + "; ".join(parts), highlight=False, markup=False, soft_wrap=True)
    for m, why in r.unavailable.items():
        notes.print(f"{display_name(m)} not computed: {why}", style="yellow", highlight=False, markup=False,
                    soft_wrap=True)
    for w in r.warnings:
        if "unavailable" not in w:
            notes.print(f"warning: {w}", style="yellow", highlight=False, markup=False, soft_wrap=True)
    for m, sig in r.signatures.items():
        notes.print(f"{display_name(m)}: {sig}", highlight=False, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("correlate")
    def correlate_cmd(human: HumanOpt, refs: RefsOpt = None, candidates: CandsOpt = None,
                      metrics: MetricsOpt = DEFAULT_METRICS, level: LevelOpt = "caption", unit: UnitOpt = "auto",
                      bootstrap: BootOpt = 1000, seed: SeedOpt = 0, leave_one_out: LooOpt = False,
                      compare: CompareOpt = 0, system_tests: TestsOpt = 10000, criterion: CriterionOpt = None,
                      scale: ScaleOpt = None, drop_nan: DropNanOpt = False,
                      stats: Annotated[Optional[str], typer.Option(
                          "--stats", help="Statistics: tau_c,tau_b,tau_23,acc_23,pairwise_acc,spearman,pearson "
                                          "(default: the set's own first, then tau_b/acc_23/spearman/pearson)."
                      )] = None,
                      out: Annotated[Optional[Path], typer.Option(
                          "--out", help="Write the results: .json (everything) or .csv (table).")] = None,
                      format: FormatOpt = OutputFormat.table, quiet: QuietOpt = False) -> None:
        """Score judged captions with capeval's metrics and correlate them with human ratings (with 95% CIs)."""
        import warnings

        from capeval.cli.output import check_output_path, notes_console
        from capeval.meta.correlate import correlate

        check_output_path(out, suffixes=(".json", ".csv", ".tsv"))
        for h in human:
            with warnings.catch_warnings(), progress_display(not quiet) as say:
                warnings.simplefilter("ignore")  # surfaced in the result's warnings instead
                result = correlate(h, refs=refs, candidates=candidates or None,
                                   metrics=[m.strip() for m in metrics.split(",") if m.strip()], level=level,
                                   statistics=[s.strip() for s in stats.split(",")] if stats else None,
                                   bootstrap=bootstrap, seed=seed, leave_one_out=leave_one_out,
                                   compare_metrics=compare, system_tests=system_tests, criterion=criterion,
                                   scale=scale, on_nan="drop" if drop_nan else "error", unit=unit, progress=say)
            print_result(result, format)
            if out is not None:
                target = out if len(human) == 1 else out.with_name(f"{out.stem}.{result.judgments}{out.suffix}")
                notes_console(format).print(f"wrote {result.write(target)}", highlight=False, markup=False)

    @app.command("report")
    def report_cmd(human: HumanOpt, out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("report"),
                   refs: RefsOpt = None, candidates: CandsOpt = None, metrics: MetricsOpt = DEFAULT_METRICS,
                   level: LevelOpt = "auto", unit: UnitOpt = "auto", bootstrap: BootOpt = 1000, seed: SeedOpt = 0,
                   leave_one_out: LooOpt = False, compare: CompareOpt = 0, system_tests: TestsOpt = 10000,
                   criterion: CriterionOpt = None, quiet: QuietOpt = False) -> None:
        """Write a self-contained HTML report (story first, plots embedded, no network) and a Markdown twin.
        --level auto: system level for judgments of several systems (THumB, annotation exports), else caption."""
        import warnings

        from rich.console import Console

        from capeval.cli.output import check_output_path
        from capeval.report.meta import write_meta_report

        check_output_path(out, kind="dir")
        with warnings.catch_warnings(), progress_display(not quiet) as say:
            warnings.simplefilter("ignore")
            paths = write_meta_report(human, out, refs=refs, candidates=candidates or None,
                                      metrics=[m.strip() for m in metrics.split(",") if m.strip()], level=level,
                                      bootstrap=bootstrap, seed=seed, leave_one_out=leave_one_out,
                                      compare_metrics=compare, criterion=criterion, unit=unit,
                                      system_tests=system_tests, progress=say)
        console = Console()
        for r in paths.results:
            print_result(r, OutputFormat.table, console)
        console.print(f"report: {paths.html}\nmarkdown: {paths.markdown}", highlight=False, markup=False)
