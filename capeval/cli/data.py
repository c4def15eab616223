"""`capeval data`: list, fetch and describe the registered datasets, and inspect a caption file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

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
    def list_cmd(cache_dir: CacheOpt = None) -> None:
        """List registered datasets with size, licence and whether they are cached."""
        from rich.console import Console
        from rich.table import Table

        from capeval.datasets import list_datasets

        table = Table(title="capeval datasets")
        for col in ("name", "files", "size", "licence", "cached"):
            table.add_column(col, justify="right" if col in ("files", "size") else "left")
        for row in list_datasets(cache_dir):
            table.add_row(row.name, str(row.files), _size(row.size), row.licence, row.cached)
        Console().print(table)

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
    def inspect_cmd(path: Annotated[str, typer.Argument(help="Caption file or dataset name.")],
                    format: Annotated[Optional[str], typer.Option("--format", help="Force a format.")] = None,
                    split: Annotated[Optional[str], typer.Option("--split", help="Karpathy split filter.")] = None,
                    allow_empty: Annotated[bool, typer.Option("--allow-empty",
                                                              help="Read empty captions.")] = False) -> None:
        """Read a caption file (format detected or forced) and show its format, counts and first captions."""
        from rich.console import Console
        from rich.table import Table

        from capeval.datasets import load

        caps = load(path, format=format, split=split, allow_empty=allow_empty)
        console = Console()
        console.print(f"{caps.path}: format {caps.format}, {len(caps)} captions, {len(caps.image_ids())} images",
                      highlight=False)
        table = Table()
        for col in ("caption_id", "image_id", "text"):
            table.add_column(col, overflow="fold")
        for c in caps.captions[:5]:
            table.add_row(c.caption_id, c.image_id, repr(c.text))
        console.print(table)
