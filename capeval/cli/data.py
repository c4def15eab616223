"""`capeval data`: list, fetch and describe the registered datasets, and inspect a caption file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from capeval.cli.output import FormatOpt, OutputFormat

MirrorOpt = Annotated[Optional[str], typer.Option("--mirror", help="Folder or http(s)/file URL laid out like "
                                                  "shared/datasets (default: $CAPEVAL_DATA_MIRROR).")]
CacheOpt = Annotated[Optional[Path], typer.Option("--cache-dir", help="Cache folder (default: "
                                                  "$CAPEVAL_HOME/datasets or ~/.cache/capeval/datasets).")]


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Datasets: list the registry, fetch files (mirror or original URL), inspect caption files.",
                       no_args_is_help=True)
    app.add_typer(data, name="data")

    @data.command("list")
    def list_cmd(cache_dir: CacheOpt = None, format: FormatOpt = OutputFormat.table) -> None:
        """List registered datasets with size, licence and whether they are cached."""
        from capeval.cli.output import emit
        from capeval.datasets import list_datasets

        rows = [{"name": r.name, "files": r.files, "size": r.size, "licence": r.licence, "cached": r.cached}
                for r in list_datasets(cache_dir)]
        emit(rows, format, title="capeval datasets", formatters={"size": _size})

    @data.command("get")
    def get_cmd(name: Annotated[str, typer.Argument(help="Dataset name (see `capeval data list`).")],
                mirror: MirrorOpt = None, cache_dir: CacheOpt = None,
                force: Annotated[bool, typer.Option("--force", help="Fetch again even if cached.")] = False) -> None:
        """Fetch a dataset into the cache (checksum verified) and print where it is."""
        from capeval.datasets import get

        typer.echo(str(get(name, mirror=mirror, cache_dir=cache_dir, force=force)))

    @data.command("info")
    def info_cmd(name: Annotated[str, typer.Argument(help="Dataset name.")]) -> None:
        """Show a dataset's description, files, original URLs, sha256, licence and citation."""
        from rich.console import Console

        from capeval.datasets import lookup

        ds = lookup(name)
        console = Console()
        console.print(f"[bold]{ds.name}[/]: {ds.description}", highlight=False)
        console.print(f"format: {ds.format or '-'}    licence: {ds.licence}", highlight=False)
        console.print(f"cite: {ds.citation}", highlight=False)
        for f in ds.files:
            checksum = f"sha256 {f.sha256}" if f.sha256 else f"sha1 {f.sha1}" if f.sha1 else "no checksum recorded"
            console.print(f"\n[bold]{f.path}[/]  {_size(f.size)}", highlight=False)
            console.print(f"  {checksum}", highlight=False, soft_wrap=True)
            for url in f.urls:
                console.print(f"  url {url}", highlight=False, soft_wrap=True)
            if f.source:
                console.print(f"  from {f.source}", highlight=False, soft_wrap=True)
            if f.extract:
                console.print(f"  extracts {', '.join(f.extract)}", highlight=False, soft_wrap=True)

    @data.command("inspect")
    def inspect_cmd(path: Annotated[str, typer.Argument(help="Caption file, URL or dataset name.")],
                    input_format: Annotated[Optional[str], typer.Option("--input-format",
                                                                        help="Force the file's format.")] = None,
                    split: Annotated[Optional[str], typer.Option("--split", help="Karpathy split filter.")] = None,
                    allow_empty: Annotated[bool, typer.Option("--allow-empty",
                                                              help="Read empty captions.")] = False,
                    limit: Annotated[int, typer.Option("--limit", min=0, help="How many captions to show.")] = 5,
                    format: FormatOpt = OutputFormat.table) -> None:
        """Read a caption file (format detected or forced) and show its format, counts and first captions."""
        from capeval.cli.output import emit, notes_console
        from capeval.io import load

        caps = load(path, format=input_format, split=split, allow_empty=allow_empty)
        notes_console(format).print(f"{caps.path}: format {caps.format}, {len(caps)} captions, "
                                    f"{len(caps.image_ids())} images", highlight=False, markup=False,
                                    soft_wrap=True)
        rows = [{"caption_id": c.caption_id, "image_id": c.image_id, "text": c.text} for c in caps.captions[:limit]]
        machine = format in (OutputFormat.csv, OutputFormat.json)
        # repr() in tables shows stray whitespace and control characters; captions are never read as rich markup
        emit(rows, format, columns=["caption_id", "image_id", "text"],
             formatters=None if machine else {"text": repr})
