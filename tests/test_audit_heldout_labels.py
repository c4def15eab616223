"""The held-out audit label set (data/audit_labels/heldout) and the dev2 development set
(data/audit_labels/dev2) are well-formed and are exactly their documented draws."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

LABELS = Path(__file__).resolve().parents[1] / "data" / "audit_labels"
HELDOUT = LABELS / "heldout"
DEV2 = LABELS / "dev2"
FOLDERS = ["heldout", "dev2"]
DRAWS = {"heldout": (2027, 200), "dev2": (2028, 400)}  # (SEED, N_IMAGES), see each folder's NOTE.md
CATEGORIES = [
    "spelling", "real_word", "grammar", "truncated", "formatting",
    "non_caption", "low_detail", "off_consensus", "duplicate",
]
NOT_LABELLED = {"low_detail", "off_consensus"}  # see heldout/NOTE.md and dev2/NOTE.md
TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*")

folders = pytest.mark.parametrize("folder", FOLDERS)


def _rows(folder: str, name: str) -> list[dict[str, str]]:
    with open(LABELS / folder / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _sample_module(folder: str):
    spec = importlib.util.spec_from_file_location(f"audit_{folder}_sample", LABELS / folder / "sample.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mirror() -> Path:
    """The data mirror with both files the draw needs; skips without it, fails under CAPEVAL_REQUIRE_DATA=1."""
    env = os.environ.get("CAPEVAL_DATA_MIRROR")
    root = Path(env) if env else HELDOUT.parents[3] / "shared" / "datasets"
    needed = [root / "coco-karpathy-test" / "coco_test.json", root / "coco-val2017" / "captions_val2017.json"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        message = f"data mirror incomplete, missing {', '.join(missing)} (set CAPEVAL_DATA_MIRROR)"
        if os.environ.get("CAPEVAL_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="module")
def texts(mirror: Path) -> dict[str, list[str]]:
    sample = _sample_module("heldout")
    entries = json.loads((mirror / "coco-karpathy-test" / "coco_test.json").read_text(encoding="utf-8"))
    return {sample.image_id_of(e["image"]): e["caption"] for e in entries}


def _caption(texts: dict[str, list[str]], caption_id: str) -> str:
    image_id, k = caption_id.split("#")
    return texts[image_id][int(k)]


@folders
def test_columns_are_the_first_sets_and_every_label_is_0_or_1(folder):
    rows = _rows(folder, "captions.csv")
    with open(LABELS / "captions.csv", newline="", encoding="utf-8") as fh:
        first_header = next(csv.reader(fh))
    assert list(rows[0]) == first_header == ["caption_id", "image_id", *CATEGORIES, "notes"]
    assert len(rows) >= 5 * DRAWS[folder][1]
    for row in rows:
        assert re.fullmatch(r"[1-9]\d*#\d", row["caption_id"]) and row["caption_id"].split("#")[0] == row["image_id"]
        for cat in CATEGORIES:
            assert row[cat] in {"0", "1"}, (row["caption_id"], cat, row[cat])
            if cat in NOT_LABELLED:
                assert row[cat] == "0", (row["caption_id"], cat)
    assert len({r["caption_id"] for r in rows}) == len(rows)


@folders
def test_rows_are_exactly_the_documented_draw(folder, mirror):
    sample = _sample_module(folder)
    ids = [r["caption_id"] for r in _rows(folder, "captions.csv")]
    assert (sample.SEED, sample.N_IMAGES) == DRAWS[folder]
    assert sample.draw(mirror) == ids
    assert len({i.split("#")[0] for i in ids}) == DRAWS[folder][1]


@folders
def test_draw_leaves_out_the_first_label_set_and_val2017(folder, mirror):
    sample = _sample_module(folder)
    images = {r["image_id"] for r in _rows(folder, "captions.csv")}
    assert not images & sample.first_label_images()
    assert not images & sample.val2017_images(mirror / "coco-val2017" / "captions_val2017.json")


def test_dev2_leaves_out_every_other_label_set_and_val2017(mirror):
    heldout = _sample_module("heldout")
    dev2 = {r["image_id"] for r in _rows("dev2", "captions.csv")}
    with open(LABELS / "captions.csv", newline="", encoding="utf-8") as fh:
        first = {row["image_id"] for row in csv.DictReader(fh)}
    held = {r["image_id"] for r in _rows("heldout", "captions.csv")}
    val2017 = heldout.val2017_images(mirror / "coco-val2017" / "captions_val2017.json")
    assert not dev2 & first
    assert not dev2 & held
    assert not dev2 & val2017
    assert _sample_module("dev2").heldout_images() == held


@folders
def test_duplicate_label_marks_exactly_the_captions_repeated_within_their_image(folder, texts):
    def norm(t: str) -> str:
        return " ".join(re.sub(r"[^\w\s]", " ", t.lower()).split())

    for row in _rows(folder, "captions.csv"):
        image_id, k = row["caption_id"].split("#")
        caps = texts[image_id]
        repeated = any(norm(c) == norm(caps[int(k)]) for j, c in enumerate(caps) if j != int(k))
        assert row["duplicate"] == str(int(repeated)), row["caption_id"]


@folders
def test_notes_hold_no_caption_text(folder, texts):
    for row in _rows(folder, "captions.csv"):
        assert len(row["notes"]) <= 120, row["caption_id"]
        assert _caption(texts, row["caption_id"]).strip().lower() not in row["notes"].lower(), row["caption_id"]


@folders
def test_word_types_list_every_unknown_word_and_every_spelling_caption_has_a_typo_type(folder, texts):
    spellchecker = pytest.importorskip("spellchecker")
    rows = _rows(folder, "captions.csv")
    counts: dict[str, int] = {}
    for row in rows:
        for word in TOKEN.findall(_caption(texts, row["caption_id"]).lower()):
            counts[word] = counts.get(word, 0) + 1
    unknown = spellchecker.SpellChecker().unknown(list(counts))
    types = _rows(folder, "word_types.csv")
    assert list(types[0]) == ["word", "label", "correction", "count_in_sample", "in_dictionary", "note"]
    assert {t["word"] for t in types if t["in_dictionary"] == "0"} == unknown
    for t in types:
        assert t["label"] in {"typo", "valid"} and bool(t["correction"]) == (t["label"] == "typo"), t["word"]
        assert int(t["count_in_sample"]) == counts[t["word"]], t["word"]
        assert (t["in_dictionary"] == "1") == (t["word"] not in unknown), t["word"]
    typos = {t["word"] for t in types if t["label"] == "typo"}
    for row in rows:
        words = set(TOKEN.findall(_caption(texts, row["caption_id"]).lower()))
        assert (row["spelling"] == "1") == bool(words & typos), row["caption_id"]
