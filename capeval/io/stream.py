"""Streaming caption readers: JSONL, CSV/TSV, Parquet and WebDataset-style tar shards read in bounded chunks, from one
file, a folder, a glob or a list of shards, so a corpus larger than memory can be audited and scored.

Chunks are CaptionSets of at most `chunk_size` captions. Caption ids and image ids follow the rules of the
whole-file readers (`capeval.io.load_captions`): the file's caption id where it has one, else `<image_id>#<k>` in
order of appearance, image ids normalised; bad input raises the same one-line InputError naming the file, the line
(or row, or tar member) and what was expected. A list of shards reads as their concatenation: `<image_id>#<k>`
numbering continues across shards and a caption id seen in an earlier shard is a duplicate. Other formats (COCO,
Karpathy, ALBEF, dict JSON, Flickr8k tokens) are read whole, one file at a time, and then chunked.

Memory: the chunk being built, plus the caption ids seen so far (to reject duplicates exactly) and a counter per
image id (to number captions): a few tens of bytes per caption, not the captions themselves.
"""

from __future__ import annotations

import glob
import json
import os
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from capeval.errors import InputError
from capeval.io import readers
from capeval.io._source import type_name
from capeval.records import CaptionSet

#: streamed formats -> what they look like
STREAM_FORMATS: dict[str, str] = {
    "jsonl": 'JSON lines: {"image_id", "caption"[, "caption_id"]} per line (caption may be a list)',
    "csv": "CSV with a header: image_id,caption[,caption_id]",
    "tsv": "TSV with a header: image_id<TAB>caption[<TAB>caption_id]",
    "parquet": "Parquet with columns image_id, caption[, caption_id] (read one row group batch at a time)",
    "webdataset": "tar shard of samples <key>.txt (the caption) and/or <key>.json ({caption[, image_id, "
                  "caption_id]}); image id = the json's image_id, else the key",
}
_BY_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet",
              ".pq": "parquet", ".tar": "webdataset"}
DEFAULT_CHUNK = 50_000


def expand_sources(sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files named by a path, a folder (its caption files, sorted), a glob (`shards/part-*.jsonl`) or a list of
    those, in the order given (glob and folder matches sorted). Nothing matching is an InputError."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not items:
        raise InputError("no caption files given")
    out: list[str] = []
    for item in items:
        s = str(item)
        if os.path.isdir(s):
            found = sorted(str(p) for p in Path(s).iterdir() if p.is_file() and p.suffix.lower() in _BY_SUFFIX)
            if not found:
                raise InputError(f"folder has no caption shards; expected files ending in {', '.join(_BY_SUFFIX)}",
                                 path=s)
            out += found
        elif any(ch in s for ch in "*?[") and not os.path.exists(s):
            found = sorted(p for p in glob.glob(s) if os.path.isfile(p))
            if not found:
                raise InputError("no file matches this pattern; expected at least one caption shard", path=s)
            out += found
        elif not os.path.exists(s) and _is_dataset_name(s):
            from capeval.datasets import resolve

            out.append(str(resolve(s)))
        else:
            out.append(s)
    return out


def check_sources(sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """`expand_sources`, then every file must exist: checked before any work starts (an engine start-up included)."""
    paths = expand_sources(sources)
    for p in paths:
        _check_file(p)
    return paths


def _is_dataset_name(s: str) -> bool:
    from capeval.datasets import REGISTRY

    return s in REGISTRY


def source_name(sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> str:
    """The name a corpus is reported under: a dataset name kept whole, else the first file's stem."""
    first = str(sources if isinstance(sources, (str, os.PathLike)) else next(iter(sources), ""))
    if not os.path.exists(first) and _is_dataset_name(first):
        return first
    from capeval.io.load import system_name

    return system_name(first)  # caption extension only: "runs/internvl2-2b.v1" stays internvl2-2b.v1


def stream_format(path: str, format: str | None = None) -> str | None:
    """The streamed format of a file (forced by `format`, else from its extension), or None: read it whole."""
    if format is not None:
        return format if format in STREAM_FORMATS else None
    return _BY_SUFFIX.get(Path(path).suffix.lower())


def iter_captions(sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, format: str | None = None,
                  name: str | None = None, allow_empty: bool = False, chunk_size: int = DEFAULT_CHUNK
                  ) -> Iterator[CaptionSet]:
    """Yield the captions of `sources` (see `expand_sources`) as CaptionSets of at most `chunk_size` captions, in
    file order. `format` forces one format for every file (a key of STREAM_FORMATS or of capeval.io.FORMATS)."""
    from capeval.io.load import FORMATS

    if chunk_size < 1:
        raise InputError(f"chunk size must be at least 1, got {chunk_size}")
    if format is not None and format not in STREAM_FORMATS and format not in FORMATS:
        raise InputError(f"unknown format {format!r}; expected one of: "
                         f"{', '.join(dict.fromkeys([*STREAM_FORMATS, *FORMATS]))}")
    paths = expand_sources(sources)
    name = name if name is not None else source_name(sources)
    b = readers.Builder(paths[0], name, allow_empty)
    for p in paths:
        fmt = stream_format(p, format)
        b.path = p
        if fmt is None:
            yield from _whole_file(p, format, name, allow_empty, b, chunk_size)
            continue
        _check_file(p)
        before = len(b._ids)
        reader = _READERS[fmt]
        for _ in reader(p, b, format is None):
            if len(b.captions) >= chunk_size:
                yield _flush(b, p, fmt, name)
        if b.captions:
            yield _flush(b, p, fmt, name)
        if len(b._ids) == before:
            raise InputError(f"no captions found; expected {STREAM_FORMATS[fmt]}", path=p)


def _flush(b: readers.Builder, path: str, fmt: str, name: str) -> CaptionSet:
    chunk = CaptionSet(b.captions, name=name, path=path, format=fmt)
    b.captions = []
    return chunk


def _whole_file(p: str, format: str | None, name: str, allow_empty: bool, b: readers.Builder, chunk_size: int
                ) -> Iterator[CaptionSet]:
    """A whole-file format: read with load_captions, reject ids seen in earlier shards, yield in chunks."""
    from capeval.io.load import load_captions

    cs = load_captions(p, format=format, name=name, allow_empty=allow_empty)
    for c in cs.captions:
        if c.caption_id in b._ids:
            raise InputError(f"duplicate caption id {c.caption_id!r} (already in an earlier shard); expected each "
                             "caption id once", path=p)
        b._ids.add(c.caption_id)
    for i in range(0, len(cs), chunk_size):
        yield CaptionSet(cs.captions[i:i + chunk_size], name=name, path=p, format=cs.format)


def _check_file(p: str) -> None:
    if not os.path.exists(p):
        raise InputError("file not found; expected a caption file or a dataset name (see `capeval data list`)", path=p)
    if os.path.isdir(p):
        raise InputError("is a folder; expected a caption file", path=p)


# --------------------------------------------------------------------------------------------- text lines


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its terminator) of a UTF-8 file (BOM allowed); bad bytes -> the InputError
    of `capeval.io._source.read_text`, with byte offset, line and column."""
    offset = 0
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below; a generator)
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror})", path=path) from None
    with fh:
        for n, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = raw[exc.start:exc.start + 1]
                raise InputError(f"byte {bad!r} at byte offset {offset + exc.start} is not valid UTF-8; expected "
                                 "UTF-8 text (re-save the file as UTF-8)", path=path,
                                 where=f"line {n}, column {exc.start + 1}") from None
            if n == 1 and line.startswith("\ufeff"):
                line = line[1:]
            offset += len(raw)
            yield n, line


def _empty_file(path: str) -> InputError:
    from capeval.io.load import FORMATS

    return InputError(f"empty file; expected captions in one of the formats: {', '.join(FORMATS)}", path=path)


def _read_jsonl(path: str, b: readers.Builder, detected: bool) -> Iterator[None]:
    """JSON lines, one object per line, exactly as `readers.read_jsonl` reads them (same messages)."""
    blank = True
    for n, line in _lines(path):
        if not line.strip():
            continue
        blank = False
        if line.endswith("\n"):
            line = line[:-1]  # as text.split("\n"): json's column numbers then agree
        readers.add_jsonl_line(b, n, line)
        yield None
    if blank and detected:
        raise _empty_file(path)


def _read_delimited(path: str, b: readers.Builder, delimiter: str, fmt: str, detected: bool) -> Iterator[None]:
    """CSV/TSV with a header, exactly as `readers.read_delimited` reads them (same messages)."""
    import csv

    fail = readers._fail
    numbered = _lines(path)
    lines = (line for _, line in numbered)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        if detected:
            raise _empty_file(path) from None
        raise fail(b.path, "line 1", f"empty file; {readers._COLUMNS_HINT}") from None
    except csv.Error as exc:
        raise fail(b.path, "line 1", f"malformed {fmt.upper()} ({exc}); {readers._COLUMNS_HINT}") from None
    yield from readers.add_delimited_rows(reader, header, b, fmt)


# --------------------------------------------------------------------------------------------- Parquet

_PARQUET_HINT = "expected columns image_id and caption (optional caption_id)"
PARQUET_BATCH = 8192


def _read_parquet(path: str, b: readers.Builder, detected: bool) -> Iterator[None]:
    """Parquet, one record batch at a time (never the whole file); caption may be a string or a list of strings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({str(exc).splitlines()[0]}); {_PARQUET_HINT}",
                         path=path) from None
    names = {n.strip().lower(): n for n in pf.schema_arrow.names}
    missing = [c for c in ("image_id", "caption") if c not in names]
    if missing:
        found = ", ".join(repr(n) for n in pf.schema_arrow.names[:10]) or "nothing"
        raise InputError(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} in the Parquet "
                         f"schema; {_PARQUET_HINT}; found {found}", path=path, where="schema")
    cols = [names["image_id"], names["caption"]] + ([names["caption_id"]] if "caption_id" in names else [])
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH, columns=cols):
            imgs = batch.column(0).to_pylist()
            caps = batch.column(1).to_pylist()
            cids = batch.column(2).to_pylist() if len(cols) == 3 else [None] * len(imgs)
            for img, cap, cid in zip(imgs, caps, cids):
                if isinstance(cap, list):
                    for k, t in enumerate(cap):
                        b.add(img, t, lambda row=row, k=k: f"row {row}, caption[{k}]")
                else:
                    b.add(img, cap, lambda row=row: f"row {row}", cid)
                row += 1
                yield None
    except pa.ArrowException as exc:
        raise InputError(f"not a readable Parquet file ({str(exc).splitlines()[0]}); {_PARQUET_HINT}",
                         path=path, where=f"row {row}") from None


# --------------------------------------------------------------------------------------------- WebDataset tar


def _wds_key(member: str) -> tuple[str, str]:
    """WebDataset convention: `dir/000123.txt` -> key `dir/000123`, extension `txt` (extension = after the first
    dot of the file name)."""
    d, _, base = member.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{d}/{stem}" if d else stem), ext.lower()


def _read_webdataset(path: str, b: readers.Builder, detected: bool) -> Iterator[None]:
    """A tar shard of WebDataset samples: consecutive members sharing a key form one sample; its caption is the
    `.txt` member (line terminators at the end dropped) or the `.json` member's `caption`; image files are skipped
    unread."""
    fail = readers._fail
    try:
        tf = tarfile.open(path, mode="r|*")
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"not a readable tar file ({exc}); expected a WebDataset shard of <key>.txt/<key>.json "
                         "samples", path=path) from None
    current: str | None = None
    sample: dict[str, tuple[str, bytes]] = {}

    def emit(key: str, parts: dict[str, tuple[str, bytes]]) -> None:
        meta: dict[str, object] = {}
        if "json" in parts:
            member, data = parts["json"]
            try:
                obj = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise fail(path, f"member {member}", f"not valid UTF-8 JSON ({exc}); expected an object with "
                           "caption (optional image_id, caption_id)") from None
            if not isinstance(obj, dict):
                raise fail(path, f"member {member}", f"expected a JSON object with caption, got {type_name(obj)}")
            meta = obj
        img = meta.get("image_id", key.rpartition("/")[2])
        if "txt" in parts:
            member, data = parts["txt"]
            try:
                text: object = data.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise fail(path, f"member {member}", f"byte {data[exc.start:exc.start + 1]!r} at byte offset "
                           f"{exc.start} is not valid UTF-8; expected UTF-8 text") from None
            b.add(img, text, lambda m=member: f"member {m}", meta.get("caption_id"))
        elif "json" in parts:
            member = parts["json"][0]
            if "caption" not in meta:
                keys = ", ".join(list(meta)[:8]) or "none"
                raise fail(path, f"member {member}", f"missing key 'caption'; expected an object with caption "
                           f"(optional image_id, caption_id) or a {key}.txt member (keys found: {keys})")
            caps = meta["caption"]
            if isinstance(caps, list):
                for k, t in enumerate(caps):
                    b.add(img, t, lambda m=member, k=k: f"member {m}, caption[{k}]")
            else:
                b.add(img, caps, lambda m=member: f"member {m}", meta.get("caption_id"))
        else:
            found = ", ".join(sorted(parts)) or "nothing"
            raise fail(path, f"sample {key!r}", f"no caption; expected a {key}.txt or {key}.json member "
                       f"(found: {found})")

    with tf:
        try:
            for m in tf:
                if not m.isfile():
                    continue
                key, ext = _wds_key(m.name)
                if key != current:
                    if current is not None:
                        emit(current, sample)
                        yield None
                    current, sample = key, {}
                if ext in ("txt", "json"):
                    fh = tf.extractfile(m)
                    sample[ext] = (m.name, fh.read() if fh is not None else b"")
                else:
                    sample.setdefault(ext, (m.name, b""))  # present, not read
        except tarfile.TarError as exc:
            raise InputError(f"not a readable tar file ({exc}); expected a WebDataset shard", path=path) from None
        if current is not None:
            emit(current, sample)
            yield None


_READERS: dict[str, Callable[[str, readers.Builder, bool], Iterator[None]]] = {
    "jsonl": _read_jsonl,
    "csv": lambda p, b, d: _read_delimited(p, b, ",", "csv", d),
    "tsv": lambda p, b, d: _read_delimited(p, b, "\t", "tsv", d),
    "parquet": _read_parquet,
    "webdataset": _read_webdataset,
}
