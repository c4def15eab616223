"""The dev3 development set (data/audit_labels/dev3): judged findings on a documented draw of images, outside every
other label set, each judged span exactly the text it names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from capeval.audit import evaluation as ev
from capeval.audit.finding import Finding
from label_support import load_sample, read_rows

LABELS = Path(__file__).resolve().parents[1] / "data" / "audit_labels"
DEV3 = LABELS / "dev3"


def _rows(name: str) -> list[dict[str, str]]:
    return read_rows(DEV3 / name)


def _sample():
    return load_sample(DEV3 / "sample.py", "audit_dev3_sample")


def test_images_are_exactly_the_documented_draw_outside_every_other_set(shared_datasets):
    sample = _sample()
    images = [r["image_id"] for r in _rows("images.csv")]
    assert (sample.SEED, sample.N_IMAGES) == (2029, 1000)
    assert sample.draw_images(shared_datasets) == images and len(set(images)) == 1000
    others = set()
    for path in (LABELS / "captions.csv", LABELS / "heldout" / "captions.csv", LABELS / "dev2" / "captions.csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            others |= {r["image_id"] for r in csv.DictReader(fh)}
    val2017 = {str(im["id"]) for im in json.loads(
        (shared_datasets / "coco-val2017" / "captions_val2017.json").read_text(encoding="utf-8"))["images"]}
    assert not set(images) & others and not set(images) & val2017


def test_every_judged_span_is_the_text_it_names(shared_datasets):
    entries = json.loads((shared_datasets / "coco-karpathy-test" / "coco_test.json").read_text(encoding="utf-8"))
    sample = _sample()
    captions = {sample._heldout.image_id_of(e["image"]): e["caption"] for e in entries}
    images = {r["image_id"] for r in _rows("images.csv")}
    rows = _rows("findings.csv")
    assert list(rows[0]) == ["caption_id", "image_id", "category", "start", "end", "text", "right", "note"]
    assert len(rows) >= 200
    keys = set()
    for r in rows:
        image, k = r["caption_id"].split("#")
        assert image == r["image_id"] and image in images, r["caption_id"]
        assert r["category"] in {"real_word", "grammar"} and r["right"] in {"0", "1"}, r
        assert captions[image][int(k)][int(r["start"]):int(r["end"])] == r["text"], r
        keys.add((r["caption_id"], r["category"], r["start"], r["end"]))
    assert len(keys) == len(rows)  # one verdict per span and category
    right = sum(r["right"] == "1" for r in rows)
    assert 0 < right < len(rows)  # both verdicts occur: the judges did not accept every finding


def test_judgements_apply_to_findings_on_the_judged_span_and_category_only():
    judgements = ev.load_finding_judgements(DEV3)
    (cid, cat, start, end), verdict = next(iter(judgements.verdicts.items()))
    image = cid.split("#")[0]
    same = Finding(cid, image, cat, start, end, "x", None, f"{cat}.any_rule", 0.5)
    other_category = Finding(cid, image, "spelling", start, end, "x", None, "spelling.unknown_word", 0.5)
    other_span = Finding(cid, image, cat, start, end + 1, "x", None, f"{cat}.any_rule", 0.5)
    assert judgements.judge([same, other_category, other_span]) == [(same, verdict)]


def test_a_bad_verdict_is_one_line_naming_the_file_and_row(tmp_path):
    (tmp_path / "findings.csv").write_text("caption_id,image_id,category,start,end,text,right,note\n"
                                           "1#0,1,grammar,0,1,A,yes,\n", encoding="utf-8")
    (tmp_path / "images.csv").write_text("image_id\n1\n", encoding="utf-8")
    with pytest.raises(ev.InputError, match=r"findings\.csv:2: 'right' must be 0 or 1"):
        ev.load_finding_judgements(tmp_path)
