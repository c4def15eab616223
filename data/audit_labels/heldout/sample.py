"""Draw the held-out audit test set: whole Karpathy-test images, reproducibly, outside every other label set.

Caption ids are ``<image_id>#<k>`` exactly as in ``data/audit_labels``: the COCO numeric image id
without leading zeros and the 0-based position of the caption in the ALBEF entry. Eligible images are
the Karpathy-test images (file order) minus (a) every image of ``data/audit_labels/captions.csv`` and
(b) every image whose id is in ``coco-val2017/captions_val2017.json`` (reserved for evaluation; only
its image ids are read). ``random.Random(SEED).sample(eligible, N_IMAGES)`` picks the images, kept
in draw order, and all captions of each picked image are listed in file order.

Usage: python data/audit_labels/heldout/sample.py [datasets_folder]   (prints the sampled caption ids)
"""

from __future__ import annotations

import csv
import json
import random
import re
import sys
from pathlib import Path

SEED = 2027
N_IMAGES = 200
HERE = Path(__file__).resolve().parent
FIRST_LABELS = HERE.parent / "captions.csv"
DEFAULT_DATASETS = HERE.parents[3] / "shared" / "datasets"


def image_id_of(image_path: str) -> str:
    """'val2014/COCO_val2014_000000391895.jpg' -> '391895'."""
    match = re.search(r"(\d+)\.\w+$", image_path)
    if match is None:
        raise ValueError(f"no numeric image id in {image_path!r}")
    return str(int(match.group(1)))


def first_label_images(path: Path = FIRST_LABELS) -> set[str]:
    """Image ids of the first label set (data/audit_labels/captions.csv)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["image_id"] for row in csv.DictReader(fh)}


def val2017_images(path: Path) -> set[str]:
    """Image ids of COCO val2017 (only the ``images`` ids are read)."""
    return {str(int(im["id"])) for im in json.loads(path.read_text(encoding="utf-8"))["images"]}


def eligible_images(entries: list[dict], excluded: set[str]) -> list[str]:
    """Karpathy-test image ids in file order, minus ``excluded``."""
    return [iid for iid in (image_id_of(e["image"]) for e in entries) if iid not in excluded]


def sample_images(entries: list[dict], excluded: set[str], seed: int = SEED, n: int = N_IMAGES) -> list[str]:
    """The ``n`` image ids drawn with ``random.Random(seed).sample``, in draw order."""
    return random.Random(seed).sample(eligible_images(entries, excluded), n)


def sample_caption_ids(entries: list[dict], excluded: set[str], seed: int = SEED, n: int = N_IMAGES) -> list[str]:
    """Every caption id of the drawn images: images in draw order, captions in file order."""
    n_captions = {image_id_of(e["image"]): len(e["caption"]) for e in entries}
    return [f"{iid}#{k}" for iid in sample_images(entries, excluded, seed, n) for k in range(n_captions[iid])]


def draw(datasets: Path) -> list[str]:
    """The held-out caption ids, from a folder laid out like the data mirror."""
    entries = json.loads((datasets / "coco-karpathy-test" / "coco_test.json").read_text(encoding="utf-8"))
    excluded = first_label_images() | val2017_images(datasets / "coco-val2017" / "captions_val2017.json")
    return sample_caption_ids(entries, excluded)


def main() -> None:
    datasets = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATASETS
    for cid in draw(datasets):
        print(cid)


if __name__ == "__main__":
    main()
