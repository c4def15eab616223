"""Loaders for the public benchmark formats: EXPERT/Polos-style {imgid, mt, refs, score} JSON lists, Composite's AMT
CSVs, the registry entries of the sets not in the mirror, and the scoring unit each one declares."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from capeval.errors import InputError
from capeval.meta.correlate import correlate
from capeval.meta.judgments import load_composite_csv, load_expert_json, resolve_judgments

RECORDS = [
    {"imgid": "a1", "mt": "a dog runs on the grass", "refs": ["a dog running in a field", "a brown dog on grass"],
     "score": 0.9},
    {"imgid": "a1", "mt": "a plate of food", "refs": ["a dog running in a field", "a brown dog on grass"],
     "score": 0.1},
    {"imgid": "b2", "mt": "a man riding a bike", "refs": ["a cyclist on a road", "a man rides a bicycle"],
     "score": 0.8},
    {"imgid": "b2", "mt": "two kids at the beach", "refs": ["a cyclist on a road", "a man rides a bicycle"],
     "score": 0.2},
    # the same image with another reference list (Polaris ships per-record references): a separate group
    {"imgid": "b2", "mt": "a man on a bike", "refs": ["a person cycling"], "score": 0.7},
]


def test_expert_json_list_loads_with_per_record_references(tmp_path: Path) -> None:
    p = tmp_path / "nebula_test.json"
    p.write_text(json.dumps(RECORDS))
    j = load_expert_json(p)
    assert j.name == "nebula_test" and j.default_statistic == "tau_c" and j.unit == "pooled"
    assert "Nebula" in j.protocol and "pooled" in j.protocol
    assert list(j.frame["image_id"]) == ["a1", "a1", "b2", "b2", "b2~1"]
    assert j.references.texts_by_image()["b2~1"] == ["a person cycling"]
    assert resolve_judgments(str(p)).name == "nebula_test"  # detected from its shape
    r = correlate(j, metrics=["cider", "bleu1"], bootstrap=0)
    assert r.unit == "pooled" and r.signatures["cider"].endswith("|unit:pooled")
    t = r.table.set_index(["metric", "statistic"])["value"]
    assert t[("bleu1", "tau_c")] > 0.5


def test_expert_json_errors_name_the_record(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps([RECORDS[0], {"imgid": "x", "mt": "y", "score": 1}]))
    with pytest.raises(InputError, match=r"record 1.*imgid, mt, refs and score"):
        load_expert_json(p)
    p.write_text(json.dumps([{**RECORDS[0], "refs": []}]))
    with pytest.raises(InputError, match="refs must be a non-empty list"):
        load_expert_json(p)


def _composite_row(url: str, caps: list[str], ratings: list[int]) -> str:
    return ";".join([f"f{k}" for k in range(27)] + [url, *caps, *map(str, ratings)])


def test_composite_csv_layout(tmp_path: Path) -> None:
    header = ";".join([f"h{k}" for k in range(27)] + ["image", "c1", "c2", "c3", "r1", "r2", "r3"])
    rows = [_composite_row("http://x/images/1000268201_693b08cb0e.jpg", ["a child in pink", "a dog", "a girl"],
                           [5, 1, 4]),
            _composite_row("http://x/images/1001773457_577c3a7d70.jpg", ["two dogs", "a cat", "a black dog"],
                           [4, 1, 5]),
            "total;;;", "mean;;;"]
    p = tmp_path / "8k_correctness.csv"
    p.write_text("\n".join([header, *rows]) + "\n")
    j = load_composite_csv(p)
    assert j.name == "composite-flickr8k" and str(j.scale) == "1-5" and len(j) == 6
    assert set(j.frame["image_id"]) == {"1000268201", "1001773457"}
    assert list(j.frame["rating"]) == [5, 1, 4, 4, 1, 5] and any("skipped 2 row(s)" in w for w in j.warnings)
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"1000268201": ["a child in a pink dress climbs stairs", "a girl going into a house"],
                                "1001773457": ["a black dog and a spotted dog are fighting", "two dogs on a road"]}))
    r = correlate(j, refs=str(refs), metrics=["rouge"], bootstrap=0)
    assert r.unit == "pooled" and np.isfinite(r.table["value"]).all()
    with pytest.raises(InputError, match="cannot tell the Composite split"):
        load_composite_csv(p.rename(tmp_path / "ratings.csv"))


def test_registered_sets_not_in_the_mirror_say_where_they_come_from() -> None:
    from capeval import datasets
    from capeval.meta.judgments import REGISTERED_JUDGMENTS

    for name in ("nebula", "polaris", "composite"):
        ds = datasets.REGISTRY[name]
        assert name in REGISTERED_JUDGMENTS and ds.format == "expert-json" and ds.licence and ds.citation
        assert ds.files[0].urls[0].startswith("https://raw.githubusercontent.com/hjkim811/EXPERT/74bbef41/")
    # computed from the file at that commit (git mirror of hjkim811/EXPERT); the other two: recorded on first download
    assert datasets.REGISTRY["nebula"].files[0].sha256 == \
        "ac70204016a35ccc3a81603a7c1c9c836152ab8d7d3fea6a33e84eafe937df39"
    assert datasets.REGISTRY["polaris"].files[0].sha256 is None and datasets.REGISTRY["composite"].files[0].sha256 is None
    thumb = datasets.REGISTRY["thumb"]
    assert [f.urls[0].rsplit("/", 1)[-1] for f in thumb.files] == ["mscoco_THumB-1.0.jsonl", "mscoco_references.json",
                                                                   "README.md"]
    assert all("jungokasai/THumB/fd099b4f/mscoco/" in f.urls[0] and f.sha256 for f in thumb.files)


def test_criterion_is_refused_for_single_rating_sets() -> None:
    with pytest.raises(InputError, match="flickr8k-expert has one rating per caption"):
        resolve_judgments("flickr8k-expert", criterion="precision")


def test_third_party_progress_bars_are_silenced_only_inside_the_scope() -> None:
    tl = pytest.importorskip("transformers.utils.logging")
    from capeval.meta.correlate import quiet_third_party

    before, level = tl.is_progress_bar_enabled(), tl.get_verbosity()
    with quiet_third_party(["bleu4", "bertscore"]):
        assert not tl.is_progress_bar_enabled() and tl.get_verbosity() == tl.ERROR
    assert tl.is_progress_bar_enabled() == before and tl.get_verbosity() == level
