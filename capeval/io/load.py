"""Format detection and the single entry point `load_captions`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from capeval.errors import InputError
from capeval.io import readers
from capeval.io._source import ParsedJSON, parse_json, read_text, type_name
from capeval.records import CaptionSet

FORMATS: dict[str, str] = {
    "coco-annotations": 'COCO caption annotations: {"images": [...], "annotations": [{"image_id", "id", "caption"}]}',
    "coco-results": 'COCO results (pycocoevalcap): [{"image_id", "caption"}]',
    "karpathy": 'Karpathy dataset_coco.json: {"images": [{"cocoid"|"filename", "split", "sentences": [{"raw", '
                '"sentid"}]}]}',
    "albef": 'ALBEF/BLIP list: [{"image": "val2014/COCO_val2014_...jpg", "caption": [...]}]',
    "dict": '{"<image_id>": "caption" | ["captions"]}, or a list of such objects',
    "csv": "CSV with a header: image_id,caption[,caption_id]",
    "tsv": "TSV with a header: image_id<TAB>caption[<TAB>caption_id]",
    "jsonl": 'JSON lines: {"image_id", "caption"[, "caption_id"]} per line',
    "flickr8k-token": "Flickr8k.token.txt: <image>.jpg#<k><TAB><caption>",
}
#: registry format hints of judgment sets (loaded by capeval.meta.judgments, not as captions)
_JUDGMENT_FORMATS = ("flickr8k-expert", "flickr8k-crowdflower", "thumb", "expert-json")
_JSON_FORMATS = ("coco-annotations", "coco-results", "karpathy", "albef", "dict")


def _unknown(path: str, what: str) -> InputError:
    return InputError(f"cannot recognise the caption format ({what}); expected one of: {', '.join(FORMATS)} "
                      "(force one with format=... / --format)", path=path)


def _json_kind(value: object, path: str) -> str:
    if isinstance(value, dict):
        if "annotations" in value:
            return "coco-annotations"
        images = value.get("images")
        if isinstance(images, list) and (not images or (isinstance(images[0], dict) and "sentences" in images[0])):
            return "karpathy"
        if value and all(v is None or isinstance(v, (str, list, int, float)) for v in value.values()):
            return "dict"  # a non-string value is then reported by the reader under its key
        raise _unknown(path, "a JSON object without 'annotations', Karpathy 'images' or {image_id: caption} values")
    if isinstance(value, list):
        if not value:
            raise InputError("empty JSON list: no captions; expected at least one caption", path=path)
        first = value[0]
        if isinstance(first, dict):
            if "caption" in first and "image" in first:  # before coco-results: ALBEF train entries add image_id
                return "albef"
            if "caption" in first and "image_id" in first:
                return "coco-results"
            return "dict"
        raise _unknown(path, f"a JSON list of {type_name(first)}s")
    raise _unknown(path, f"a JSON {type_name(value)}")


def _looks_like_jsonl(text: str) -> bool:
    lines = [ln for ln in text.split("\n", 3)[:3] if ln.strip()]
    if len(lines) < 2:
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except json.JSONDecodeError:
        return False


def _sniff(path: str, text: str) -> tuple[str, ParsedJSON | None]:
    ext = Path(path).suffix.lower()
    head = text.lstrip()
    if not head:
        raise InputError(f"empty file; expected captions in one of the formats: {', '.join(FORMATS)}", path=path)
    if ext in (".jsonl", ".ndjson"):
        return "jsonl", None
    if head[0] in "[{":
        try:
            doc = parse_json(text, path)
        except InputError:
            if head[0] == "{" and _looks_like_jsonl(head):
                return "jsonl", None
            raise
        return _json_kind(doc.value, path), doc
    if ext == ".tsv":
        return "tsv", None
    if ext == ".csv":
        return "csv", None
    first = head.split("\n", 1)[0]
    key, tab, _ = first.partition("\t")
    if tab and readers._FLICKR_KEY.match(key):
        return "flickr8k-token", None
    if tab:
        return "tsv", None
    if "," in first:
        return "csv", None
    raise _unknown(path, f"first line {first[:60]!r} is neither JSON nor a delimited header")


def _is_dataset_name(p: str) -> bool:
    from capeval.datasets import REGISTRY  # lazy: io does not depend on the registry otherwise

    return p in REGISTRY


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format name (a key of FORMATS) of a caption file, from its content (and extension for csv/tsv/jsonl)."""
    p = str(path)
    return _sniff(p, read_text(p))[0]


def _read_file(p: str, format: str | None, name: str, split: str | None, allow_empty: bool) -> CaptionSet:
    """Read one local caption file (format detected unless forced)."""
    text = read_text(p)
    doc: ParsedJSON | None = None
    if format is None:
        format, doc = _sniff(p, text)
    elif format in _JSON_FORMATS:
        if not text.strip():
            raise InputError(f"empty file; expected {FORMATS[format]}", path=p)
        doc = parse_json(text, p)
    if split is not None and format != "karpathy":
        raise InputError(f"split={split!r} applies to Karpathy files only; this file is read as {format}", path=p)
    b = readers.Builder(p, name, allow_empty)
    if format == "coco-annotations":
        readers.read_coco_annotations(doc, b)  # type: ignore[arg-type]
    elif format == "coco-results":
        readers.read_coco_results(doc, b)  # type: ignore[arg-type]
    elif format == "karpathy":
        readers.read_karpathy(doc, b, split)  # type: ignore[arg-type]
    elif format == "albef":
        readers.read_albef(doc, b)  # type: ignore[arg-type]
    elif format == "dict":
        readers.read_dict(doc, b)  # type: ignore[arg-type]
    elif format == "csv":
        readers.read_delimited(text, b, ",", "csv")
    elif format == "tsv":
        readers.read_delimited(text, b, "\t", "tsv")
    elif format == "jsonl":
        readers.read_jsonl(text, b)
    else:
        readers.read_flickr8k_token(text, b)
    if not b.captions:
        raise InputError(f"no captions found; expected {FORMATS[format]}", path=p)
    return CaptionSet(b.captions, name=name, path=p, format=format)

_PYTHON = "<python object>"


def _from_python(value: object, format: str | None, name: str, allow_empty: bool) -> CaptionSet:
    """Captions given as Python data: `{image_id: caption | [captions]}`, `[{"image_id", "caption"}]`, ALBEF-style
    `[{"image", "caption"}]`, Caption objects, or a DataFrame with image_id and caption columns. Same checks and
    messages as files (a None or non-string caption names its key)."""
    from capeval.records import Caption

    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Caption) for v in value):
        return CaptionSet(list(value), name=name)
    if type(value).__name__ == "DataFrame":
        cols = [str(c) for c in value.columns]  # type: ignore[attr-defined]
        if "image_id" not in cols or "caption" not in cols:
            raise InputError(f"a DataFrame of captions needs columns image_id and caption; found {', '.join(cols)}",
                             path=_PYTHON)
        value = value.to_dict("records")  # type: ignore[attr-defined]
        if "caption_id" in cols:
            b = readers.Builder(_PYTHON, name, allow_empty)
            for i, row in enumerate(value):  # type: ignore[arg-type]
                b.add(row["image_id"], row["caption"], lambda i=i: f"row {i}", row.get("caption_id"))
            return _finish(b, _PYTHON, "jsonl", name)
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list) and value and isinstance(value[0], str):
        raise InputError("a list of strings has no image ids; expected {image_id: caption}, "
                         "[{'image_id': ..., 'caption': ...}] or a caption file", path=_PYTHON)
    if not isinstance(value, (dict, list)):
        raise InputError(f"cannot read captions from a {type(value).__name__}; expected a caption file, a dataset "
                         "name, a URL, {image_id: caption} or [{'image_id': ..., 'caption': ...}]", path=_PYTHON)
    if isinstance(value, dict) and not value:
        raise InputError("empty mapping: no captions; expected at least one caption", path=_PYTHON)
    doc = ParsedJSON(value)
    if format is None:
        format = _json_kind(value, _PYTHON)
    elif format not in _JSON_FORMATS:
        raise InputError(f"format {format!r} is a file format; Python data reads as one of: "
                         f"{', '.join(_JSON_FORMATS)}", path=_PYTHON)
    b = readers.Builder(_PYTHON, name, allow_empty)
    _READERS[format](doc, b)
    return _finish(b, None, format, name)


_READERS = {"coco-annotations": readers.read_coco_annotations, "coco-results": readers.read_coco_results,
            "albef": readers.read_albef, "dict": readers.read_dict}


def _finish(b: readers.Builder, path: str | None, format: str, name: str) -> CaptionSet:
    if not b.captions:
        raise InputError(f"no captions found; expected {FORMATS[format]}", path=path or _PYTHON)
    return CaptionSet(b.captions, name=name, path=path, format=format)


CAPTION_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".txt", ".parquet", ".gz")


def system_name(source: str | os.PathLike[str]) -> str:
    """The name a caption file or dataset goes by in tables: a dataset name whole (`llava-1.5-7b-briefly`), a file
    or URL without its folder and caption extension only (`runs/internvl2-2b.v1.json` -> `internvl2-2b.v1`;
    `Path.stem` would cut `llava-1.5-7b-briefly` to `llava-1`)."""
    s = os.fspath(source).rstrip("/")
    if "://" in s:
        from urllib.parse import unquote, urlparse

        s = unquote(urlparse(s).path).rstrip("/")
    base = s.replace("\\", "/").rsplit("/", 1)[-1]
    lower = base.lower()
    for suffix in (".json.gz", ".jsonl.gz", *CAPTION_SUFFIXES):
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return base


def load(source: object, *, format: str | None = None, name: str | None = None, split: str | None = None,
         allow_empty: bool = False, mirror: str | os.PathLike[str] | None = None,
         cache_dir: str | os.PathLike[str] | None = None) -> CaptionSet:
    """The one way to read captions: a local file, a registered dataset name (`coco-karpathy-test`, fetched and
    verified through the mirror/cache), an http(s)/file URL, or Python data ({image_id: caption},
    [{"image_id", "caption"}], a DataFrame, a CaptionSet).

    `format` forces one of FORMATS (default: detected; for dataset names the registry's hint). `split` filters
    Karpathy files ('test', 'train+restval'). `name` is the system name (default: `system_name(source)`; the
    dataset name kept whole). Empty or whitespace-only captions are an InputError naming where they are, in
    references and candidates alike (an empty reference silently shifts CIDEr's idf, an empty candidate is usually
    a broken pipeline); `allow_empty=True` reads them, e.g. for the reference audit.
    """
    if isinstance(source, CaptionSet):
        if name is not None and name != source.name:
            return CaptionSet(source.captions, name=name, path=source.path, format=source.format)
        return source
    if format is not None and format not in FORMATS:
        where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else _PYTHON
        raise InputError(f"unknown format {format!r}; expected one of: {', '.join(FORMATS)}", path=where)
    if not isinstance(source, (str, os.PathLike)):
        if split is not None:
            raise InputError(f"split={split!r} applies to Karpathy files only", path=_PYTHON)
        return _from_python(source, format, name or "", allow_empty)
    p = os.fspath(source)
    label = name if name is not None else system_name(p)
    if os.path.exists(p):
        return _read_file(p, format, label, split, allow_empty)
    if p.startswith(("http://", "https://", "file://")):
        from capeval.datasets import fetch_url

        return _read_file(str(fetch_url(p, cache_dir=cache_dir)), format, label, split, allow_empty)
    if _is_dataset_name(p):
        from capeval import datasets

        hint = datasets.REGISTRY[p].format
        if format is None and hint is not None and hint not in FORMATS:
            what = "human judgments" if hint in _JUDGMENT_FORMATS else f"{hint} data"
            use = f"; use it as `capeval correlate --human {p}`" if hint in _JUDGMENT_FORMATS else ""
            raise InputError(f"dataset {p!r} holds {what}, not captions{use}; expected a caption file or a caption "
                             "dataset (see `capeval data list`)", path=p)
        path = datasets.resolve(p, mirror=mirror, cache_dir=cache_dir)
        if format is None:
            format = hint
        return _read_file(str(path), format, label, split, allow_empty)
    if not os.path.lexists(p):
        import difflib

        from capeval.datasets import REGISTRY

        close = difflib.get_close_matches(p, list(REGISTRY), n=1, cutoff=0.6)
        hint = f"did you mean the dataset {close[0]!r}? " if close else ""
        raise InputError(f"file not found, and not a dataset name; {hint}expected a caption file, an http(s) URL or "
                         "a dataset name (see `capeval data list`)", path=p)
    return _read_file(p, format, label, split, allow_empty)


def load_captions(path: str | os.PathLike[str], format: str | None = None, name: str | None = None, *,
                  split: str | None = None, allow_empty: bool = False) -> CaptionSet:
    """Same as `load` (kept for existing callers): files, dataset names and URLs alike."""
    return load(path, format=format, name=name, split=split, allow_empty=allow_empty)
