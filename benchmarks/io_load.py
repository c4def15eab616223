"""Caption loading speed on the real files: capeval.io.load_captions vs a bare json.load of the same file.

Run: .venv/bin/python benchmarks/io_load.py [mirror folder]   (default ../shared/datasets)
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

from capeval.io import load_captions

FILES = ["coco-karpathy-test/coco_test.json", "coco-val2017/captions_val2017.json",
         "coco-system-outputs/llava-1.5-7b_default.json", "flickr8k/Flickr8k.token.txt"]


def best_of(fn, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "datasets"
    warnings.simplefilter("ignore")
    print(f"{'file':48} {'captions':>8} {'load_captions':>14} {'json/read only':>15} {'ratio':>6}")
    for rel in FILES:
        path = root / rel
        n = len(load_captions(path))
        ours = best_of(lambda: load_captions(path))
        if path.suffix == ".json":
            base = best_of(lambda: json.loads(path.read_text(encoding="utf-8")))
        else:
            base = best_of(lambda: path.read_text(encoding="utf-8").split("\n"))
        print(f"{rel:48} {n:8d} {ours * 1e3:11.1f} ms {base * 1e3:12.1f} ms {ours / base:6.1f}")


if __name__ == "__main__":
    main()
