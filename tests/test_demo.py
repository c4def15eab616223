"""`capeval demo` end to end on the real data, cut down to one system and one metric so it stays quick."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_scores_audits_rescoring_and_meta_evaluates_into_one_report(shared_datasets: Path, tmp_path: Path) -> None:
    from capeval.demo import run_demo

    messages: list[str] = []
    result = run_demo(tmp_path / "demo", mirror=str(shared_datasets), systems=("blip2",), metrics=("bleu", "cider"),
                      meta_metrics=("bleu4",), judgments=("flickr8k-expert",), bootstrap=20, say=messages.append)

    row = result.scores.set_index("system").loc["blip2"]
    assert round(row["bleu4"], 1) == 43.8 and round(row["cider"], 1) == 146.0  # the published BLIP-2 figures
    assert list(result.impact["system"]) == ["blip2"]
    assert result.impact.loc[0, "CIDEr-D all"] == pytest.approx(row["cider"], abs=0.01)
    assert result.impact.loc[0, "CIDEr-D kept"] != result.impact.loc[0, "CIDEr-D all"]
    assert (result.out_dir / "audit" / "findings.jsonl").stat().st_size > 0
    assert not result.skipped
    html = result.report_html.read_text()
    assert "BLEU-4" in html and "data:image/png;base64" in html and "flickr8k-expert" in html
    assert "| blip2 |" in result.report_md.read_text()
    assert any("auditing" in m for m in messages)
    # the story first: THumB at system level, each system scored as its own evaluation
    assert result.story.headline[0].startswith("On THumB, people rank Human first of 5 systems")
    assert "BLEU-4 and ROUGE-L rank it last; CIDEr-D ranks it fourth" in result.story.headline[0]
    md = result.report_md.read_text()
    assert md.index("On THumB, people rank Human first") < md.index("Four real systems on COCO Karpathy test")
    assert len(result.story.disagreements) == 8 and "references" in result.story.disagreements
