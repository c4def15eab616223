"""Campaign images: an index from image id to a file inside the campaign's image folder, checked before serving.

Only regular files directly resolvable inside the folder are served (no `..`, no absolute paths, no symlink that leads
out); every image is opened with Pillow once so a malformed or oversized file is refused with a message up front.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from capeval.errors import InputError
from capeval.records import normalize_image_id

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"}
MAX_IMAGE_BYTES = 30 * 1024 * 1024
MAX_IMAGE_PIXELS = 60_000_000


@dataclass(frozen=True)
class ImageIndex:
    folder: Path
    by_id: dict[str, Path]

    def path_for(self, image_id: str) -> Path:
        p = self.by_id.get(image_id)
        if p is None:
            raise KeyError(image_id)
        return p


def safe_join(folder: str | Path, name: str) -> Path:
    """`folder/name` when it stays inside `folder` after resolving links; ValueError for traversal or odd names."""
    root = Path(folder).resolve()
    if not isinstance(name, str) or not name or len(name) > 255 or "\x00" in name or "\\" in name:
        raise ValueError("refused image name")
    cand = (root / name).resolve()
    if cand.parent != root and root not in cand.parents:
        raise ValueError(f"refused image path outside the campaign image folder: {name!r}")
    if cand.is_symlink():
        raise ValueError("refused symbolic link")
    return cand


def build_index(folder: str | Path, wanted: set[str] | None = None) -> ImageIndex:
    """Map normalised image ids (COCO_val2014_000000391895.jpg -> '391895') to files of `folder` (top level only)."""
    root = Path(folder).resolve()
    by_id: dict[str, Path] = {}
    for f in sorted(root.iterdir()):
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        real = f.resolve()
        if not f.is_file() or real.parent != root:  # symlinks leading elsewhere are not served
            continue
        key = normalize_image_id(f.name)
        if wanted is not None and key not in wanted:
            continue
        by_id.setdefault(key, real)
    return ImageIndex(root, by_id)


def check_image(path: Path) -> str | None:
    """None when `path` is a readable image within the size limits, else the reason it is refused."""
    from PIL import Image

    try:
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    if size > MAX_IMAGE_BYTES:
        return f"file is {size / 1e6:.1f} MB, over the {MAX_IMAGE_BYTES / 1e6:.0f} MB limit"
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                return f"{w}x{h} pixels is over the {MAX_IMAGE_PIXELS} pixel limit"
            im.verify()
    except Exception as exc:  # Pillow raises many types for broken files
        return f"not a readable image ({type(exc).__name__})"
    return None


def index_campaign_images(folder: Path, image_ids: set[str], *, where: str) -> ImageIndex:
    """Index the images the campaign needs and check each; one message lists what is missing or refused."""
    idx = build_index(folder, image_ids)
    missing = sorted(image_ids - set(idx.by_id))
    if missing:
        raise InputError(f"{len(missing)} of {len(image_ids)} images not found in {folder} "
                         f"(e.g. {', '.join(missing[:5])}); expected files named by image id such as "
                         f"391895.jpg or COCO_val2014_000000391895.jpg", where=where)
    bad = [(i, r) for i, p in sorted(idx.by_id.items()) if (r := check_image(p))]
    if bad:
        shown = "; ".join(f"{i}: {r}" for i, r in bad[:5])
        raise InputError(f"{len(bad)} images refused ({shown})", where=where)
    return idx


def fetch_coco_images(image_ids: set[str], split: str) -> Path:
    """Fetch the COCO images of a campaign into the capeval cache through the dataset registry; returns the folder."""
    try:
        from capeval.datasets import fetch_coco_image
    except ImportError as exc:
        raise InputError("fetching COCO images needs capeval.datasets.fetch_coco_image, which is unavailable "
                         f"({exc}); use `images: {{folder: ...}}` instead", where="images.coco") from None
    folder: Path | None = None
    for i in sorted(image_ids):
        p = Path(fetch_coco_image(i, split=split))
        folder = p.parent if folder is None else folder
        if p.parent != folder:
            raise InputError("fetched COCO images landed in different folders", where="images.coco")
    if folder is None:
        raise InputError("no images to fetch", where="images.coco")
    return folder
