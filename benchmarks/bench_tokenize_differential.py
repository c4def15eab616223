"""Differential run of capeval's PTB tokenizer against pycocoevalcap's Java PTBTokenizer on seeded mutations of real
COCO references (shouting, contractions, emoji, HTML entities, URLs, smileys, Unicode hyphens and quotes; see
tests/ptb_support.py). Prints how many token lists differ, by documented mismatch class, and any outside them.

    python benchmarks/bench_tokenize_differential.py [--n 2000] [--seed 0] [--show 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ptb_support import java_ptb_tokenize, mismatch_class, mutated_captions  # noqa: E402

from capeval.text.tokenize import PTBTokenizer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=5, help="mismatches to print per class")
    args = ap.parse_args()
    mirror = Path(os.environ.get("CAPEVAL_DATA_MIRROR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    refs = mirror / "coco-karpathy-test" / "coco_test.json"
    if not refs.is_file():
        print(f"needs the Karpathy test references at {refs} (set CAPEVAL_DATA_MIRROR)", file=sys.stderr)
        return 2
    captions = [c for e in json.loads(refs.read_text(encoding="utf-8")) for c in e["caption"]]
    texts = mutated_captions(captions, args.n, args.seed)
    t0 = time.perf_counter()
    expected = java_ptb_tokenize(texts, follow="A")
    t_java = time.perf_counter() - t0
    tok = PTBTokenizer()
    t0 = time.perf_counter()
    got = [tok.tokenize(t) for t in texts]
    t_py = time.perf_counter() - t0
    bad = [(t, g, e) for t, g, e in zip(texts, got, expected) if g != e]
    classes = Counter(mismatch_class(t) or "UNDOCUMENTED" for t, _, _ in bad)
    print(f"{args.n} mutated captions (seed {args.seed}): {len(bad)} differ from Java ({100 * len(bad) / args.n:.2f}%); "
          f"Java {t_java:.2f} s (one JVM), capeval {t_py:.3f} s")
    for name, count in classes.most_common():
        print(f"  {count:4d}  {name}")
        for t, g, e in [b for b in bad if (mismatch_class(b[0]) or "UNDOCUMENTED") == name][: args.show]:
            print(f"        {t!r}\n          capeval {g}\n          java    {e}")
    return 1 if classes.get("UNDOCUMENTED") else 0


if __name__ == "__main__":
    sys.exit(main())
