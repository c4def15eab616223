"""List the dev4 audit development set: every Karpathy-test image of the dev split outside every other label set.

No random draw: the eligible images are all Karpathy-test images (file order) whose split under
``capeval.audit.evaluation.split_of`` is "dev", minus every image of the first set (``../captions.csv``), the
held-out set (``../heldout/captions.csv``), dev2 (``../dev2/captions.csv``), dev3 (``../dev3/images.csv``) and every
image whose id is in ``coco-val2017/captions_val2017.json`` (only its image ids are read; such images are test
anyway). dev4 judges findings of the rules that do not use the caption language model: see NOTE.md.

Usage: python data/audit_labels/dev4/sample.py [datasets_folder]   (prints the image ids)
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # the repository, for capeval.audit.evaluation.split_of

from capeval.audit.evaluation import split_of  # noqa: E402

DEFAULT_DATASETS = HERE.parents[3] / "shared" / "datasets"
OTHER_LABELS = (HERE.parent / "captions.csv", HERE.parent / "heldout" / "captions.csv",
                HERE.parent / "dev2" / "captions.csv", HERE.parent / "dev3" / "images.csv")

# the other label sets' image ids and the held-out draw's helpers, as dev3 reads them
_spec = importlib.util.spec_from_file_location("audit_dev3_sample", HERE.parent / "dev3" / "sample.py")
_dev3 = importlib.util.module_from_spec(_spec)
assert _spec.loader is not None
_spec.loader.exec_module(_dev3)
_heldout = _dev3._heldout


def labelled_images(paths=OTHER_LABELS) -> set[str]:
    """Image ids of every other label set."""
    return _dev3.labelled_images(paths)


def images(datasets: Path) -> list[str]:
    """The dev4 image ids in Karpathy file order, from a folder laid out like the data mirror."""
    entries = json.loads((datasets / "coco-karpathy-test" / "coco_test.json").read_text(encoding="utf-8"))
    val2017 = frozenset(_heldout.val2017_images(datasets / "coco-val2017" / "captions_val2017.json"))
    excluded = labelled_images() | val2017
    return [i for i in _heldout.eligible_images(entries, excluded) if split_of(i, val2017) == "dev"]


def main() -> None:
    datasets = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATASETS
    for image in images(datasets):
        print(image)


if __name__ == "__main__":
    main()
