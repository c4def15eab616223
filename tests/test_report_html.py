"""The report renderer: self-contained HTML (no network, images embedded) that opens in headless Chromium with every
plot visible, and a Markdown twin with the same tables and the PNGs beside it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capeval.report import Report

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


def _figure(kind: str):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    if kind == "bar":
        ax.bar(["BLEU-4", "CIDEr"], [30.8, 43.9], yerr=[[1.9, 2.1], [2.0, 2.2]], capsize=3)
    else:
        ax.scatter(np.arange(20), np.arange(20) ** 0.5)
    return fig


def _sample_report() -> Report:
    rep = Report("Test report <&>", subtitle="made by a test")
    rep.add_heading("Correlations")
    rep.add_text("Values x 100 with `tau_c` first.")
    table = pd.DataFrame({"metric": ["BLEU-4", "CIDEr|D"], "tau_c": [30.78, 43.89],
                          "ci": ["[28.9, 32.7]", "[41.9, 46.1]"]})
    rep.add_table(table, caption="correlations", float_digits=2)
    rep.add_figure(_figure("bar"), caption="bars with error bars", name="bars")
    rep.add_figure(_figure("scatter"), caption="scatter")
    rep.add_list(["signature `cider-d|n:4|sigma:6`"])
    return rep


def test_html_is_self_contained_and_markdown_has_the_same_tables(tmp_path: Path) -> None:
    html_path, md_path = _sample_report().write(tmp_path)
    html = html_path.read_text()
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert html.count('src="data:image/png;base64,') == 2
    assert "Test report &lt;&amp;&gt;" in html and "<code>tau_c</code>" in html
    md = md_path.read_text()
    assert "| metric | tau_c | ci |" in md and "| CIDEr\\|D | 43.89 | [41.9, 46.1] |" in md
    pngs = re.findall(r"\]\((fig\d\d-[a-z0-9-]+\.png)\)", md)
    assert len(pngs) == 2 and all((tmp_path / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    # the same cells appear in the HTML table
    for cell in ("BLEU-4", "30.78", "43.89", "[28.9, 32.7]"):
        assert f">{cell}</td>" in html


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def _open_in_chromium(html_path: Path, shot: Path, width: int = 1280
                      ) -> tuple[list[str], list[list[float]], list[str]]:
    """Console errors, [complete, naturalWidth, naturalHeight, shown width] per <img>, and every request made."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html_path.as_uri())
            page.wait_for_load_state("load")
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, "
                                                     "i.naturalHeight, i.getBoundingClientRect().width])")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    return errors, sizes, requests


@pytest.mark.browser
def test_report_opens_in_headless_chromium_with_every_plot_visible(tmp_path: Path) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (make browser installs Debian's chromium)")
    pytest.importorskip("playwright.sync_api")
    html_path, _ = _sample_report().write(tmp_path / "report")
    shot = tmp_path / "shot.png"
    errors, sizes, requests = _open_in_chromium(html_path, shot)
    assert errors == []
    assert len(sizes) == 2 and all(done and w > 0 and h > 0 and shown > 0 for done, w, h, shown in sizes), sizes
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert shot.stat().st_size > 5000


@pytest.mark.slow
def test_meta_report_from_made_up_judgments(tmp_path: Path) -> None:
    """capeval report end to end on a small judgments file: table with CIs, bar chart, box plots, signatures."""
    from capeval.cli import main

    refs = {"1": ["a dog runs on the grass", "a brown dog in a field"], "2": ["a man rides a bike", "a cyclist"],
            "3": ["kids on a beach", "children play in the sand"], "4": ["food on a plate", "a meal on a table"]}
    (tmp_path / "refs.json").write_text(json.dumps(refs))
    rows = []
    for img, good, bad in [("1", "a dog on grass", "a plate"), ("2", "a man on a bike", "a beach"),
                           ("3", "children on a beach", "a dog"), ("4", "a meal on a plate", "a bike")]:
        for rater, bump in (("a", 0), ("b", 1)):
            rows.append({"image_id": img, "system": "good", "caption": good, "rating": 3 + bump, "rater": rater})
            rows.append({"image_id": img, "system": "bad", "caption": bad, "rating": 1 + bump, "rater": rater})
    pd.DataFrame(rows).to_csv(tmp_path / "j.csv", index=False)
    out = tmp_path / "rep"
    code = main(["report", "--human", str(tmp_path / "j.csv"), "--refs", str(tmp_path / "refs.json"),
                 "--metrics", "bleu4,rouge,cider", "--bootstrap", "100", "--out", str(out)])
    assert code == 0
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    # two systems -> system level: story, per-system and rank plots, then the correlation bars and box plots
    assert html.count("data:image/png;base64,") == 4 and "Reproducibility signatures" in md
    assert "cider-d\\|n:4" in md and "| CIDEr-D |" in md and "unit:per-system" in md
    assert md.index("people rank good first of 2 systems") < md.index("Correlation tables")
    if os.path.exists(CHROMIUM) and _has_playwright():
        errors, sizes, _ = _open_in_chromium(out / "report.html", tmp_path / "meta-shot.png")
        assert errors == [] and len(sizes) == 4 and all(w > 0 for _, w, _, _ in sizes)
