"""Acceptance: `capeval report` on THumB tells the story first and opens in headless Chromium with every plot loaded
and no request leaving the file, at a desktop and at a phone width."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from test_report_html import CHROMIUM, _has_playwright, _open_in_chromium


@pytest.fixture(scope="module")
def thumb_report(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from capeval.cli import main

    out = tmp_path_factory.mktemp("thumb-report")
    code = main(["report", "--human", "thumb", "--metrics", "bleu4,rouge,cider", "--bootstrap", "200",
                 "--system-tests", "2000", "--out", str(out), "--quiet"])
    assert code == 0
    return out


@pytest.mark.slow
def test_report_leads_with_the_thumb_story(thumb_report: Path) -> None:
    md = (thumb_report / "report.md").read_text()
    story = md.index("On THumB, people rank Human first of 5 systems")
    assert "BLEU-4 and ROUGE-L rank it last; CIDEr-D ranks it fourth" in md
    assert story < md.index("Where the metric and people disagree most") < md.index("Correlation tables")
    assert "BLEU-4 prefers Up-Down over Human by +0.8 (95% CI [" in md
    assert "people prefer Human over Up-Down by 0.68 points (95% CI [" in md
    assert "| liked by | image_id | system | caption | references | CIDEr-D | human |" in md
    assert "Disagreement table" in md and md.count("|unit:per-system") == 3


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 420])
def test_thumb_report_opens_in_chromium_with_every_plot_loaded(thumb_report: Path, tmp_path: Path,
                                                               width: int) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed")
    if not _has_playwright():
        pytest.skip("playwright is not installed")
    shot = tmp_path / f"thumb-{width}.png"
    errors, sizes, requests = _open_in_chromium(thumb_report / "report.html", shot, width=width)
    assert errors == []
    assert len(sizes) == 4 and all(done and w > 0 and h > 0 and 0 < shown <= width for done, w, h, shown in sizes)
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert shot.stat().st_size > 20_000
    if os.environ.get("CAPEVAL_KEEP_SCREENSHOTS"):
        keep = Path(os.environ["CAPEVAL_KEEP_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        (keep / shot.name).write_bytes(shot.read_bytes())
