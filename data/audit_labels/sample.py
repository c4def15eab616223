"""Draw the caption sample of the (AI-labelled) reference-audit set, reproducibly.

Caption ids are ``<image_id>#<k>``: the COCO numeric image id without leading zeros and the
0-based position of the caption in the ALBEF list entry. Sampling: ``random.Random(SEED).sample``
of all caption ids in file order, ``N`` of them, kept in draw order.

Usage: python data/audit_labels/sample.py [path/to/coco_test.json]   (prints the sampled ids)
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

SEED = 2026
N = 1000
DEFAULT_PATH = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "coco-karpathy-test" / "coco_test.json"


def image_id_of(image_path: str) -> str:
    """'val2014/COCO_val2014_000000391895.jpg' -> '391895'."""
    match = re.search(r"(\d+)\.\w+$", image_path)
    if match is None:
        raise ValueError(f"no numeric image id in {image_path!r}")
    return str(int(match.group(1)))


def all_caption_ids(entries: list[dict]) -> list[str]:
    """Every caption id of the ALBEF list, in file order."""
    return [f"{image_id_of(e['image'])}#{k}" for e in entries for k in range(len(e["caption"]))]


def sample_ids(entries: list[dict], seed: int = SEED, n: int = N) -> list[str]:
    """The ``n`` caption ids drawn with ``random.Random(seed).sample``, in draw order."""
    return random.Random(seed).sample(all_caption_ids(entries), n)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATH
    entries = json.loads(path.read_text(encoding="utf-8"))
    for cid in sample_ids(entries):
        print(cid)


if __name__ == "__main__":
    main()
