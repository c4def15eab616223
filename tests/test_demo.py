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


def test_demo_command_prints_the_story_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI layer only: run_demo replaced by a result carrying a real story (small made-up judgments)."""
    import pandas as pd

    import capeval.demo as demo
    from capeval.cli import main
    from capeval.meta.correlate import correlate
    from capeval.meta.judgments import judgments_from_records
    from capeval.records import CaptionSet
    from capeval.report.story import tell

    refs = CaptionSet.from_mapping({"1": ["a dog on grass", "a brown dog"], "2": ["a man on a bike", "a cyclist"]})
    rows = [{"image_id": i, "system": s, "caption": c, "rating": r} for i, s, c, r in
            [("1", "good", "a dog on the grass", 4), ("2", "good", "a man on a bike", 4),
             ("1", "bad", "a bike", 1), ("2", "bad", "a dog", 2)]]
    res = correlate(judgments_from_records(rows), refs=refs, metrics=["rouge"], level="system", bootstrap=20,
                    system_tests=100)
    fake = demo.DemoResult(tmp_path, tmp_path / "report.html", tmp_path / "report.md",
                           pd.DataFrame({"system": ["x"], "bleu4": [1.0]}), {}, {}, story=tell(res, "made-up"))
    monkeypatch.setattr(demo, "run_demo", lambda *a, **k: fake)
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.index("On made-up, people rank good first of 2 systems") < out.index("┃ system ┃ bleu4 ┃")
    assert "where ROUGE-L and people disagree most" in out
