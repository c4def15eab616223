"""`capeval demo`: the whole story on real data, one command (what `make demo` runs)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        out: Annotated[str, typer.Option("--out", help="Folder for the report, the audit and the tables.")] = "demo-out",
        mirror: Annotated[Optional[str], typer.Option("--mirror", help="Dataset mirror (folder or URL laid out like "
                                                      "shared/datasets); default $CAPEVAL_DATA_MIRROR.")] = None,
        bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples for the CIs.")] = 1000,
    ) -> None:
        """The story on THumB first, then score four real systems, audit the COCO references, meta-evaluate on
        Flickr8k, and write one HTML report."""
        from rich.console import Console
        from rich.table import Table

        from capeval.cli.output import check_output_path
        from capeval.demo import run_demo

        check_output_path(out, kind="dir")  # before any work: --out must be a folder (existing or to be created)
        console = Console(width=None if Console().is_terminal else 160)
        result = run_demo(out, mirror=mirror, bootstrap=bootstrap,
                          say=lambda msg: console.print(f"[bold cyan]>[/] {msg}", highlight=False))

        def show(df, title: str) -> None:  # type: ignore[no-untyped-def]
            table = Table(title=title)
            for col in df.columns:
                table.add_column(str(col), justify="left" if df[col].dtype == object else "right")
            for _, row in df.iterrows():
                table.add_row(*(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
            console.print(table)

        if result.story is not None:
            console.rule("What people say and what the metrics say")
            for line in result.story.headline + result.story.details:
                console.print(f"• {line}", highlight=False, markup=False, soft_wrap=True)
            if result.story.disagreements is not None:
                from capeval.meta.correlate import display_name

                show(result.story.disagreements.drop(columns=["references"]),
                     f"Captions where {display_name(result.story.disagreement_metric or '')} and people disagree "
                     "most (references in the report)")
        show(result.scores, "COCO Karpathy test: corpus scores (x100)")
        for k, v in result.signatures.items():
            console.print(f"{k}: {v}", highlight=False, soft_wrap=True)
        for k, v in result.unavailable.items():
            console.print(f"[yellow]{k}: unavailable: {v}[/]", highlight=False, soft_wrap=True)
        if result.audit_summary is not None:
            summary = result.audit_summary.assign(caption_rate=lambda d: (d.caption_rate * 100).round(2),
                                                  image_rate=lambda d: (d.image_rate * 100).round(2))
            show(summary.rename(columns={"caption_rate": "% captions", "image_rate": "% images"}),
                 "Reference audit: findings per category")
        if result.impact is not None:
            show(result.impact, "Rescoring with audited references (x100; ranks by CIDEr-D)")
        for corr in result.correlations:
            show(corr.wide().rename_axis("metric").reset_index(), f"Agreement with people: {corr.judgments} (x100)")
        for s in result.skipped:
            console.print(f"[yellow]skipped: {s}[/]", highlight=False)
        console.print(f"\nreport: [bold]{result.report_html}[/] (Markdown twin: {result.report_md})", highlight=False)
