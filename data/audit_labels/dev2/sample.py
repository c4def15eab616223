"""Draw the dev2 audit development set: whole Karpathy-test images, reproducibly, outside every other label set.

Same draw as ``../heldout/sample.py`` (its helper functions are imported from the sibling file) with
SEED = 2028 and N_IMAGES = 400. Eligible images are the Karpathy-test images (file order) minus
(a) every image of ``data/audit_labels/captions.csv`` (first set), (b) every image of
``data/audit_labels/heldout/captions.csv`` (held-out test set) and (c) every image whose id is in
``coco-val2017/captions_val2017.json`` (only its image ids are read).
``random.Random(SEED).sample(eligible, N_IMAGES)`` picks the images, kept in draw order, and all
captions of each picked image are listed in file order. Labels follow ``../heldout/CRITERIA.md`` unchanged.

Usage: python data/audit_labels/dev2/sample.py [datasets_folder]   (prints the sampled caption ids)
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

SEED = 2028
N_IMAGES = 400
HERE = Path(__file__).resolve().parent
HELDOUT_LABELS = HERE.parent / "heldout" / "captions.csv"
DEFAULT_DATASETS = HERE.parents[3] / "shared" / "datasets"

_spec = importlib.util.spec_from_file_location("audit_heldout_sample_helpers", HERE.parent / "heldout" / "sample.py")
_heldout = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(_heldout)

image_id_of = _heldout.image_id_of
first_label_images = _heldout.first_label_images
val2017_images = _heldout.val2017_images
eligible_images = _heldout.eligible_images


def heldout_images(path: Path = HELDOUT_LABELS) -> set[str]:
    """Image ids of the held-out test set (data/audit_labels/heldout/captions.csv)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["image_id"] for row in csv.DictReader(fh)}


def sample_caption_ids(entries: list[dict], excluded: set[str], seed: int = SEED, n: int = N_IMAGES) -> list[str]:
    """Every caption id of the drawn images: images in draw order, captions in file order."""
    return _heldout.sample_caption_ids(entries, excluded, seed, n)


def draw(datasets: Path) -> list[str]:
    """The dev2 caption ids, from a folder laid out like the data mirror."""
    entries = json.loads((datasets / "coco-karpathy-test" / "coco_test.json").read_text(encoding="utf-8"))
    excluded = (
        first_label_images()
        | heldout_images()
        | val2017_images(datasets / "coco-val2017" / "captions_val2017.json")
    )
    return sample_caption_ids(entries, excluded)


def main() -> None:
    datasets = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATASETS
    for cid in draw(datasets):
        print(cid)


if __name__ == "__main__":
    main()
