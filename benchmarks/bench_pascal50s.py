"""PASCAL-50S accuracy per category (HC, HI, HM, MM) for BLEU-4, ROUGE-L and CIDEr-D through capeval's engine,
with the protocol stated (5 references per pair, seeded coin for ties). Usage:
    CAPEVAL_DATA_MIRROR=../shared/datasets .venv/bin/python benchmarks/bench_pascal50s.py [--metrics bleu4,rouge,cider]
"""

from __future__ import annotations

import argparse
import time

from capeval.meta.pairwise import (
    CATEGORIES,
    CLIPSCORE_PUBLISHED,
    PASCAL50S_PROTOCOL,
    load_pascal50s,
    pascal50s_accuracy,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", default="bleu4,rouge,cider")
    ap.add_argument("--seed", type=int, default=0, help="seed of the tie-breaking coin")
    args = ap.parse_args()
    pairs = load_pascal50s()
    t0 = time.perf_counter()
    acc = pascal50s_accuracy(args.metrics.split(","), pairs, seed=args.seed)
    print(f"PASCAL-50S: {len(pairs.frame):,} pairs, {pairs.n_references} references each, tie coin seed {args.seed}")
    print("protocol: " + " ".join(PASCAL50S_PROTOCOL.split()))
    cols = ["metric", *CATEGORIES, "mean", "ties", "n_references"]
    print(acc[[c for c in cols if c in acc]].to_string(index=False, float_format="%.1f"))
    print("CLIPScore (Hessel et al. 2021) published, 5 of ~48 references sampled per image (a different draw):")
    for m, row in CLIPSCORE_PUBLISHED.items():
        print(f"  {m:6s} " + "  ".join(f"{k} {v:.1f}" for k, v in row.items()))
    print(f"({time.perf_counter() - t0:.1f}s)")


if __name__ == "__main__":
    main()
