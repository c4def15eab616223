"""A small self-contained report renderer: headings, text, tables and matplotlib figures -> one HTML page (PNG
figures embedded as base64, inline CSS, no script, no network) and a Markdown twin (PNGs written beside it)."""

from __future__ import annotations

import base64
import html
import io
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d1d1f;line-height:1.45}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right;vertical-align:top}
th{background:#f1f1f4}td.t,th.t{text-align:left}tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption,.cap{color:#555;font-size:.9em}code,.mono{font-family:SFMono-Regular,Consolas,monospace;font-size:.88em}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em}
.meta{color:#666;font-size:.85em}
.tw{overflow-x:auto;max-width:100%;-webkit-overflow-scrolling:touch}
@media (max-width:640px){body{padding:0 .5em}table{font-size:.78em}th,td{padding:.2em .35em}}
"""


@dataclass
class _Block:
    kind: str
    payload: Any
    caption: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "figure"


def _cell(v: object, float_digits: int) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.{float_digits}f}"
    return str(v)


def _is_texty(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series)


class Report:
    """Build a report section by section, then `write(out_dir)` -> (html_path, md_path).

    Figures are rendered to PNG when added (matplotlib Agg) and the figure is closed, so callers can add many."""

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self.blocks: list[_Block] = []
        self._n_fig = 0

    def add_heading(self, text: str, level: int = 2) -> Report:
        self.blocks.append(_Block("heading", text, extra={"level": max(2, min(4, level))}))
        return self

    def add_text(self, text: str, note: bool = False) -> Report:
        """A paragraph of plain text (`code` spans kept as code)."""
        self.blocks.append(_Block("text", text, extra={"note": note}))
        return self

    def add_list(self, items: list[str]) -> Report:
        self.blocks.append(_Block("list", [str(i) for i in items]))
        return self

    def add_table(self, df: pd.DataFrame, caption: str | None = None, *, index: bool = False,
                  float_digits: int = 3) -> Report:
        frame = df.reset_index() if index else df
        self.blocks.append(_Block("table", frame.copy(), caption, {"digits": float_digits}))
        return self

    def add_figure(self, fig: Any, caption: str | None = None, name: str | None = None, dpi: int = 110) -> Report:
        """Add a matplotlib figure (rendered now with the Agg canvas, then closed)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)  # make sure the figure renders off-screen whatever pyplot's backend is
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        try:
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception:  # pragma: no cover - a Figure not managed by pyplot
            pass
        self._n_fig += 1
        fname = f"fig{self._n_fig:02d}-{_slug(name or caption or 'figure')}.png"
        self.blocks.append(_Block("figure", buf.getvalue(), caption, {"file": fname}))
        return self

    def add_png(self, png: bytes, caption: str | None = None, name: str | None = None) -> Report:
        self._n_fig += 1
        fname = f"fig{self._n_fig:02d}-{_slug(name or caption or 'figure')}.png"
        self.blocks.append(_Block("figure", png, caption, {"file": fname}))
        return self

    # -- rendering ----------------------------------------------------------------------------------------------

    @staticmethod
    def _inline_html(text: str) -> str:
        parts = re.split(r"(`[^`]+`)", text)
        return "".join(f"<code>{html.escape(p[1:-1])}</code>" if p.startswith("`") and p.endswith("`")
                       else html.escape(p) for p in parts)

    def to_html(self) -> str:
        out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
               '<meta name="viewport" content="width=device-width, initial-scale=1">',
               f"<title>{html.escape(self.title)}</title>", f"<style>{_CSS}</style></head><body>",
               f"<h1>{html.escape(self.title)}</h1>"]
        if self.subtitle:
            out.append(f'<p class="meta">{html.escape(self.subtitle)}</p>')
        for b in self.blocks:
            if b.kind == "heading":
                lvl = b.extra["level"]
                out.append(f"<h{lvl}>{html.escape(b.payload)}</h{lvl}>")
            elif b.kind == "text":
                cls = ' class="note"' if b.extra.get("note") else ""
                out.append(f"<p{cls}>{self._inline_html(b.payload)}</p>")
            elif b.kind == "list":
                out.append("<ul>" + "".join(f"<li>{self._inline_html(i)}</li>" for i in b.payload) + "</ul>")
            elif b.kind == "table":
                df: pd.DataFrame = b.payload
                digits = b.extra["digits"]
                texty = {c: _is_texty(df[c]) for c in df.columns}
                head = "".join(f'<th class="{"t" if texty[c] else ""}">{html.escape(str(c))}</th>'
                               for c in df.columns)
                body = "".join("<tr>" + "".join(
                    f'<td class="{"t" if texty[c] else ""}">{html.escape(_cell(v, digits))}</td>'
                    for c, v in zip(df.columns, row)) + "</tr>" for row in df.itertuples(index=False))
                cap = f"<caption class=\"cap\">{html.escape(b.caption)}</caption>" if b.caption else ""
                out.append(f'<div class="tw"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
                           "</table></div>")
            elif b.kind == "figure":
                data = base64.b64encode(b.payload).decode("ascii")
                alt = html.escape(b.caption or b.extra["file"])
                cap = f"<figcaption>{html.escape(b.caption)}</figcaption>" if b.caption else ""
                out.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{cap}</figure>')
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out.append(f'<p class="meta">Written by capeval on {stamp}.</p></body></html>')
        return "\n".join(out)

    @staticmethod
    def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
        def esc(s: str) -> str:
            return s.replace("|", "\\|").replace("\n", " ")

        cols = [esc(str(c)) for c in df.columns]
        texty = [_is_texty(df[c]) for c in df.columns]
        lines = ["| " + " | ".join(cols) + " |",
                 "|" + "|".join(":---" if t else "---:" for t in texty) + "|"]
        for row in df.itertuples(index=False):
            lines.append("| " + " | ".join(esc(_cell(v, digits)) for v in row) + " |")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        if self.subtitle:
            out += [f"_{self.subtitle}_", ""]
        for b in self.blocks:
            if b.kind == "heading":
                out += ["#" * b.extra["level"] + " " + b.payload, ""]
            elif b.kind == "text":
                out += [("> " if b.extra.get("note") else "") + b.payload, ""]
            elif b.kind == "list":
                out += [f"- {i}" for i in b.payload] + [""]
            elif b.kind == "table":
                if b.caption:
                    out += [f"*{b.caption}*", ""]
                out += [self.markdown_table(b.payload, b.extra["digits"]), ""]
            elif b.kind == "figure":
                out += [f"![{b.caption or b.extra['file']}]({b.extra['file']})", ""]
                if b.caption:
                    out += [f"*{b.caption}*", ""]
        return "\n".join(out)

    def write(self, out_dir: str | Path, name: str = "report") -> tuple[Path, Path]:
        """Write `<name>.html` (self-contained) and `<name>.md` with its PNGs beside it; returns both paths."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        for b in self.blocks:
            if b.kind == "figure":
                (d / b.extra["file"]).write_bytes(b.payload)
        html_path = d / f"{name}.html"
        md_path = d / f"{name}.md"
        html_path.write_text(self.to_html(), encoding="utf-8")
        md_path.write_text(self.to_markdown(), encoding="utf-8")
        return html_path, md_path
