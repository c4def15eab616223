"""The dev4 development set (data/audit_labels/dev4): judged findings of the rules without the language model, on
every other dev-split image, each judged span exactly the text it names, the language-model rule out of scope."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from capeval.audit import evaluation as ev
from capeval.audit.finding import Finding
from label_support import load_sample, read_rows

LABELS = Path(__file__).resolve().parents[1] / "data" / "audit_labels"
DEV4 = LABELS / "dev4"


def _rows(name: str) -> list[dict[str, str]]:
    return read_rows(DEV4 / name)


def _sample():
    return load_sample(DEV4 / "sample.py", "audit_dev4_sample")


def test_images_are_every_dev_split_image_outside_the_other_sets(shared_datasets):
    images = [r["image_id"] for r in _rows("images.csv")]
    assert _sample().images(shared_datasets) == images and len(set(images)) == len(images) > 900
    others = set()
    for path in (LABELS / "captions.csv", LABELS / "heldout" / "captions.csv", LABELS / "dev2" / "captions.csv",
                 LABELS / "dev3" / "images.csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            others |= {r["image_id"] for r in csv.DictReader(fh)}
    reserved = ev.reserved_images(str(shared_datasets))
    assert reserved and not set(images) & others and not set(images) & reserved
    assert {ev.split_of(i, reserved) for i in images} == {"dev"}


def test_every_judged_span_is_the_text_it_names(shared_datasets):
    entries = json.loads((shared_datasets / "coco-karpathy-test" / "coco_test.json").read_text(encoding="utf-8"))
    helpers = _sample()._heldout
    captions = {helpers.image_id_of(e["image"]): e["caption"] for e in entries}
    images = {r["image_id"] for r in _rows("images.csv")}
    rows = _rows("findings.csv")
    assert list(rows[0]) == ["caption_id", "image_id", "category", "start", "end", "text", "right", "note"]
    keys = set()
    for r in rows:
        image, k = r["caption_id"].split("#")
        assert image == r["image_id"] and image in images, r["caption_id"]
        assert r["category"] in {"real_word", "grammar"} and r["right"] in {"0", "1"}, r
        assert captions[image][int(k)][int(r["start"]):int(r["end"])] == r["text"], r
        keys.add((r["caption_id"], r["category"], r["start"], r["end"]))
    assert len(keys) == len(rows) >= 100  # one verdict per span and category
    assert 0 < sum(r["right"] == "1" for r in rows) < len(rows)  # the judge did not accept every finding


def test_no_verdict_judges_a_finding_of_the_language_model_rule():
    judgements = ev.load_finding_judgements(DEV4)
    assert judgements.excluded_rules == ("real_word.lm", "real_word.an_for_and")  # the rules that use the LM
    (cid, cat, start, end), verdict = next((k, v) for k, v in judgements.verdicts.items() if k[1] == "real_word")
    image = cid.split("#")[0]
    other = Finding(cid, image, cat, start, end, "x", None, "real_word.corpus_context", 0.5)
    lm = Finding(cid, image, cat, start, end, "x", None, "real_word.lm.edit1.b0", 0.5)
    lm_family = Finding(cid, image, cat, start, end, "x", None, "real_word.lm", 0.5)
    lookalike = Finding(cid, image, cat, start, end, "x", None, "real_word.lmx", 0.5)  # a prefix, not a sub-rule
    assert judgements.judge([other, lm, lm_family, lookalike]) == [(other, verdict), (lookalike, verdict)]


def test_a_malformed_scope_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "findings.csv").write_text("caption_id,image_id,category,start,end,text,right,note\n"
                                           "1#0,1,grammar,0,1,A,1,\n", encoding="utf-8")
    (tmp_path / "images.csv").write_text("image_id\n1\n", encoding="utf-8")
    (tmp_path / "scope.json").write_text('{"excluded_rules": "real_word.lm"}', encoding="utf-8")
    with pytest.raises(ev.InputError, match=r"scope\.json: 'excluded_rules' must be a list"):
        ev.load_finding_judgements(tmp_path)
    (tmp_path / "scope.json").write_text("[", encoding="utf-8")
    with pytest.raises(ev.InputError, match=r"scope\.json: expected a JSON object"):
        ev.load_finding_judgements(tmp_path)
