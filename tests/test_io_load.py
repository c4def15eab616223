"""The one loader `capeval.io.load`: dataset names (kept whole as system names), paths, URLs and Python data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from capeval import datasets
from capeval.errors import CapevalError, InputError
from capeval.io import load, load_captions, system_name
from capeval.records import Caption, CaptionSet


@pytest.mark.parametrize("source,expected", [
    ("llava-1.5-7b-briefly", "llava-1.5-7b-briefly"),
    ("runs/llava-1.5-7b-briefly", "llava-1.5-7b-briefly"),
    ("runs/internvl2-2b.v1.json", "internvl2-2b.v1"),
    ("a/b/results.jsonl", "results"),
    ("x.tar", "x.tar"),
    ("https://example.org/some/llava-1.5-7b.json?x=1", "llava-1.5-7b"),
    ("C:\\\\runs\\\\m2.csv", "m2"),
])
def test_system_name_keeps_versions(source: str, expected: str) -> None:
    assert system_name(source) == expected


def test_dataset_names_load_with_whole_names(shared_datasets: Path) -> None:
    caps = load("llava-1.5-7b-briefly")
    assert caps.name == "llava-1.5-7b-briefly"
    assert len(caps) == 5000
    refs = load("coco-karpathy-test")
    assert len(refs.image_ids()) == 5000 and len(refs) == 25010
    # the old entry points agree
    assert load_captions("m2-transformer").name == "m2-transformer"
    assert datasets.load("m2-transformer").captions == load("m2-transformer").captions


def test_file_url_loads_and_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "sys-1.5.json"
    src.write_text(json.dumps([{"image_id": 1, "caption": "a dog"}]), encoding="utf-8")
    monkeypatch.setenv("CAPEVAL_HOME", str(tmp_path / "home"))
    caps = load(src.as_uri())
    assert caps.name == "sys-1.5" and [c.text for c in caps] == ["a dog"]
    assert caps.path and Path(caps.path).is_relative_to(tmp_path / "home")
    with pytest.raises(CapevalError, match="could not fetch file:///"):
        load((tmp_path / "missing.json").as_uri())


def test_python_data() -> None:
    d = load({"391895": "a man on a bike", 522418: ["a woman", "a knife"]})
    assert [(c.caption_id, c.image_id) for c in d] == [("391895#0", "391895"), ("522418#0", "522418"),
                                                       ("522418#1", "522418")]
    r = load([{"image_id": "COCO_val2014_000000391895.jpg", "caption": "a bike"}], name="mine")
    assert r.name == "mine" and r[0].image_id == "391895"
    df = load(pd.DataFrame({"image_id": [1, 2], "caption": ["a", "b"], "caption_id": ["x", "y"]}))
    assert [c.caption_id for c in df] == ["x", "y"]
    cs = CaptionSet([Caption("a", "1", "t")], name="n")
    assert load(cs) is cs


@pytest.mark.parametrize("bad,match", [
    ({"391895": None}, r'\["391895"\]: expected a caption string, got null'),
    ({"391895": 5}, r'\["391895"\]: expected a caption string, got number'),
    ([{"image_id": 1, "caption": None}], r"\[0\]\.caption: expected a caption string, got null"),
    (["a dog", "a cat"], "a list of strings has no image ids"),
    ({}, "no captions"),
    (42, "cannot read captions from a int"),
])
def test_python_data_errors_name_the_place(bad: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        load(bad)


def test_non_string_caption_in_a_file_names_its_key(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text('{"391895": 3.5}', encoding="utf-8")
    with pytest.raises(InputError, match=r'c\.json, \["391895"\]: expected a caption string, got number'):
        load(p)


def test_a_judgment_dataset_is_not_read_as_captions() -> None:
    with pytest.raises(InputError, match=r"holds human judgments, not captions; use it as `capeval correlate --human "
                                         r"flickr8k-expert`"):
        load("flickr8k-expert")
