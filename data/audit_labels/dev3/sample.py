"""Draw the dev3 audit development set: whole Karpathy-test images, reproducibly, outside every other label set.

Same draw as ``../heldout/sample.py`` (its helper functions are imported from the sibling file) with
SEED = 2029 and N_IMAGES = 1000. Eligible images are the Karpathy-test images (file order) minus every
image of the first set (``../captions.csv``), the held-out set (``../heldout/captions.csv``), dev2
(``../dev2/captions.csv``) and every image whose id is in ``coco-val2017/captions_val2017.json`` (only
its image ids are read). dev3 labels findings, not captions: see NOTE.md.

Usage: python data/audit_labels/dev3/sample.py [datasets_folder]   (prints the sampled caption ids)
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

SEED = 2029
N_IMAGES = 1000
HERE = Path(__file__).resolve().parent
DEFAULT_DATASETS = HERE.parents[3] / "shared" / "datasets"
OTHER_LABELS = (HERE.parent / "captions.csv", HERE.parent / "heldout" / "captions.csv",
                HERE.parent / "dev2" / "captions.csv")

_spec = importlib.util.spec_from_file_location("audit_heldout_sample_helpers", HERE.parent / "heldout" / "sample.py")
_heldout = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(_heldout)


def labelled_images(paths=OTHER_LABELS) -> set[str]:
    """Image ids of every caption-labelled set."""
    out: set[str] = set()
    for path in paths:
        with open(path, newline="", encoding="utf-8") as fh:
            out |= {row["image_id"] for row in csv.DictReader(fh)}
    return out


def _entries_and_excluded(datasets: Path) -> tuple[list[dict], set[str]]:
    entries = json.loads((datasets / "coco-karpathy-test" / "coco_test.json").read_text(encoding="utf-8"))
    return entries, labelled_images() | _heldout.val2017_images(datasets / "coco-val2017" / "captions_val2017.json")


def draw_images(datasets: Path) -> list[str]:
    """The dev3 image ids, in draw order, from a folder laid out like the data mirror."""
    return _heldout.sample_images(*_entries_and_excluded(datasets), SEED, N_IMAGES)


def draw(datasets: Path) -> list[str]:
    """Every caption id of the dev3 images: images in draw order, captions in file order."""
    return _heldout.sample_caption_ids(*_entries_and_excluded(datasets), SEED, N_IMAGES)


def main() -> None:
    datasets = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATASETS
    for cid in draw(datasets):
        print(cid)


if __name__ == "__main__":
    main()
