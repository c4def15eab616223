"""Write an audit to disk: findings.jsonl, captions.csv, summary.md/.html and the fixed/kept COCO references."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from capeval.audit.finding import CATEGORIES
from capeval.audit.run import AuditResult

N_EXAMPLES = 5


def top_misspellings(result: AuditResult, n: int = 25) -> pd.DataFrame:
    """The most frequent misspelled words with their most frequent correction."""
    counts: Counter = Counter()
    fixes: dict[str, Counter] = {}
    for f in result.findings:
        if f.category == "spelling":
            w = f.text.lower()
            counts[w] += 1
            fixes.setdefault(w, Counter())[(f.suggestion or "").lower()] += 1
    rows = [{"word": w, "count": k, "correction": fixes[w].most_common(1)[0][0] or None}
            for w, k in counts.most_common(n)]
    return pd.DataFrame(rows, columns=["word", "count", "correction"])


def examples(result: AuditResult, n: int = N_EXAMPLES) -> dict[str, list[dict]]:
    """Up to `n` findings per category with their caption, the span marked."""
    texts = result.captions.by_id()
    out: dict[str, list[dict]] = {}
    for f in result.findings:
        lst = out.setdefault(f.category, [])
        if len(lst) < n:
            t = texts[f.caption_id].text
            lst.append({"caption_id": f.caption_id, "caption": t.strip(), "before": t[:f.start],
                        "span": t[f.start:f.end],
                        "after": t[f.end:], "suggestion": f.suggestion, "rule": f.rule, "confidence": f.confidence})
    return out


def length_histogram_png(result: AuditResult) -> bytes:
    """Histograms of caption length (words) for all captions and for the captions flagged in each category."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from capeval.audit.corpus import words_of

    lengths = {c.caption_id: len(words_of(c.text)) for c in result.captions}
    cats = [c for c in CATEGORIES if any(f.category == c for f in result.findings)]
    panels = ["all captions"] + cats
    ncols = 3
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.6 * nrows), squeeze=False)
    all_len = list(lengths.values())
    top = max(all_len, default=1)
    bins = range(0, min(top, 40) + 2)
    for ax, panel in zip(axes.flat, panels):
        if panel == "all captions":
            vals = all_len
        else:
            ids = {f.caption_id for f in result.findings if f.category == panel}
            vals = [lengths[i] for i in ids]
        ax.hist([min(v, 40) for v in vals], bins=bins, color="#4477aa" if panel == "all captions" else "#cc6677")
        ax.set_title(f"{panel} (n={len(vals)})", fontsize=9)
        ax.set_xlabel("words", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _summary_table(result: AuditResult) -> pd.DataFrame:
    s = result.summary().copy()
    s["caption_rate"] = (s["caption_rate"] * 100).round(2)
    s["image_rate"] = (s["image_rate"] * 100).round(2)
    return s.rename(columns={"caption_rate": "% of captions", "image_rate": "% of images"})


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def summary_markdown(result: AuditResult) -> str:
    n_caps, n_imgs = len(result.captions), len(result.captions.by_image())
    parts = [f"# Caption audit: {result.name}", "",
             f"{n_caps} captions of {n_imgs} images; backend `{result.backend}`, "
             f"findings with confidence >= {result.min_confidence}.", ""]
    parts += [f"> note: {n}" for n in result.notes]
    parts += ["## Counts and rates per category", "", _md_table(_summary_table(result)), "",
              "## Most common misspellings", ""]
    tm = top_misspellings(result)
    parts += [_md_table(tm) if len(tm) else "(none)", "", "## Examples", ""]
    for cat, exs in examples(result).items():
        parts.append(f"### {cat}")
        for e in exs:
            sug = f" -> `{e['suggestion']}`" if e["suggestion"] is not None else ""
            cap = (e["before"] + "**" + e["span"] + "**" + e["after"]).strip()
            parts.append(f"- `{e['caption_id']}` {cap}{sug} ({e['rule']}, {e['confidence']:.2f})")
        parts.append("")
    parts += ["## Caption length per category", "", "![caption lengths](lengths.png)", ""]
    return "\n".join(parts)


def summary_html(result: AuditResult, png: bytes) -> str:
    e = html.escape
    n_caps, n_imgs = len(result.captions), len(result.captions.by_image())
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>Caption audit: {e(result.name)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
             "mark{background:#fdd}.s{color:#070}</style></head><body>",
             f"<h1>Caption audit: {e(result.name)}</h1>",
             f"<p>{n_caps} captions of {n_imgs} images; backend <code>{e(result.backend)}</code>; "
             f"findings with confidence &ge; {result.min_confidence}.</p>"]
    parts += [f"<p><em>note: {e(n)}</em></p>" for n in result.notes]
    parts += ["<h2>Counts and rates per category</h2>", _summary_table(result).to_html(index=False, escape=True),
              "<h2>Most common misspellings</h2>"]
    tm = top_misspellings(result)
    parts.append(tm.to_html(index=False, escape=True) if len(tm) else "<p>(none)</p>")
    parts.append("<h2>Examples</h2>")
    for cat, exs in examples(result).items():
        parts.append(f"<h3>{e(cat)}</h3><ul>")
        for x in exs:
            sug = f" &rarr; <span class='s'>{e(x['suggestion'])}</span>" if x["suggestion"] is not None else ""
            parts.append(f"<li><code>{e(x['caption_id'])}</code> {e(x['before'])}<mark>{e(x['span'])}</mark>"
                         f"{e(x['after'])}{sug} <small>({e(x['rule'])}, {x['confidence']:.2f})</small></li>")
        parts.append("</ul>")
    b64 = base64.b64encode(png).decode("ascii")
    parts += ["<h2>Caption length per category</h2>",
              f"<img alt='caption length histograms' src='data:image/png;base64,{b64}'>", "</body></html>"]
    return "\n".join(parts)


def write_audit(result: AuditResult, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write every output file of an audit into `out_dir` (created if needed); returns name -> path."""
    from capeval.io import write_coco_annotations

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for src in filter(None, [result.captions.path]):
        if out.resolve() == Path(src).resolve().parent and Path(src).name in (
                "references.fixed.json", "references.kept.json", "findings.jsonl", "captions.csv"):
            raise ValueError(f"refusing to overwrite the audited input {src}")
    paths = {name: out / name for name in ("findings.jsonl", "captions.csv", "summary.md", "summary.html",
                                           "lengths.png", "references.fixed.json", "references.kept.json")}
    with open(paths["findings.jsonl"], "w", encoding="utf-8") as fh:
        for f in result.findings:
            fh.write(json.dumps(f.to_dict(), ensure_ascii=False) + "\n")
    result.per_caption().to_csv(paths["captions.csv"], index=False)
    png = length_histogram_png(result)
    paths["lengths.png"].write_bytes(png)
    paths["summary.md"].write_text(summary_markdown(result), encoding="utf-8")
    paths["summary.html"].write_text(summary_html(result, png), encoding="utf-8")
    write_coco_annotations(result.fixed_captions(), paths["references.fixed.json"])
    write_coco_annotations(result.kept_captions(), paths["references.kept.json"])
    return paths
