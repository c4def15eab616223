"""Writers for the two COCO formats pycocoevalcap reads; caption and image ids survive a round trip."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from capeval.records import CaptionSet


def _json_id(x: str) -> int | str:
    """COCO tools expect integer ids; keep a string where the id is not a plain integer (e.g. Flickr names)."""
    return int(x) if x.isdigit() and (x == "0" or not x.startswith("0")) else x


def _write_json_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def write_coco_annotations(caps: CaptionSet, path: str | os.PathLike[str]) -> Path:
    """COCO caption annotations (`images`, `annotations` with `id` = caption id), as pycocotools' COCO() loads."""
    images = [{"id": _json_id(img)} for img in caps.by_image()]
    anns = [{"image_id": _json_id(c.image_id), "id": _json_id(c.caption_id), "caption": c.text} for c in caps]
    doc = {"info": {"description": caps.name or "capeval export"}, "licenses": [], "type": "captions",
           "images": images, "annotations": anns}
    return _write_json_atomic(doc, path)


def write_coco_results(caps: CaptionSet, path: str | os.PathLike[str]) -> Path:
    """COCO results list `[{"image_id", "caption"}]` (one entry per caption, file order)."""
    return _write_json_atomic([{"image_id": _json_id(c.image_id), "caption": c.text} for c in caps], path)
