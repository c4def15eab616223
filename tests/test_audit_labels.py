"""The AI-labelled reference-audit set in data/audit_labels is well-formed and reproducible from its seed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from label_support import load_sample, read_rows

LABELS = Path(__file__).resolve().parents[1] / "data" / "audit_labels"
CATEGORIES = [
    "spelling", "real_word", "grammar", "truncated", "formatting",
    "non_caption", "low_detail", "off_consensus", "duplicate",
]
TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*")


def _rows(name: str) -> list[dict[str, str]]:
    return read_rows(LABELS / name)


def _sample_module():
    return load_sample(LABELS / "sample.py", "audit_labels_sample")


@pytest.fixture(scope="module")
def karpathy(shared_datasets: Path) -> list[dict]:
    return json.loads((shared_datasets / "coco-karpathy-test" / "coco_test.json").read_text(encoding="utf-8"))


def _texts(entries: list[dict]) -> dict[str, list[str]]:
    sample = _sample_module()
    return {sample.image_id_of(e["image"]): e["caption"] for e in entries}


def test_caption_labels_have_every_category_as_0_or_1():
    rows = _rows("captions.csv")
    assert list(rows[0]) == ["caption_id", "image_id", *CATEGORIES, "notes"]
    assert len(rows) >= 600
    for row in rows:
        for cat in CATEGORIES:
            assert row[cat] in {"0", "1"}, (row["caption_id"], cat, row[cat])


def test_caption_ids_are_unique_and_name_their_image():
    rows = _rows("captions.csv")
    ids = [r["caption_id"] for r in rows]
    assert len(set(ids)) == len(ids)
    for row in rows:
        assert re.fullmatch(r"[1-9]\d*#\d", row["caption_id"]), row["caption_id"]
        assert row["caption_id"].split("#")[0] == row["image_id"]


def test_every_category_but_truncated_has_positive_examples():
    rows = _rows("captions.csv")
    for cat in CATEGORIES:
        if cat != "truncated":  # none occurred among the 1,000 sampled captions (see NOTE.md)
            assert any(r[cat] == "1" for r in rows), cat


def test_word_types_are_labelled_typo_with_correction_or_valid_without():
    rows = _rows("word_types.csv")
    assert list(rows[0]) == ["word", "label", "correction", "count_in_sample", "in_dictionary", "note"]
    words = [r["word"] for r in rows]
    assert len(set(words)) == len(words)
    for row in rows:
        assert TOKEN.fullmatch(row["word"]), row["word"]
        assert row["label"] in {"typo", "valid"}
        assert bool(row["correction"]) == (row["label"] == "typo"), row["word"]
        assert int(row["count_in_sample"]) >= 1
        assert row["in_dictionary"] in {"0", "1"}
        if row["in_dictionary"] == "1":
            assert row["label"] == "typo", row["word"]


def test_caption_ids_exist_in_the_karpathy_file(karpathy):
    texts = _texts(karpathy)
    for row in _rows("captions.csv"):
        image_id, k = row["caption_id"].split("#")
        assert image_id in texts and int(k) < len(texts[image_id]), row["caption_id"]


def test_sample_is_reproducible_from_the_seed(karpathy):
    sample = _sample_module()
    ids = [r["caption_id"] for r in _rows("captions.csv")]
    assert sample.SEED == 2026
    assert len(sample.all_caption_ids(karpathy)) == 25_010
    assert sample.sample_ids(karpathy)[: len(ids)] == ids
    assert sample.sample_ids(karpathy, seed=2027)[: len(ids)] != ids


def test_label_files_hold_no_caption_text(karpathy):
    texts = _texts(karpathy)
    for row in _rows("captions.csv"):
        image_id, k = row["caption_id"].split("#")
        caption = texts[image_id][int(k)].strip().lower()
        assert len(row["notes"]) <= 120
        assert caption not in row["notes"].lower(), row["caption_id"]


def test_duplicate_label_marks_exactly_the_captions_repeated_within_their_image(karpathy):
    texts = _texts(karpathy)

    def norm(t: str) -> str:
        return " ".join(re.sub(r"[^\w\s]", " ", t.lower()).split())

    for row in _rows("captions.csv"):
        image_id, k = row["caption_id"].split("#")
        caps = texts[image_id]
        repeated = any(norm(c) == norm(caps[int(k)]) for j, c in enumerate(caps) if j != int(k))
        assert row["duplicate"] == str(int(repeated)), row["caption_id"]


def test_word_types_list_every_word_the_dictionary_does_not_know(karpathy):
    spellchecker = pytest.importorskip("spellchecker")
    texts = _texts(karpathy)
    counts: dict[str, int] = {}
    for row in _rows("captions.csv"):
        image_id, k = row["caption_id"].split("#")
        for word in TOKEN.findall(texts[image_id][int(k)].lower()):
            counts[word] = counts.get(word, 0) + 1
    unknown = spellchecker.SpellChecker().unknown(list(counts))
    rows = _rows("word_types.csv")
    assert {r["word"] for r in rows if r["in_dictionary"] == "0"} == unknown
    for row in rows:
        assert int(row["count_in_sample"]) == counts[row["word"]], row["word"]
        assert (row["in_dictionary"] == "1") == (row["word"] not in unknown), row["word"]


def test_corpus_word_types_are_well_formed_and_agree_with_the_sample_labels():
    rows = _rows("word_types_corpus.csv")
    assert list(rows[0]) == ["word", "label", "correction", "count_in_corpus", "note"]
    by_word = {r["word"]: r for r in rows}
    assert len(by_word) == len(rows)
    for row in rows:
        assert TOKEN.fullmatch(row["word"]), row["word"]
        assert row["label"] in {"typo", "valid"}
        assert bool(row["correction"]) == (row["label"] == "typo"), row["word"]
    for row in _rows("word_types.csv"):
        if row["in_dictionary"] == "0":
            corpus = by_word[row["word"]]
            assert (corpus["label"], corpus["correction"]) == (row["label"], row["correction"]), row["word"]
            assert int(corpus["count_in_corpus"]) >= int(row["count_in_sample"])


def test_corpus_word_types_list_every_unknown_word_of_the_karpathy_references(karpathy):
    spellchecker = pytest.importorskip("spellchecker")
    counts: dict[str, int] = {}
    for entry in karpathy:
        for caption in entry["caption"]:
            for word in TOKEN.findall(caption.lower()):
                counts[word] = counts.get(word, 0) + 1
    unknown = spellchecker.SpellChecker().unknown(list(counts))
    rows = _rows("word_types_corpus.csv")
    assert {r["word"] for r in rows} == unknown
    for row in rows:
        assert int(row["count_in_corpus"]) == counts[row["word"]], row["word"]
