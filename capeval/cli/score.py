"""`capeval score`: corpus-level table of systems x metrics, signatures, and per-caption scores to a file."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from capeval.cli.output import FormatOpt, OutputFormat

SCORE_SUFFIXES = (".parquet", ".csv", ".json", ".jsonl")


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score_cmd(
        candidates: Annotated[list[str], typer.Argument(help="Candidate caption files, dataset names or URLs; "
                                                         "system name = file name without its caption extension "
                                                         "(dataset names kept whole).")],
        refs: Annotated[str, typer.Option("--refs", help="Reference captions: a file, URL or dataset name "
                                          "(e.g. coco-karpathy-test).")],
        metrics: Annotated[str, typer.Option("--metrics", help="Comma-separated: bleu (bleu1..bleu4), cider "
                                             "(CIDEr-D), rouge (ROUGE-L), meteor, spice, sacrebleu, bertscore; "
                                             "aliases bleu4, cider-d, rouge-l.")] = "bleu,cider,rouge",
        format: FormatOpt = OutputFormat.table,
        input_format: Annotated[Optional[str], typer.Option("--input-format", help="Force the candidate files' "
                                                            "format (default: detected).")] = None,
        out: Annotated[Optional[str], typer.Option("--out", help="Write per-caption scores (one row per system x "
                                                   "image): .parquet, .csv, .json or .jsonl.")] = None,
        exclude_captions: Annotated[Optional[str], typer.Option(
            "--exclude-captions", help="Reference caption ids to drop first: text (one per line), JSON list, or "
            "JSONL such as the audit's findings.jsonl (only its language errors: spelling, real_word, grammar, "
            "truncated, non_caption; see --exclude-categories). An image left without references is an error.")] = None,
        exclude_categories: Annotated[Optional[str], typer.Option(
            "--exclude-categories", help="With an audit findings.jsonl: the finding categories whose captions to "
            "drop, comma-separated, or 'all' (default: the language errors).")] = None,
        cider_idf: Annotated[Optional[str], typer.Option("--cider-idf", help="CIDEr-D document frequencies from a "
                                                         "fixed corpus (JSON from build_cider_idf).")] = None,
        allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Read empty captions (candidates and "
                                                  "references) instead of stopping; an empty candidate scores as "
                                                  "the empty string.")] = False,
        bertscore_model: Annotated[Optional[str], typer.Option("--bertscore-model", help="Local model folder for "
                                                               "BERTScore.")] = None,
        bertscore_layers: Annotated[Optional[int], typer.Option("--bertscore-layers", help="Layer of the BERTScore "
                                                                "model (needed for models bert-score does not know).")] = None,
        spice_lib: Annotated[Optional[str], typer.Option("--spice-lib", help="Folder with the Stanford CoreNLP 3.6.0 "
                                                         "jars for SPICE (default $CAPEVAL_SPICE_LIB).")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
        engine: Annotated[Optional[str], typer.Option("--engine", help="local or ray: BLEU/CIDEr-D/ROUGE-L over image "
                                                      "shards streamed from the files (memory bounded; ray runs them "
                                                      "on a Ray cluster). Same numbers as without it.")] = None,
        ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --engine ray: an existing "
                                                           "cluster ('auto', ray://host:10001); default a local "
                                                           "Ray.")] = None,
    ) -> None:
        """Score caption systems against references (exact pycocoevalcap BLEU/CIDEr-D/ROUGE-L, no Java needed)."""
        from capeval.cli.output import check_output_path, emit, notes_console
        from capeval.metrics.engine import score_files
        from capeval.metrics.registry import REPORTED_X100, parse_metric_names

        parse_metric_names(metrics)  # an unknown metric is reported before anything is read
        check_output_path(out, suffixes=SCORE_SUFFIXES)
        if engine is not None or ray_address is not None:
            from capeval.engines.score import score_files_engine

            report = score_files_engine(refs, candidates, metrics, engine=engine, ray_address=ray_address,
                                        format=input_format, exclude_captions=exclude_captions, cider_idf=cider_idf,
                                        out=out, allow_empty=allow_empty, exclude_categories=exclude_categories)
        else:
            report = score_files(refs, candidates, metrics, format=input_format, exclude_captions=exclude_captions,
                                 exclude_categories=exclude_categories,
                                 cider_idf=cider_idf, bertscore_model=bertscore_model, out=out, progress=not quiet,
                                 bertscore_layers=bertscore_layers, spice_lib=spice_lib, allow_empty=allow_empty)
        notes = notes_console(format)
        x100 = [s for s in report.score_names if s.startswith(REPORTED_X100)]
        note = f" (x100: {', '.join(x100)}, as captioning papers report them)" if x100 else ""
        machine = format in (OutputFormat.csv, OutputFormat.json)
        emit(report.corpus, format, title=f"corpus scores{note}" if not machine else None,
             formatters={s: (lambda v: f"{v * 100:.1f}") if s in x100 else (lambda v: f"{v:.4f}")
                         for s in report.score_names})
        for s, sig in report.signatures.items():
            notes.print(f"{s}: {sig}", highlight=False, markup=False, soft_wrap=True)
        for m, reason in report.unavailable.items():
            notes.print(f"{m}: unavailable: {reason}", style="yellow", highlight=False, markup=False,
                        soft_wrap=True)
        if out:
            notes.print(f"per-caption scores: {out} ({len(report.per_caption)} rows)", highlight=False,
                        markup=False, soft_wrap=True)
