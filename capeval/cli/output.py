"""Printing result tables for every command: one `--format` option (table|markdown|csv|json), tables that never
lose a number at any width, and output paths checked before any work starts.

`table` is a rich table on a terminal wide enough for it (names wrap, numbers never do; a few rows of many numbers
are transposed when that fits); on a narrow terminal or
when stdout is not a terminal (piped, redirected) it becomes a plain aligned text table with no width limit, so
`capeval score ... | cat` at 80 columns still shows every figure. `markdown`, `csv` and `json` print the data as
such; with `csv`/`json` everything that is not the data (titles, notes, signatures) should go to stderr — use
`notes_console(fmt)`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from capeval.errors import InputError


class OutputFormat(str, Enum):
    """How a command prints its result table."""

    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


FormatOpt = Annotated[OutputFormat, typer.Option(
    "--format", help="How to print the result table: table (fits the terminal; plain text when piped), "
    "markdown, csv or json (data only on stdout, notes on stderr).", case_sensitive=False)]

Formatter = Callable[[Any], str]


# ------------------------------------------------------------------------------------------ data -> rows


def _rows(data: Any, columns: Sequence[str] | None) -> tuple[list[str], list[list[Any]]]:
    """Column names and raw rows from a DataFrame (a named/non-default index becomes the first column), a list of
    dicts, dataclasses or sequences (then `columns` names them)."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pd = None  # type: ignore[assignment]
    if pd is not None and isinstance(data, pd.DataFrame):
        df = data
        if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
            df = df.reset_index()
        cols = [str(c) for c in df.columns]
        return cols, [list(r) for r in df.itertuples(index=False, name=None)]
    records = list(data)
    if not records:
        return list(columns or []), []
    first = records[0]
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        cols = list(columns or [f.name for f in dataclasses.fields(first)])
        return cols, [[getattr(r, c) for c in cols] for r in records]
    if isinstance(first, Mapping):
        cols = list(columns or dict.fromkeys(k for r in records for k in r))
        return [str(c) for c in cols], [[r.get(c) for c in cols] for r in records]
    if columns is None:
        raise TypeError("emit: rows given as sequences need `columns`")
    return list(columns), [list(r) for r in records]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or type(v).__name__.startswith(("float", "int"))


def _default_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) or type(v).__name__.startswith("float"):
        f = float(v)
        if math.isnan(f):
            return "nan"
        return f"{f:.4f}" if abs(f) < 1e6 else f"{f:.4g}"
    return str(v)


def _cells(cols: list[str], rows: list[list[Any]], formatters: Mapping[str, Formatter] | None) -> list[list[str]]:
    fmts = formatters or {}
    return [[fmts[c](v) if c in fmts and v is not None else _default_text(v) for c, v in zip(cols, r)]
            for r in rows]


def _numeric_columns(cols: list[str], rows: list[list[Any]]) -> set[int]:
    out = set()
    for j in range(len(cols)):
        vals = [r[j] for r in rows if r[j] is not None]
        if vals and all(_is_number(v) for v in vals):
            out.add(j)
    return out


def _json_value(v: Any) -> Any:
    if v is None or isinstance(v, (str, bool)):
        return v
    if _is_number(v):
        f = float(v)
        if math.isnan(f) or math.isinf(f):
            return None
        return int(v) if isinstance(v, int) or type(v).__name__.startswith("int") else f
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _json_value(x) for k, x in v.items()}
    return str(v)


# ------------------------------------------------------------------------------------------ renderers


def render_markdown(cols: list[str], cells: list[list[str]], numeric: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""
    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(esc(c) for c in cols) + " |"
    rule = "|" + "|".join("---:" if j in numeric else "---" for j in range(len(cols))) + "|"
    body = ["| " + " | ".join(esc(c) for c in r) + " |" for r in cells]
    return "\n".join([head, rule, *body])


def render_plain(cols: list[str], cells: list[list[str]], numeric: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    """An aligned plain-text table with no width limit (numbers right-aligned, text left-aligned)."""
    cells = [[c.replace("\n", " ") for c in r] for r in cells]
    widths = [max([len(cols[j])] + [len(r[j]) for r in cells]) for j in range(len(cols))]

    def line(vals: list[str]) -> str:
        parts = [v.rjust(widths[j]) if j in numeric else v.ljust(widths[j]) for j, v in enumerate(vals)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cols), rule, *(line(r) for r in cells)])


def render_csv(cols: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if v is None else (repr(float(v)) if isinstance(v, float) else v) for v in r])
    return buf.getvalue().rstrip("\n")


def render_json(cols: list[str], rows: list[list[Any]]) -> str:
    return json.dumps([{c: _json_value(v) for c, v in zip(cols, r)} for r in rows], ensure_ascii=False, indent=2)


def _rich_table(cols: list[str], cells: list[list[str]], numeric: set[int], title: str | None) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for j, c in enumerate(cols):
        if j in numeric:
            table.add_column(Text(c), justify="right", no_wrap=True)
        else:
            table.add_column(Text(c), overflow="fold")
    for r in cells:
        # Text: square brackets in captions or names are never read as rich markup
        table.add_row(*(Text(v, justify="right" if j in numeric else "left") for j, v in enumerate(r)))
    return table


def _fits(console: Any, cols: list[str], cells: list[list[str]], numeric: set[int]) -> bool:
    """Whether the rich table shows every number whole at this width: numeric columns need their full width,
    text columns at least 8 characters (or their width when smaller) so names stay legible when folded."""
    need = 1  # left border
    for j, c in enumerate(cols):
        widest = max([len(c)] + [len(r[j]) for r in cells])
        if j in numeric:
            need += widest + 3
        else:
            need += min(widest, max(8, min(len(c), 20))) + 3
    return need <= console.width


def emit(data: Any, fmt: OutputFormat | str = OutputFormat.table, *, console: Any = None, title: str | None = None,
         columns: Sequence[str] | None = None, formatters: Mapping[str, Formatter] | None = None) -> None:
    """Print a result table (DataFrame, or list of dicts/dataclasses/sequences) in `fmt`, losing nothing.

    `formatters` maps a column to how its values are shown in table/markdown (csv/json keep the raw values, NaN
    as empty/null). A title goes above a table/Markdown table, and to stderr for csv/json.
    """
    from rich.console import Console

    fmt = OutputFormat(fmt)
    console = console or Console()
    cols, rows = _rows(data, columns)
    if fmt in (OutputFormat.csv, OutputFormat.json):
        if title:
            Console(stderr=True).print(title, highlight=False, markup=False, soft_wrap=True)
        text = render_csv(cols, rows) if fmt is OutputFormat.csv else render_json(cols, rows)
        _write_raw(console, text)
        return
    cells = _cells(cols, rows, formatters)
    numeric = _numeric_columns(cols, rows)
    if fmt is OutputFormat.markdown:
        out = (f"**{title}**\n\n" if title else "") + render_markdown(cols, cells, numeric)
        _write_raw(console, out)
        return
    if console.is_terminal and not console.is_dumb_terminal:
        if _fits(console, cols, cells, numeric):
            console.print(_rich_table(cols, cells, numeric, title))
            return
        # too wide: a few rows of many numbers read better transposed (scores as rows, systems as columns)
        if len(cols) > 2 and cells and 0 not in numeric and numeric == set(range(1, len(cols))):
            t_cols = ["", *(r[0] for r in cells)]
            t_cells = [[cols[j], *(r[j] for r in cells)] for j in range(1, len(cols))]
            t_numeric = set(range(1, len(t_cols)))
            if _fits(console, t_cols, t_cells, t_numeric):
                console.print(_rich_table(t_cols, t_cells, t_numeric, title))
                return
    out = (f"{title}\n" if title else "") + render_plain(cols, cells, numeric)
    _write_raw(console, out)


def _write_raw(console: Any, text: str) -> None:
    """Print text as is: no markup, no highlighting, no wrapping or cropping at the console width."""
    console.print(text, markup=False, highlight=False, soft_wrap=True, crop=False, overflow="ignore", emoji=False)


def notes_console(fmt: OutputFormat | str = OutputFormat.table) -> Any:
    """Where a command prints what is not its result table: stdout for table/markdown, stderr for csv/json (so
    their stdout stays machine-readable)."""
    from rich.console import Console

    return Console(stderr=OutputFormat(fmt) in (OutputFormat.csv, OutputFormat.json))


# ------------------------------------------------------------------------------------------ output paths


def check_output_path(path: str | os.PathLike[str] | None, *, kind: Literal["file", "dir"] = "file",
                      suffixes: Iterable[str] | None = None, what: str = "--out") -> Path | None:
    """Validate an output path before any work starts; returns it as a Path (None passes through).

    kind="file": its folder must exist and the path must not be a folder; `suffixes` (e.g. ('.csv', '.json'))
    restricts the extension. kind="dir": the path must not be an existing file and its parent folder must exist
    (the folder itself is created by the command). Problems -> one-line InputError.
    """
    if path is None:
        return None
    p = Path(path).expanduser()
    parent = p.parent if str(p.parent) else Path(".")
    if kind == "dir":
        if p.exists() and not p.is_dir():
            raise InputError(f"{what} {path} is a file; expected a folder (existing or to be created)")
        if not p.exists() and not parent.is_dir():
            raise InputError(f"{what} {path}: the folder {parent} does not exist; create it first or choose "
                             "another place")
        return p
    if p.is_dir():
        raise InputError(f"{what} {path} is a folder; expected a file name")
    if not parent.is_dir():
        what_parent = "is a file, not a folder" if parent.exists() else "does not exist"
        raise InputError(f"{what} {path}: the folder {parent} {what_parent}; create it first or choose another place")
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if p.suffix.lower() not in allowed:
            raise InputError(f"{what} {path}: unknown output extension {p.suffix or '(none)'!r}; expected one of: "
                             f"{', '.join(allowed)}")
    return p
