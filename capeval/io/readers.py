"""One reader per caption format. Each turns parsed input into Captions with stable ids and normalised image ids,
and reports bad input as InputError naming the file, the JSON path or line, and what was expected."""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from capeval.errors import InputError
from capeval.io._source import InputWarning, ParsedJSON, json_path, type_name
from capeval.records import Caption, normalize_image_id

_ID_TYPES = (str, int)
_EMPTY_HINT = ("expected a non-empty caption (pass allow_empty=True / --allow-empty to read empty captions, "
               "e.g. to audit them)")


class Builder:
    """Collects captions for one file: validates text, normalises image ids (cached), numbers `<image_id>#<k>` ids
    and rejects duplicate caption ids."""

    __slots__ = ("path", "source", "allow_empty", "captions", "_ids", "_img_cache", "_counts")

    def __init__(self, path: str, source: str, allow_empty: bool) -> None:
        self.path = path
        self.source = source
        self.allow_empty = allow_empty
        self.captions: list[Caption] = []
        self._ids: set[str] = set()
        self._img_cache: dict[object, str] = {}
        self._counts: dict[str, int] = {}

    def image_id(self, raw: object, where: Callable[[], str]) -> str:
        """Normalised image id (cached per raw value; str and int of the same number normalise alike)."""
        cacheable = type(raw) in _ID_TYPES
        if cacheable:
            got = self._img_cache.get(raw)
            if got is not None:
                return got
        if not cacheable or (type(raw) is int and raw < 0):  # type: ignore[operator]
            raise InputError(f"expected an image id (a string or a non-negative integer), got {type_name(raw)} "
                             f"{json.dumps(raw, ensure_ascii=False)[:60]}", path=self.path, where=where())
        img = normalize_image_id(raw)
        if not img:
            raise InputError("empty image id; expected an image id such as 391895 or 'COCO_val2014_000000391895.jpg'",
                             path=self.path, where=where())
        self._img_cache[raw] = img
        return img

    def add(self, raw_image: object, text: object, where: Callable[[], str], caption_id: object = None,
            index: str | None = None) -> None:
        """Add one caption; `where` builds the location lazily (only errors pay for it). The id is `caption_id`,
        else `<image_id>#<index>` when the file numbers captions itself, else `<image_id>#<k>` in file order."""
        img = self._img_cache.get(raw_image) if type(raw_image) in _ID_TYPES else None
        if img is None:
            img = self.image_id(raw_image, where)
        if type(text) is not str:
            raise InputError(f"expected a caption string, got {type_name(text)}", path=self.path, where=where())
        if not self.allow_empty and (not text or text.isspace()):
            raise InputError(f"empty caption {text!r}; {_EMPTY_HINT}", path=self.path, where=where())
        counts = self._counts
        k = counts.get(img, 0)
        counts[img] = k + 1
        if caption_id is None:
            cid = f"{img}#{k if index is None else index}"
        elif type(caption_id) is int:
            cid = str(caption_id)
        elif type(caption_id) is str and caption_id.strip():
            cid = caption_id
        else:
            raise InputError(f"expected a caption id (a non-empty string or an integer), got {type_name(caption_id)} "
                             f"{json.dumps(caption_id, ensure_ascii=False)[:60]}", path=self.path, where=where())
        ids = self._ids
        if cid in ids:
            raise InputError(f"duplicate caption id {cid!r}; expected each caption id once", path=self.path,
                             where=where())
        ids.add(cid)
        self.captions.append(Caption(cid, img, text, self.source))


def _fail(path: str, where: str, message: str) -> InputError:
    return InputError(message, path=path, where=where)


def _expect_list(value: Any, path: str, where: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(path, where, f"expected {what} (a JSON list), got {type_name(value)}")
    return value


def _expect_obj(value: Any, path: str, where: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, where, f"expected {what} (a JSON object), got {type_name(value)}")
    return value


def _require(obj: dict[str, Any], key: str, path: str, where: Callable[[], str], what: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        keys = ", ".join(list(obj)[:8]) or "none"
        raise _fail(path, where(), f"missing key {key!r}; expected {what} (keys found: {keys})") from None


# --------------------------------------------------------------------------------------------- JSON formats


def read_coco_annotations(doc: ParsedJSON, b: Builder) -> None:
    """`{"images": [...], "annotations": [{"image_id", "id", "caption"}]}`; caption id = annotation id."""
    top = _expect_obj(doc.value, b.path, "top level", "a COCO annotations object")
    anns = _expect_list(_require(top, "annotations", b.path, lambda: "top level", "COCO caption annotations"),
                        b.path, "annotations", "the list of caption annotations")
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise _fail(b.path, json_path("annotations", i), f"expected an annotation object, got {type_name(ann)}")
        try:
            img, text = ann["image_id"], ann["caption"]
        except KeyError as exc:
            raise _fail(b.path, json_path("annotations", i),
                        f"missing key {exc.args[0]!r}; expected an annotation with image_id, id and caption") from None
        b.add(img, text, lambda i=i, k="caption": json_path("annotations", i, k), ann.get("id"))


def read_coco_results(doc: ParsedJSON, b: Builder) -> None:
    """`[{"image_id", "caption"}]` (pycocoevalcap results); caption id = `<image_id>#<k>`."""
    items = _expect_list(doc.value, b.path, "top level", "a list of {image_id, caption} results")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _fail(b.path, json_path(i), f"expected a result object {{image_id, caption}}, got {type_name(item)}")
        try:
            img, text = item["image_id"], item["caption"]
        except KeyError as exc:
            raise _fail(b.path, json_path(i),
                        f"missing key {exc.args[0]!r}; expected a result with image_id and caption") from None
        b.add(img, text, lambda i=i: json_path(i, "caption"))


def read_karpathy(doc: ParsedJSON, b: Builder, split: str | None = None) -> None:
    """Karpathy `dataset_coco.json` / `dataset_flickr8k.json`: `images[].sentences[].raw`; caption id = sentid.

    `split` keeps one split ('test'), or several joined by '+' ('train+restval').
    """
    top = _expect_obj(doc.value, b.path, "top level", "a Karpathy dataset object")
    images = _expect_list(_require(top, "images", b.path, lambda: "top level", "Karpathy images"), b.path, "images",
                          "the list of images")
    wanted = set(split.split("+")) if split else None
    seen_splits: set[str] = set()
    for i, im in enumerate(images):
        if not isinstance(im, dict):
            raise _fail(b.path, json_path("images", i), f"expected an image object, got {type_name(im)}")
        s = im.get("split")
        seen_splits.add(str(s))
        if wanted is not None and s not in wanted:
            continue
        if "cocoid" in im:
            raw_img: object = im["cocoid"]
        elif "filename" in im:
            raw_img = im["filename"]
        else:
            raw_img = _require(im, "imgid", b.path, lambda i=i: json_path("images", i), "cocoid, filename or imgid")
        sents = _expect_list(_require(im, "sentences", b.path, lambda i=i: json_path("images", i), "sentences"),
                             b.path, json_path("images", i, "sentences"), "the image's sentences")
        for j, sent in enumerate(sents):
            if not isinstance(sent, dict):
                raise _fail(b.path, json_path("images", i, "sentences", j),
                            f"expected a sentence object with raw and sentid, got {type_name(sent)}")
            text = _require(sent, "raw", b.path, lambda i=i, j=j: json_path("images", i, "sentences", j),
                            "the raw caption text")
            b.add(raw_img, text, lambda i=i, j=j: json_path("images", i, "sentences", j, "raw"), sent.get("sentid"))
    if wanted is not None and not b.captions:
        raise _fail(b.path, "images[].split", f"no image in split {split!r}; splits found: "
                    f"{', '.join(sorted(seen_splits))}")


def read_albef(doc: ParsedJSON, b: Builder) -> None:
    """ALBEF/BLIP list `[{"image": "val2014/COCO_val2014_...jpg", "caption": [..] or ".."}]`; ids `<image_id>#<k>`."""
    items = _expect_list(doc.value, b.path, "top level", "a list of {image, caption} entries")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _fail(b.path, json_path(i), f"expected an object {{image, caption}}, got {type_name(item)}")
        try:
            img, caps = item["image"], item["caption"]
        except KeyError as exc:
            raise _fail(b.path, json_path(i),
                        f"missing key {exc.args[0]!r}; expected an entry with image and caption") from None
        if isinstance(caps, list):
            for k, text in enumerate(caps):
                b.add(img, text, lambda i=i, k=k: json_path(i, "caption", k))
        else:
            b.add(img, caps, lambda i=i: json_path(i, "caption"))


def _add_mapping(obj: dict[str, Any], b: Builder, prefix: tuple[str | int, ...]) -> None:
    for key, value in obj.items():
        if isinstance(value, list):
            for k, text in enumerate(value):
                b.add(key, text, lambda key=key, k=k: json_path(*prefix, key, k))
        else:
            b.add(key, value, lambda key=key: json_path(*prefix, key))


def read_dict(doc: ParsedJSON, b: Builder) -> None:
    """`{image_id: caption}` / `{image_id: [captions]}`, or a list of such objects (LLaVA 'briefly' output)."""
    value = doc.value
    if isinstance(value, dict):
        dups = doc.duplicates_in(value)
        if dups:
            raise _fail(b.path, json_path(dups[0]), f"image id {dups[0]!r} appears more than once as a key "
                        "(JSON keeps only the last); expected each image id once")
        _add_mapping(value, b, ())
        return
    items = _expect_list(value, b.path, "top level", "an object {image_id: caption} or a list of such objects")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _fail(b.path, json_path(i), f"expected an object {{image_id: caption}}, got {type_name(item)}")
        dups = doc.duplicates_in(item)
        if dups:
            raise _fail(b.path, json_path(i, dups[0]), f"key {dups[0]!r} appears more than once in one object")
        _add_mapping(item, b, (i,))


# --------------------------------------------------------------------------------------------- line formats

_COLUMNS_HINT = "expected a header row with columns image_id and caption (optional caption_id)"


def _columns(header: list[str], path: str, fmt: str) -> tuple[int, int, int | None]:
    names = [h.strip().lower() for h in header]
    missing = [c for c in ("image_id", "caption") if c not in names]
    if missing:
        found = ", ".join(repr(h if len(h) <= 40 else h[:37] + "...") for h in header[:10]) or "nothing"
        raise _fail(path, "line 1", f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} in the "
                    f"{fmt.upper()} header; {_COLUMNS_HINT}; found {found}")
    cid = names.index("caption_id") if "caption_id" in names else None
    return names.index("image_id"), names.index("caption"), cid


def read_delimited(text: str, b: Builder, delimiter: str, fmt: str) -> None:
    """CSV/TSV with a header; RFC 4180 quoting, so captions may hold commas, quotes and newlines."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise _fail(b.path, "line 1", f"empty file; {_COLUMNS_HINT}") from None
    except csv.Error as exc:
        raise _fail(b.path, "line 1", f"malformed {fmt.upper()} ({exc}); {_COLUMNS_HINT}") from None
    for _ in add_delimited_rows(reader, header, b, fmt):
        pass


def add_delimited_rows(reader: Any, header: list[str], b: Builder, fmt: str) -> Iterator[None]:
    """Add the captions of every row a csv.reader gives after `header` to `b`, yielding after each row; shared by the
    whole-file and the streaming reader so both give the same captions and messages."""
    i_img, i_cap, i_cid = _columns(header, b.path, fmt)
    width = len(header)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise _fail(b.path, f"line {reader.line_num}", f"malformed {fmt.upper()} ({exc}); expected "
                        f"{width} fields, quoted with \" where they contain the delimiter or newlines") from None
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            raise _fail(b.path, f"line {line}", f"expected {width} fields as in the header "
                        f"({', '.join(header)}), found {len(row)}")
        b.add(row[i_img], row[i_cap], lambda line=line: f"line {line}", row[i_cid] if i_cid is not None else None)
        yield None


def read_jsonl(text: str, b: Builder) -> None:
    """One JSON object per line: `{"image_id", "caption"[, "caption_id"]}`; caption may be a list."""
    for n, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            add_jsonl_line(b, n, line)


def add_jsonl_line(b: Builder, n: int, line: str) -> None:
    """Add the captions of JSON-lines line `n` (one object with image_id and caption) to `b`; shared by the
    whole-file and the streaming reader so both give the same captions and messages."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _fail(b.path, f"line {n}, column {exc.colno}", f"malformed JSON: {exc.msg}; expected one JSON "
                    "object per line") from None
    if not isinstance(obj, dict):
        raise _fail(b.path, f"line {n}", f"expected a JSON object with image_id and caption, got {type_name(obj)}")
    try:
        img, caps = obj["image_id"], obj["caption"]
    except KeyError as exc:
        raise _fail(b.path, f"line {n}", f"missing key {exc.args[0]!r}; expected an object with image_id and "
                    "caption (optional caption_id)") from None
    if isinstance(caps, list):
        for k, t in enumerate(caps):
            b.add(img, t, lambda n=n, k=k: f"line {n}, caption[{k}]")
    else:
        b.add(img, caps, lambda n=n: f"line {n}", obj.get("caption_id"))


_FLICKR_KEY = re.compile(r"^(?P<img>[^\t#]+)#(?P<k>\d+)$")
_FLICKR_BOGUS = re.compile(r"^(?P<name>.+\.(?:jpe?g|png))\.\d+$", re.IGNORECASE)


def flickr8k_caption_id(raw: str) -> str:
    """Flickr8k caption reference as in the judgment files -> capeval caption id: '2549968784_39bfbe44f9.jpg#2' ->
    '2549968784_39bfbe44f9#2' (the id `load_captions` gives that caption in Flickr8k.token.txt)."""
    img, sep, k = raw.strip().rpartition("#")
    if not sep or not img or not k.isdigit():
        raise ValueError(f"expected a Flickr8k caption id '<image>.jpg#<k>', got {raw!r}")
    bogus = _FLICKR_BOGUS.match(img)
    return f"{normalize_image_id(bogus['name'] if bogus else img)}#{k}"


def read_flickr8k_token(text: str, b: Builder) -> None:
    """`Flickr8k.token.txt`: `<image>.jpg#<k>\\t<caption>`; caption id `<image_id>#<k>`.

    The public file has one malformed key, `2258277193_586949ec62.jpg.1#k`: the stray `.1` is dropped with an
    InputWarning (the image is `2258277193_586949ec62.jpg`), unless that would collide with existing captions.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows: list[tuple[int, str, str, str]] = []
    present: set[str] = set()
    for n, line in enumerate(lines, start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        m = _FLICKR_KEY.match(key)
        if not tab or m is None:
            raise _fail(b.path, f"line {n}", "expected '<image>.jpg#<k><TAB><caption>' (Flickr8k token format), "
                        f"got {line[:60]!r}")
        rows.append((n, m["img"], m["k"], caption))
        present.add(m["img"])
    fixed: dict[str, str] = {}
    for n, img, k, caption in rows:
        bogus = _FLICKR_BOGUS.match(img) if img[-1].isdigit() else None
        if bogus is not None:
            if img not in fixed:
                name = bogus["name"]
                clash = name in present
                fixed[img] = img if clash else name
                warnings.warn(f"{b.path}, line {n}: malformed Flickr8k key {img + '#' + k!r}; "
                              + (f"kept as image {img!r} because {name!r} has its own captions" if clash else
                                 f"read as image {name!r}"), InputWarning, stacklevel=4)
            img = fixed[img]
        b.add(img, caption, lambda n=n: f"line {n}", index=k)

