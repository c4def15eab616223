"""Each caption format read from a small file the test writes: detection, forced formats, ids, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capeval.errors import InputError
from capeval.io import (
    FORMATS,
    InputWarning,
    check_candidates,
    detect_format,
    load_captions,
    write_coco_annotations,
    write_coco_results,
)
from capeval.records import CaptionSet


def _write(tmp_path: Path, name: str, content: str | object) -> Path:
    p = tmp_path / name
    if isinstance(content, str):
        p.write_text(content, encoding="utf-8")
    else:
        p.write_text(json.dumps(content), encoding="utf-8")
    return p


COCO_ANN = {
    "images": [{"id": 391895}, {"id": 60623}],
    "annotations": [
        {"image_id": 391895, "id": 770337, "caption": "A man with a red helmet on a small moped on a dirt road. "},
        {"image_id": 391895, "id": 771687, "caption": "Man riding a motor bike on a dirt road on the countryside."},
        {"image_id": 60623, "id": 772707, "caption": "A young girl inhales with the intent of blowing out a candle.\n"},
    ],
}


def test_coco_annotations_keep_annotation_ids_and_raw_text(tmp_path: Path) -> None:
    p = _write(tmp_path, "refs.json", COCO_ANN)
    caps = load_captions(p)
    assert caps.format == "coco-annotations"
    assert [c.caption_id for c in caps] == ["770337", "771687", "772707"]
    assert [c.image_id for c in caps] == ["391895", "391895", "60623"]
    assert caps[0].text.endswith("road. ")  # trailing space kept
    assert caps[2].text.endswith("candle.\n")  # newline kept
    assert caps.name == "refs" and caps.path == str(p)
    assert caps[0].source == "refs"


def test_coco_results_number_captions_per_image(tmp_path: Path) -> None:
    p = _write(tmp_path, "res.json", [{"image_id": 391895, "caption": "a man on a bike"},
                                      {"image_id": "60623", "caption": "a girl and a cake"}])
    caps = load_captions(p, name="sys")
    assert caps.format == "coco-results"
    assert [(c.caption_id, c.image_id) for c in caps] == [("391895#0", "391895"), ("60623#0", "60623")]
    assert caps.name == "sys" and caps[0].source == "sys"


def _karpathy() -> dict:
    return {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg", "cocoid": 391895, "split": "test",
         "sentences": [{"raw": "A man riding a moped.", "sentid": 770337, "tokens": ["a"]},
                       {"raw": "Man on a motor bike.", "sentid": 771687, "tokens": ["m"]}]},
        {"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "cocoid": 9, "split": "train",
         "sentences": [{"raw": "Food in bowls.", "sentid": 1, "tokens": ["f"]}]},
        {"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "cocoid": 42, "split": "restval",
         "sentences": [{"raw": "A dog.", "sentid": 2, "tokens": ["d"]}]},
    ]}


def test_karpathy_uses_sentid_and_filters_splits(tmp_path: Path) -> None:
    p = _write(tmp_path, "dataset_coco.json", _karpathy())
    assert detect_format(p) == "karpathy"
    allcaps = load_captions(p)
    assert [c.caption_id for c in allcaps] == ["770337", "771687", "1", "2"]
    test = load_captions(p, split="test")
    assert test.image_ids() == ["391895"] and len(test) == 2
    assert load_captions(p, split="train+restval").image_ids() == ["9", "42"]


def test_karpathy_unknown_split_lists_the_splits_found(tmp_path: Path) -> None:
    p = _write(tmp_path, "dataset_coco.json", _karpathy())
    with pytest.raises(InputError, match=r"no image in split 'tset'; splits found: restval, test, train"):
        load_captions(p, split="tset")


def test_split_on_a_non_karpathy_file_is_an_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "refs.json", COCO_ANN)
    with pytest.raises(InputError, match="applies to Karpathy files only"):
        load_captions(p, split="test")


def test_albef_list_ids_are_image_and_position(tmp_path: Path) -> None:
    p = _write(tmp_path, "coco_test.json", [
        {"image": "val2014/COCO_val2014_000000391895.jpg", "caption": ["first ", "second"]},
        {"image": "val2014/COCO_val2014_000000060623.jpg", "caption": "only one"},
    ])
    caps = load_captions(p)
    assert caps.format == "albef"
    assert [(c.caption_id, c.text) for c in caps] == [("391895#0", "first "), ("391895#1", "second"),
                                                      ("60623#0", "only one")]


def test_albef_train_entries_with_image_id_are_albef(tmp_path: Path) -> None:
    p = _write(tmp_path, "coco_train.json", [
        {"caption": "a man on a moped", "image": "train2014/COCO_train2014_000000203564.jpg",
         "image_id": "coco_203564"},
        {"caption": "a moped", "image": "train2014/COCO_train2014_000000203564.jpg", "image_id": "coco_203564"},
    ])
    caps = load_captions(p)
    assert caps.format == "albef"
    assert [(c.caption_id, c.image_id) for c in caps] == [("203564#0", "203564"), ("203564#1", "203564")]


def test_dict_single_and_multiple_captions(tmp_path: Path) -> None:
    p = _write(tmp_path, "sys.json", {"391895": "a man on a moped", "COCO_val2014_000000060623.jpg": ["a", "b"]})
    caps = load_captions(p)
    assert caps.format == "dict"
    assert [(c.caption_id, c.image_id) for c in caps] == [("391895#0", "391895"), ("60623#0", "60623"),
                                                          ("60623#1", "60623")]


def test_list_of_one_entry_dicts_is_read_as_dict(tmp_path: Path) -> None:
    p = _write(tmp_path, "llava.json", [{"391895": "The image features a man"}, {"60623": "A girl"}])
    caps = load_captions(p)
    assert caps.format == "dict"
    assert [c.caption_id for c in caps] == ["391895#0", "60623#0"]


def test_csv_with_quotes_commas_and_newlines(tmp_path: Path) -> None:
    p = _write(tmp_path, "caps.csv", 'image_id,caption\n391895,"a man, on a ""moped""\nsecond line"\n60623,a cake\n')
    caps = load_captions(p)
    assert caps.format == "csv"
    assert caps[0].text == 'a man, on a "moped"\nsecond line'
    assert [c.caption_id for c in caps] == ["391895#0", "60623#0"]


def test_csv_caption_id_column_is_used(tmp_path: Path) -> None:
    p = _write(tmp_path, "caps.csv", "caption_id,image_id,caption\nr1,391895,a man\nr2,391895,a bike\n")
    caps = load_captions(p)
    assert [(c.caption_id, c.image_id) for c in caps] == [("r1", "391895"), ("r2", "391895")]


def test_tsv_detected_from_tab_header_without_extension(tmp_path: Path) -> None:
    p = _write(tmp_path, "caps.txt", "image_id\tcaption\n391895\ta man, riding\n")
    assert detect_format(p) == "tsv"
    assert load_captions(p)[0].text == "a man, riding"


def test_jsonl_lines_with_optional_caption_id(tmp_path: Path) -> None:
    p = _write(tmp_path, "caps.jsonl", '{"image_id": 391895, "caption": "a man"}\n\n'
                                       '{"image_id": "60623", "caption": "a girl", "caption_id": "x7"}\n')
    caps = load_captions(p)
    assert caps.format == "jsonl"
    assert [c.caption_id for c in caps] == ["391895#0", "x7"]


def test_jsonl_detected_by_content_under_a_json_name(tmp_path: Path) -> None:
    p = _write(tmp_path, "caps.json", '{"image_id": 1, "caption": "a"}\n{"image_id": 2, "caption": "b"}\n')
    assert detect_format(p) == "jsonl"


def test_flickr8k_token_ids_and_bogus_key_warning(tmp_path: Path) -> None:
    p = _write(tmp_path, "Flickr8k.token.txt",
               "1000268201_693b08cb0e.jpg#0\tA child in a pink dress .\n"
               "1000268201_693b08cb0e.jpg#1\tA girl going into a wooden building .\n"
               "2258277193_586949ec62.jpg.1#0\tpeople waiting for the subway\n")
    assert detect_format(p) == "flickr8k-token"
    with pytest.warns(InputWarning, match=r"line 3: malformed Flickr8k key '2258277193_586949ec62\.jpg\.1#0'"):
        caps = load_captions(p)
    assert [(c.caption_id, c.image_id) for c in caps] == [
        ("1000268201_693b08cb0e#0", "1000268201_693b08cb0e"), ("1000268201_693b08cb0e#1", "1000268201_693b08cb0e"),
        ("2258277193_586949ec62#0", "2258277193_586949ec62")]


def test_flickr8k_bogus_key_kept_apart_when_the_real_image_exists(tmp_path: Path) -> None:
    p = _write(tmp_path, "tok.txt", "a_b.jpg#0\treal caption\na_b.jpg.1#0\tbogus caption\n")
    with pytest.warns(InputWarning, match="kept as image"):
        caps = load_captions(p, format="flickr8k-token")
    assert [c.caption_id for c in caps] == ["a_b#0", "a_b.jpg.1#0"]


def test_forced_format_overrides_detection(tmp_path: Path) -> None:
    # a header-less two-column TSV would be sniffed as Flickr8k tokens; forcing tsv reads the header instead
    p = _write(tmp_path, "caps.txt", "image_id\tcaption\nimg.jpg#1\tx\n")
    assert detect_format(p) == "tsv"
    q = _write(tmp_path, "tok.txt", "img.jpg#1\tx\n")
    assert detect_format(q) == "flickr8k-token"
    with pytest.raises(InputError, match="missing columns image_id, caption in the TSV header"):
        load_captions(q, format="tsv")


def test_forced_json_format_checks_the_structure(tmp_path: Path) -> None:
    p = _write(tmp_path, "sys.json", {"391895": "a man"})
    with pytest.raises(InputError, match=r"sys\.json, top level: expected a list of \{image_id, caption\} results"):
        load_captions(p, format="coco-results")


def test_image_id_normalisation_is_equivalent_across_formats(tmp_path: Path) -> None:
    forms = [391895, "391895", "000000391895", "COCO_val2014_000000391895.jpg", "val2014/COCO_val2014_000000391895.jpg"]
    for i, form in enumerate(forms):
        p = _write(tmp_path, f"r{i}.json", [{"image_id": form, "caption": "x"}])
        assert load_captions(p)[0].image_id == "391895", form
    p = _write(tmp_path, "a.json", [{"image": "COCO_val2014_000000391895.jpg", "caption": ["x"]}])
    assert load_captions(p).image_ids() == ["391895"]


def test_formats_lists_every_supported_name() -> None:
    assert list(FORMATS) == ["coco-annotations", "coco-results", "karpathy", "albef", "dict", "csv", "tsv", "jsonl",
                             "flickr8k-token"]


def test_coco_annotation_round_trip_keeps_ids(tmp_path: Path) -> None:
    src = load_captions(_write(tmp_path, "refs.json", COCO_ANN))
    out = write_coco_annotations(src, tmp_path / "out" / "ann.json")
    back = load_captions(out)
    assert [(c.caption_id, c.image_id, c.text) for c in back] == [(c.caption_id, c.image_id, c.text) for c in src]
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["images"] == [{"id": 391895}, {"id": 60623}]
    assert doc["annotations"][0] == {"image_id": 391895, "id": 770337, "caption": COCO_ANN["annotations"][0]["caption"]}


def test_coco_annotation_round_trip_keeps_string_ids(tmp_path: Path) -> None:
    src = CaptionSet.from_mapping({"1000268201_693b08cb0e": ["a", "b"], "007": "c"})
    back = load_captions(write_coco_annotations(src, tmp_path / "ann.json"))
    assert [(c.caption_id, c.image_id) for c in back] == [(c.caption_id, c.image_id) for c in src]


def test_coco_results_round_trip(tmp_path: Path) -> None:
    src = CaptionSet.from_mapping({"391895": "a man é", "60623": "a girl"})
    out = write_coco_results(src, tmp_path / "res.json")
    assert json.loads(out.read_text(encoding="utf-8")) == [{"image_id": 391895, "caption": "a man é"},
                                                           {"image_id": 60623, "caption": "a girl"}]
    back = load_captions(out)
    assert [(c.caption_id, c.text) for c in back] == [(c.caption_id, c.text) for c in src]


def test_check_candidates_accepts_one_caption_per_referenced_image() -> None:
    refs = CaptionSet.from_mapping({"1": ["a", "b"], "2": ["c"]}, name="refs")
    check_candidates(CaptionSet.from_mapping({"1": "x"}), refs)
    check_candidates(CaptionSet.from_mapping({"1": "x", "2": "y"}), refs, require_all=True)


def test_flickr8k_caption_id_matches_token_file_ids() -> None:
    from capeval.io import flickr8k_caption_id

    assert flickr8k_caption_id("2549968784_39bfbe44f9.jpg#2") == "2549968784_39bfbe44f9#2"
    assert flickr8k_caption_id("2258277193_586949ec62.jpg.1#0") == "2258277193_586949ec62#0"
    with pytest.raises(ValueError, match="expected a Flickr8k caption id"):
        flickr8k_caption_id("2549968784_39bfbe44f9.jpg")


def test_misspelt_dataset_name_gets_a_suggestion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"did you mean the dataset 'coco-karpathy-test'"):
        load_captions("coco-karpathy-tst")


def test_bom_and_crlf_line_endings_are_file_syntax_not_caption_text(tmp_path: Path) -> None:
    p = tmp_path / "caps.csv"
    p.write_bytes("\ufeffimage_id,caption\r\n1,a cat \r\n2,a dog\r\n".encode())
    assert [c.text for c in load_captions(p)] == ["a cat ", "a dog"]
    q = tmp_path / "tok.txt"
    q.write_bytes(b"a.jpg#0\tone .\r\na.jpg#1\ttwo .\r\n")
    assert [c.text for c in load_captions(q)] == ["one .", "two ."]
    r = tmp_path / "c.jsonl"
    r.write_bytes(b'{"image_id": 1, "caption": "x\\r"}\r\n{"image_id": 2, "caption": "y"}\r\n')
    assert [c.text for c in load_captions(r)] == ["x\r", "y"]
