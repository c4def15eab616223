"""Streaming readers (capeval.io.stream): same captions, ids and one-line errors as the whole-file readers, in
bounded chunks, per format and over shard lists."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from capeval.errors import InputError
from capeval.io import load_captions
from capeval.io.stream import expand_sources, iter_captions

ROWS = [("COCO_val2014_000000391895.jpg", "A man, riding a bike."), ("391895", 'He says "hi"\nthere'),
        ("42", "A dog."), ("7", "A cat on a mat"), ("42", "Another dog")]


def _read(src, **kw) -> list:
    return [c for chunk in iter_captions(src, **kw) for c in chunk]


def _write_jsonl(path: Path, rows, ids: bool = False) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for k, (img, cap) in enumerate(rows):
            obj = {"image_id": img, "caption": cap}
            if ids:
                obj["caption_id"] = f"c{k}"
            fh.write(json.dumps(obj) + "\n")
    return path


def _write_delimited(path: Path, rows, delim: str) -> Path:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=delim)
        w.writerow(["image_id", "caption"])
        w.writerows(rows)
    return path


@pytest.mark.parametrize("ext,delim", [(".jsonl", None), (".csv", ","), (".tsv", "\t")])
def test_line_formats_equal_whole_file_reader_in_bounded_chunks(tmp_path: Path, ext: str, delim: str | None) -> None:
    rows = ROWS * 3
    p = tmp_path / f"caps{ext}"
    _write_jsonl(p, rows) if delim is None else _write_delimited(p, rows, delim)
    chunks = list(iter_captions(p, chunk_size=4))
    assert [len(c) for c in chunks] == [4, 4, 4, 3]
    assert [c for ch in chunks for c in ch] == load_captions(p).captions
    assert chunks[0].captions[0].image_id == "391895" and chunks[0].captions[1].caption_id == "391895#1"


def test_parquet_in_batches_matches_jsonl(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"Image_ID": [r[0] for r in ROWS], "caption": [r[1] for r in ROWS]}),
                   tmp_path / "caps.parquet", row_group_size=2)
    got = _read(tmp_path / "caps.parquet", chunk_size=2)
    want = load_captions(_write_jsonl(tmp_path / "caps.jsonl", ROWS)).captions
    assert [(c.caption_id, c.image_id, c.text) for c in got] == [(c.caption_id, c.image_id, c.text) for c in want]
    pq.write_table(pa.table({"image_id": [1, 2], "caption": [["a b", "c d"], ["e"]], "x": [0, 0]}),
                   tmp_path / "lists.parquet")
    assert [(c.caption_id, c.text) for c in _read(tmp_path / "lists.parquet")] == [
        ("1#0", "a b"), ("1#1", "c d"), ("2#0", "e")]


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_webdataset_tar_samples(tmp_path: Path) -> None:
    p = _tar(tmp_path / "shard-000.tar", {
        "000000391895.jpg": b"\xff\xd8 not read", "000000391895.txt": b"A man riding a bike.\n",
        "s/000007.json": json.dumps({"caption": ["a cat", "a cat on a mat"]}).encode(),
        "x9.txt": "Un caf\u00e9.".encode(), "x9.json": json.dumps({"image_id": 42, "caption_id": "c-9"}).encode()})
    got = [(c.caption_id, c.image_id, c.text) for c in _read(p)]
    assert got == [("391895#0", "391895", "A man riding a bike."), ("7#0", "7", "a cat"), ("7#1", "7", "a cat on a mat"),
                   ("c-9", "42", "Un caf\u00e9.")]
    bad = _tar(tmp_path / "bad.tar", {"a.jpg": b"x", "a.cls": b"1"})
    with pytest.raises(InputError, match=r"bad\.tar, sample 'a': no caption; expected a a\.txt or a\.json member"):
        _read(bad)


def test_shard_list_reads_as_concatenation(tmp_path: Path) -> None:
    a = _write_jsonl(tmp_path / "part-000.jsonl", ROWS[:3])
    b = _write_jsonl(tmp_path / "part-001.jsonl", ROWS[3:])
    whole = load_captions(_write_jsonl(tmp_path / "all.jsonl", ROWS)).captions
    key = [(c.caption_id, c.image_id, c.text) for c in whole]
    for src in ([a, b], str(tmp_path / "part-*.jsonl")):
        assert [(c.caption_id, c.image_id, c.text) for c in _read(src)] == key
    assert expand_sources(str(tmp_path / "part-*.jsonl")) == [str(a), str(b)]
    with pytest.raises(InputError, match="no file matches this pattern"):
        expand_sources(str(tmp_path / "nothing-*.jsonl"))
    c = _write_jsonl(tmp_path / "ids-0.jsonl", ROWS[:2], ids=True)
    with pytest.raises(InputError, match=r"ids-0\.jsonl, line 1: duplicate caption id 'c0'"):
        _read([c, c])


@pytest.mark.parametrize("name,content", [
    ("bad.jsonl", b'{"image_id": 1, "caption": "ok"}\n{"image_id": 2, "caption": \n'),
    ("keys.jsonl", b'{"image_id": 1, "caption": "ok"}\n{"image": 2, "caption": "x"}\n'),
    ("utf.jsonl", b'{"image_id": 1, "caption": "ok"}\n{"image_id": 2, "caption": "caf\xe9"}\n'),
    ("empty.jsonl", b"\n  \n"),
    ("nocol.csv", b"image,caption\n1,a\n"),
    ("width.csv", b"image_id,caption\n1,a\n2,b,c\n"),
    ("blank.csv", b""),
    ("emptycap.tsv", b"image_id\tcaption\n1\t \n"),
])
def test_bad_input_same_one_line_error_as_whole_file_reader(tmp_path: Path, name: str, content: bytes) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(InputError) as whole:
        load_captions(p)
    with pytest.raises(InputError) as streamed:
        _read(p)
    assert str(streamed.value) == str(whole.value)
    assert "\n" not in str(streamed.value) and str(p) in str(streamed.value)


def test_parquet_errors(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"image": [1], "caption": ["a"]}), tmp_path / "nocol.parquet")
    with pytest.raises(InputError, match=r"nocol\.parquet, schema: missing column image_id in the Parquet schema"):
        _read(tmp_path / "nocol.parquet")
    pq.write_table(pa.table({"image_id": [1, 2], "caption": ["a", None]}), tmp_path / "null.parquet")
    with pytest.raises(InputError, match=r"null\.parquet, row 1: expected a caption string, got null"):
        _read(tmp_path / "null.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"junk\.parquet: not a readable Parquet file"):
        _read(tmp_path / "junk.parquet")


def test_whole_file_formats_still_read(shared_datasets: Path) -> None:
    """COCO/Karpathy JSON is read whole and chunked: same captions as load_captions."""
    p = shared_datasets / "coco-karpathy-test" / "coco_test.json"
    chunks = list(iter_captions(p, chunk_size=10_000))
    assert [len(c) for c in chunks] == [10_000, 10_000, 5010]
    assert [c for ch in chunks for c in ch] == load_captions(p).captions
