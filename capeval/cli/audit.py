"""`capeval audit-references`: find typos, real-word errors, grammar slips and thin or off-consensus captions."""

from __future__ import annotations

from typing import Annotated, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("audit-references")
    def audit_cmd(
        refs: Annotated[list[str], typer.Argument(help="Caption files to audit (references or system outputs); "
                                                  "any format capeval reads. Never modified.")],
        out: Annotated[str, typer.Option("--out", help="Output folder (one subfolder per input when several).")],
        format: Annotated[Optional[str], typer.Option("--format", help="Force the input format "
                                                      "(default: detected).")] = None,
        grammar_backend: Annotated[str, typer.Option("--grammar-backend", help="builtin (offline default) or "
                                                     "languagetool.")] = "builtin",
        lt_url: Annotated[Optional[str], typer.Option("--lt-url", help="LanguageTool server URL (else "
                                                      "$CAPEVAL_LT_URL, else a local LanguageTool).")] = None,
        min_confidence: Annotated[float, typer.Option("--min-confidence", help="Drop findings less confident "
                                                      "than this (0..1).")] = 0.5,
        compare: Annotated[bool, typer.Option("--compare", help="One table of error rates per category "
                                              "per input.")] = False,
        impact: Annotated[Optional[list[str]], typer.Option("--impact", help="System output files to rescore "
                                                            "against all / kept / fixed references of the first "
                                                            "input (repeatable).")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
        engine: Annotated[Optional[str], typer.Option("--engine", help="local or ray: the inputs are shards of ONE "
                                                      "corpus, audited in two passes over image shards streamed "
                                                      "from the files (memory bounded; ray runs them on a Ray "
                                                      "cluster); writes findings/ and captions/ as Parquet parts, "
                                                      "findings.jsonl, summary.csv/.md. Same findings.")] = None,
        ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --engine ray: an existing "
                                                           "cluster ('auto', ray://host:10001); default a local "
                                                           "Ray.")] = None,
    ) -> None:
        """Audit caption files and write findings.jsonl, captions.csv, summary.md/.html and fixed/kept references."""
        from rich.console import Console
        from rich.table import Table

        from capeval.audit.run import audit_references
        from capeval.cli.output import check_output_path

        check_output_path(out, kind="dir")  # before any work: --out must be a folder (existing or to be created)
        if engine is not None or ray_address is not None:
            from capeval.cli.output import emit
            from capeval.engines.audit import audit_files_engine

            er = audit_files_engine(refs, out, engine=engine, ray_address=ray_address, format=format,
                                    backend=grammar_backend, lt_url=lt_url, min_confidence=min_confidence,
                                    compare=compare, impact=impact or ())
            emit(er.summary, title=f"{er.n_captions} captions, {er.n_images} images, {len(er.shard_captions)} "
                 f"shards on {er.engine} -> {er.out_dir}",
                 formatters={c: (lambda v: f"{v * 100:.2f}") for c in ("caption_rate", "image_rate")})
            return
        run = audit_references(refs, out, format=format, backend=grammar_backend, lt_url=lt_url,
                               min_confidence=min_confidence, compare=compare, impact_systems=impact or (),
                               progress=not quiet)
        console = Console()
        for result, folder in zip(run.results, run.out_dirs):
            s = result.summary()
            table = Table(title=f"{result.name}: {len(result.captions)} captions, "
                                f"{len(result.captions.by_image())} images -> {folder}")
            for col, just in (("category", "left"), ("findings", "right"), ("captions", "right"),
                              ("% captions", "right"), ("images", "right"), ("% images", "right")):
                table.add_column(col, justify=just)  # type: ignore[arg-type]
            for row in s.itertuples(index=False):
                table.add_row(row.category, str(row.findings), str(row.captions), f"{row.caption_rate * 100:.2f}",
                              str(row.images), f"{row.image_rate * 100:.2f}")
            console.print(table)
            for note in result.notes:
                console.print(f"[yellow]note:[/] {note}", highlight=False)
        if run.comparison is not None:
            comp = run.comparison
            table = Table(title="% of captions with a finding, per input")
            table.add_column("category")
            for c in comp.columns:
                table.add_column(str(c), justify="right")
            for cat, row in comp.iterrows():
                fmt = (lambda v: f"{int(v)}") if cat == "captions" else (lambda v: f"{v:.2f}")
                table.add_row(str(cat), *(fmt(v) for v in row))
            console.print(table)
        if run.impact is not None:
            imp = run.impact
            table = Table(title="metric impact: BLEU-4 / CIDEr-D x100 with all, kept (flagged removed) and fixed "
                                "references; rank by CIDEr-D")
            short = {"bleu4": "B4", "cider": "C", "rank": "rank", "rank_change": "Δrank"}
            cols = [c for c in imp.columns if c != "system"]
            table.add_column("system", no_wrap=True)
            for c in cols:
                head, _, variant = c.rpartition("_")
                table.add_column(f"{short.get(head, head)} {variant}", justify="right")
            for row in imp.itertuples(index=False):
                d = row._asdict()
                table.add_row(str(d["system"]), *(f"{d[c] * 100:.2f}" if isinstance(d[c], float) else str(d[c])
                                                  for c in cols))
            console.print(table)
