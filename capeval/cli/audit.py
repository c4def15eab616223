"""`capeval audit-references`: find typos, real-word errors, grammar slips and thin or off-consensus captions."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from capeval.audit.finding import DEFAULT_MIN_CONFIDENCE


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
                                                      "than this (0..1).")] = DEFAULT_MIN_CONFIDENCE,
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

        from capeval.audit.run import audit_references
        from capeval.cli.output import check_output_path, emit

        check_output_path(out, kind="dir")  # before any work: --out must be a folder (existing or to be created)
        if engine is not None or ray_address is not None:
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
        pct = (lambda v: f"{v * 100:.2f}")
        for result, folder in zip(run.results, run.out_dirs):
            s = result.summary().rename(columns={"caption_rate": "% captions", "image_rate": "% images"})
            emit(s, console=console, title=f"{result.name}: {len(result.captions)} captions, "
                 f"{len(result.captions.by_image())} images -> {folder}",
                 formatters={"% captions": pct, "% images": pct})
            for note in result.notes:
                console.print(f"[yellow]note:[/] {note}", highlight=False)
        if run.comparison is not None:
            comp = run.comparison.reset_index()
            emit(comp, console=console, title="% of captions with a finding, per input",
                 formatters={c: (lambda v: f"{v:.2f}") for c in comp.columns if c != "category"})
        if run.impact is not None:
            imp = run.impact
            short = {"bleu4": "B4", "cider": "C", "rank": "rank", "rank_change": "Δrank"}
            names = {}
            for c in imp.columns:
                head, _, variant = c.rpartition("_")
                names[c] = c if c == "system" else f"{short.get(head, head)} {variant}"
            shown = imp.rename(columns=names)
            x100 = [names[c] for c in imp.columns if c.startswith(("bleu4_", "cider_"))]
            emit(shown, console=console, title="metric impact: BLEU-4 / CIDEr-D x100 with all references, with the "
                 "language errors removed (kept) and with confident corrections (fixed); rank by CIDEr-D",
                 formatters={c: (lambda v: f"{v * 100:.2f}") for c in x100})
