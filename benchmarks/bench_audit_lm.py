"""Caption LM and real-word candidates: held-out perplexity, caption-level real_word precision/recall of
`real_word_hits` on the DEV split of data/audit_labels per threshold, and CPU time per caption on the 25,010
Karpathy-test references (one core).

    python benchmarks/bench_audit_lm.py [--perplexity]

Test-split figures are not printed (the test split is reported by bench_audit_quality.py, never inspected here).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import resource
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from capeval.audit import build_lm
from capeval.audit.candidates import DEFAULT_THRESHOLD, real_word_hits_batch
from capeval.audit.corpus import words_of
from capeval.audit.evaluation import reserved_images, split_of
from capeval.audit.lm import CaptionLM, default_path

REPO = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def _karpathy(mirror: Path) -> tuple[dict[str, str], dict[int, list[str]]]:
    caps: dict[str, str] = {}
    by_image: dict[int, list[str]] = defaultdict(list)
    for item in json.loads((mirror / "coco-karpathy-test" / "coco_test.json").read_text(encoding="utf-8")):
        image = int(re.search(r"(\d+)\.jpg$", item["image"]).group(1))
        for k, text in enumerate(item["caption"]):
            caps[f"{image}#{k}"] = text
            by_image[image].append(f"{image}#{k}")
    return caps, by_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--perplexity", action="store_true", help="also train the held-out models (about a minute)")
    args = ap.parse_args()
    mirror = build_lm._mirror(None)
    lm = CaptionLM.load()
    caps, by_image = _karpathy(mirror)

    if args.perplexity:
        print("held-out perplexity (every 10th image held out):")
        for row in build_lm.evaluate(mirror):
            print(" ", row)

    reserved = reserved_images(str(mirror))
    with open(REPO / "data" / "audit_labels" / "captions.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if split_of(r["image_id"], reserved) == "dev"]
    toks = [words_of(caps[r["caption_id"]]) for r in rows]
    sibs = [[words_of(caps[c]) for c in by_image[int(r["image_id"])] if c != r["caption_id"]] for r in rows]
    hits = real_word_hits_batch(toks, sibs, lm, threshold=-10.0)
    best = [max(h, key=lambda x: x.log_ratio) if h else None for h in hits]
    truth = [r["real_word"] == "1" for r in rows]
    print(f"\ndev split: {len(rows)} captions, {sum(truth)} with a real_word label (caption level: a caption is "
          "flagged when its best hit reaches the threshold)")
    print("| threshold | flagged | right | precision | recall |")
    print("|---|---|---|---|---|")
    for thr in (0, 1, 2, 3, 4, 5, 6, 8):
        flagged = [b is not None and b.log_ratio >= thr for b in best]
        right = sum(f and t for f, t in zip(flagged, truth))
        n = sum(flagged)
        mark = " (default)" if thr == DEFAULT_THRESHOLD else ""
        print(f"| {thr}{mark} | {n} | {right} | {right / max(n, 1):.2f} | {right / max(sum(truth), 1):.2f} |")
    by_mech, right_mech = Counter(), Counter()
    for b, t in zip(best, truth):
        if b is not None and b.log_ratio >= DEFAULT_THRESHOLD:
            by_mech[b.mechanism] += 1
            right_mech[b.mechanism] += t
    print("right/flagged by mechanism at the default threshold:",
          ", ".join(f"{m} {right_mech[m]}/{by_mech[m]}" for m in sorted(by_mech)))

    all_toks, all_sibs = [], []
    for ids in by_image.values():
        words = [words_of(caps[c]) for c in ids]
        for k in range(len(words)):
            all_toks.append(words[k])
            all_sibs.append(words[:k] + words[k + 1:])
    with np.load(default_path(), allow_pickle=False) as z:
        fresh = CaptionLM({k: z[k] for k in z.files})  # a new model object: its caches start empty
    t = _cpu()
    found = real_word_hits_batch(all_toks, all_sibs, fresh, threshold=DEFAULT_THRESHOLD)
    first = _cpu() - t
    t = _cpu()
    real_word_hits_batch(all_toks, all_sibs, fresh, threshold=DEFAULT_THRESHOLD)
    again = _cpu() - t
    print(f"\nspeed on {len(all_toks):,} Karpathy-test references, one batch, CPU time: first call on a fresh model "
          f"{1e6 * first / len(all_toks):.0f} us/caption, again {1e6 * again / len(all_toks):.0f} us/caption; "
          f"{sum(map(len, found))} hits at the default threshold")


if __name__ == "__main__":
    main()
