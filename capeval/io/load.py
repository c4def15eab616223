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
        if value and all(isinstance(v, (str, list)) for v in value.values()):
            return "dict"
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


def load_captions(path: str | os.PathLike[str], format: str | None = None, name: str | None = None, *,
                  split: str | None = None, allow_empty: bool = False) -> CaptionSet:
    """Read a caption file into a CaptionSet with stable caption ids and normalised image ids.

    `format` forces one of FORMATS (default: detected). `split` filters Karpathy files ('test', 'train+restval').
    Empty or whitespace-only captions are an InputError naming where they are, in references and candidates alike
    (an empty reference silently shifts CIDEr's idf, an empty candidate is usually a broken pipeline);
    `allow_empty=True` reads them, e.g. for the reference audit.
    """
    p = str(path)
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown format {format!r}; expected one of: {', '.join(FORMATS)}", path=p)
    if not os.path.exists(p) and _is_dataset_name(p):
        raise InputError(f"file not found; {p!r} is a dataset name: load it with capeval.datasets.load({p!r}) "
                         "(or pass capeval.datasets.resolve(name) here)", path=p)
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
    name = name if name is not None else Path(p).stem
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
