"""Bad input gives one InputError naming the file, the place (line or JSON path) and what was expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capeval.errors import InputError
from capeval.io import check_candidates, detect_format, load_captions
from capeval.records import CaptionSet


def _write(tmp_path: Path, name: str, content: str | bytes | object) -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif isinstance(content, str):
        p.write_text(content, encoding="utf-8")
    else:
        p.write_text(json.dumps(content, indent=1), encoding="utf-8")
    return p


def _error(path: Path, **kw: object) -> InputError:
    with pytest.raises(InputError) as info:
        load_captions(path, **kw)  # type: ignore[arg-type]
    return info.value


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    p = _write(tmp_path, "broken.json", '{\n  "391895": "a man",\n  "60623": "a girl"\n  "1": "x"\n}\n')
    err = _error(p)
    assert str(err).startswith(f"{p}, line 4, column 3: malformed JSON: Expecting ',' delimiter")
    assert err.path == str(p) and err.where == "line 4, column 3"


def test_non_utf8_bytes_name_byte_offset_and_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "latin1.tsv", "image_id\tcaption\n1\tcaf".encode() + b"\xe9 au lait\n")
    msg = str(_error(p))
    assert msg.startswith(f"{p}, line 2, column 6: byte b'\\xe9' at byte offset 22 is not valid UTF-8")
    assert "expected UTF-8 text" in msg


def test_unknown_format_name_lists_the_known_ones(tmp_path: Path) -> None:
    p = _write(tmp_path, "x.json", {"1": "a"})
    msg = str(_error(p, format="coco"))
    assert "unknown format 'coco'; expected one of: coco-annotations, coco-results, karpathy" in msg
    assert str(p) in msg


def test_unrecognised_content_says_which_formats_are_expected(tmp_path: Path) -> None:
    p = _write(tmp_path, "notes.txt", "just some words\n")
    with pytest.raises(InputError, match=r"notes\.txt: cannot recognise the caption format .*expected one of: "
                                         r"coco-annotations.*--format"):
        detect_format(p)


def test_empty_reference_caption_names_its_json_path(tmp_path: Path) -> None:
    anns = [{"image_id": 1, "id": i, "caption": "a cat"} for i in range(20)]
    anns[17]["caption"] = "  \n"
    p = _write(tmp_path, "refs.json", {"images": [{"id": 1}], "annotations": anns})
    err = _error(p)
    assert err.where == "annotations[17].caption"
    assert str(err).startswith(f"{p}, annotations[17].caption: empty caption '  \\n'; expected a non-empty caption")
    assert "allow_empty=True" in str(err)


def test_allow_empty_reads_empty_captions_for_the_audit(tmp_path: Path) -> None:
    p = _write(tmp_path, "refs.json", [{"image": "COCO_val2014_000000000001.jpg", "caption": ["a cat", ""]}])
    caps = load_captions(p, allow_empty=True)
    assert [c.text for c in caps] == ["a cat", ""]


def test_empty_caption_in_albef_and_dict_lists_names_nested_path(tmp_path: Path) -> None:
    p = _write(tmp_path, "a.json", [{"image": "x.jpg", "caption": ["fine"]},
                                    {"image": "y.jpg", "caption": ["ok", " "]}])
    assert _error(p).where == "[1].caption[1]"
    q = _write(tmp_path, "d.json", {"391895": ["ok", ""]})
    assert _error(q).where == '["391895"][1]'


def test_empty_caption_in_line_formats_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "caps.csv", "image_id,caption\n1,a cat\n2,\n")
    err = _error(p)
    assert err.where == "line 3" and "empty caption" in str(err)
    q = _write(tmp_path, "tok.txt", "a.jpg#0\tone\na.jpg#1\t \n")
    assert _error(q).where == "line 2"


def test_missing_csv_column_lists_what_was_found(tmp_path: Path) -> None:
    p = _write(tmp_path, "caps.csv", "img,text\n1,a cat\n")
    msg = str(_error(p))
    assert msg.startswith(f"{p}, line 1: missing columns image_id, caption in the CSV header")
    assert "found 'img', 'text'" in msg


def test_csv_row_with_wrong_field_count_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "caps.csv", "image_id,caption\n1,a cat\n2,a dog,extra\n")
    assert str(_error(p)).startswith(f"{p}, line 3: expected 2 fields as in the header (image_id, caption), found 3")


def test_missing_key_in_coco_annotation_names_the_entry(tmp_path: Path) -> None:
    p = _write(tmp_path, "refs.json", {"images": [], "annotations": [{"image_id": 1, "id": 1, "caption": "a"},
                                                                      {"image_id": 1, "id": 2}]})
    assert str(_error(p)).startswith(f"{p}, annotations[1]: missing key 'caption'; expected an annotation with "
                                     "image_id, id and caption")


def test_caption_of_wrong_type_names_the_path(tmp_path: Path) -> None:
    p = _write(tmp_path, "res.json", [{"image_id": 1, "caption": "a"}, {"image_id": 2, "caption": 5}])
    assert str(_error(p)) == f"{p}, [1].caption: expected a caption string, got number"


def test_bad_image_id_type_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "res.json", [{"image_id": None, "caption": "a"}])
    assert "expected an image id (a string or a non-negative integer), got null" in str(_error(p))


def test_duplicate_annotation_ids_are_rejected(tmp_path: Path) -> None:
    p = _write(tmp_path, "refs.json", {"annotations": [{"image_id": 1, "id": 5, "caption": "a"},
                                                       {"image_id": 2, "id": 5, "caption": "b"}]})
    assert str(_error(p)) == f"{p}, annotations[1].caption: duplicate caption id '5'; expected each caption id once"


def test_duplicate_json_keys_in_a_dict_file_are_rejected(tmp_path: Path) -> None:
    p = _write(tmp_path, "sys.json", '{"391895": "first", "60623": "x", "391895": "second"}')
    msg = str(_error(p))
    assert msg.startswith(f'{p}, ["391895"]: image id \'391895\' appears more than once')
    assert "JSON keeps only the last" in msg


def test_malformed_jsonl_line_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "c.jsonl", '{"image_id": 1, "caption": "a"}\n{"image_id": 2, "caption": }\n')
    assert str(_error(p)).startswith(f"{p}, line 2, column 28: malformed JSON")


def test_malformed_flickr_line_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "tok.txt", "a.jpg#0\tone\na.jpg 1 two\n")
    assert str(_error(p, format="flickr8k-token")).startswith(
        f"{p}, line 2: expected '<image>.jpg#<k><TAB><caption>'")


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    assert "file not found" in str(_error(tmp_path / "nope.json"))
    assert "empty file" in str(_error(_write(tmp_path, "e.json", "  \n")))
    assert "no captions" in str(_error(_write(tmp_path, "l.json", "[]")))


def test_candidates_without_references_are_listed() -> None:
    refs = CaptionSet.from_mapping({"1": ["a", "b"], "2": ["c"]}, name="refs")
    cands = CaptionSet.from_mapping({"1": "x", "3": "y", "4": "z"}, name="sys")
    cands.path = "sys.json"
    with pytest.raises(InputError) as info:
        check_candidates(cands, refs)
    msg = str(info.value)
    assert msg.startswith("sys.json: 2 of 3 candidate images have no reference captions in refs: '3', '4'")
    assert "expected every candidate image id in the references" in msg


def test_duplicate_candidates_for_one_image_are_rejected() -> None:
    refs = CaptionSet.from_mapping({"1": ["a"], "2": ["b"]}, name="refs")
    cands = CaptionSet.from_mapping({"1": ["x", "y"], "2": "z"}, name="sys")
    with pytest.raises(InputError, match=r"sys: 1 images have more than one candidate caption: '1' \(image '1' has 2: "
                                         r"'1#0', '1#1'\); expected exactly one candidate per image"):
        check_candidates(cands, refs)


def test_duplicate_candidates_from_a_list_of_dicts_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "llava.json", [{"1": "x"}, {"2": "y"}, {"1": "again"}])
    refs = CaptionSet.from_mapping({"1": ["a"], "2": ["b"]}, name="refs")
    with pytest.raises(InputError, match=r"llava\.json: 1 images have more than one candidate"):
        check_candidates(load_captions(p), refs)


def test_require_all_reports_reference_images_without_candidates() -> None:
    refs = CaptionSet.from_mapping({"1": ["a"], "2": ["b"]}, name="refs")
    with pytest.raises(InputError, match=r"1 of 2 reference images have no candidate: '2'"):
        check_candidates(CaptionSet.from_mapping({"1": "x"}, name="sys"), refs, require_all=True)
