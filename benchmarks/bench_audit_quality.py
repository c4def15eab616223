"""Quality of the built-in reference audit against the hand-labelled set in data/audit_labels/: precision and
recall per category and at caption level (any of spelling, real_word, grammar, truncated, non_caption), spelling
precision/recall over word types, and how often the top suggestion is the right correction of a true typo.

The checker runs on the WHOLE Karpathy reference corpus (corpus awareness needs all of it); only the labelled
captions are scored. Usage: python benchmarks/bench_audit_quality.py [--data DIR] [--labels DIR] [--min-confidence X]
[--show-errors CATEGORY]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from capeval.audit import CAPTION_LEVEL, CATEGORIES, audit_captions  # noqa: E402


def _pr(pred: set, gold: set) -> tuple[float, float, int, int, int]:
    tp = len(pred & gold)
    fp = len(pred - gold)
    fn = len(gold - pred)
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    return p, r, tp, fp, fn


def _fmt(x: float) -> str:
    return "  n/a" if x != x else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("CAPEVAL_DATA_MIRROR") or str(REPO.parent / "shared" / "datasets"))
    ap.add_argument("--labels", default=str(REPO / "data" / "audit_labels"))
    ap.add_argument("--min-confidence", type=float, default=0.5)
    ap.add_argument("--show-errors", default=None, choices=[*CATEGORIES, "caption", "types"],
                    help="print false positives/negatives of this category (or 'caption', 'types')")
    args = ap.parse_args()
    labels = Path(args.labels)
    src = Path(args.data) / "coco-karpathy-test" / "coco_test.json"
    if not (labels / "captions.csv").is_file():
        sys.exit(f"no labels at {labels}/captions.csv")
    if not src.is_file():
        sys.exit(f"Karpathy references not found: {src}")

    from capeval.io import load_captions

    refs = load_captions(src, allow_empty=True)
    result = audit_captions(refs, min_confidence=args.min_confidence, progress=False)
    texts = refs.by_id()

    with open(labels / "captions.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ids = {r["caption_id"] for r in rows}
    missing = ids - set(texts)
    if missing:
        sys.exit(f"{len(missing)} labelled caption ids are not in {src} (e.g. {sorted(missing)[:3]})")
    pred_by_cat: dict[str, set[str]] = {c: set() for c in CATEGORIES}
    for f in result.findings:
        if f.caption_id in ids:
            pred_by_cat[f.category].add(f.caption_id)
    gold_by_cat = {c: {r["caption_id"] for r in rows if r.get(c, "0").strip() == "1"} for c in CATEGORIES}

    print(f"labelled captions: {len(rows)} (of {len(refs)} audited); min confidence {args.min_confidence}")
    print(f"{'category':<26} {'gold':>5} {'pred':>5} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7}")
    for c in CATEGORIES:
        p, r, tp, fp, fn = _pr(pred_by_cat[c], gold_by_cat[c])
        print(f"{c:<26} {len(gold_by_cat[c]):>5} {len(pred_by_cat[c]):>5} {tp:>4} {fp:>4} {fn:>4} {_fmt(p):>9} "
              f"{_fmt(r):>7}")
    pred_cap = set().union(*(pred_by_cat[c] for c in CAPTION_LEVEL))
    gold_cap = set().union(*(gold_by_cat[c] for c in CAPTION_LEVEL))
    p, r, tp, fp, fn = _pr(pred_cap, gold_cap)
    print(f"{'caption level (any error)':<26} {len(gold_cap):>5} {len(pred_cap):>5} {tp:>4} {fp:>4} {fn:>4} "
          f"{_fmt(p):>9} {_fmt(r):>7}")

    # spelling at word-type level
    flagged: dict[str, Counter] = {}
    flagged_in_sample: set[str] = set()
    for f in result.findings:
        if f.category == "spelling":
            w = f.text.lower()
            flagged.setdefault(w, Counter())[(f.suggestion or "").lower()] += 1
            if f.caption_id in ids:
                flagged_in_sample.add(w)
    for fname, scope, scope_name in (("word_types.csv", flagged_in_sample, "labelled captions"),
                                     ("word_types_corpus.csv", set(flagged), "whole corpus")):
        path = labels / fname
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8") as fh:
            types = {r["word"].lower(): r for r in csv.DictReader(fh)}
        gold_typo = {w for w, r in types.items() if r["label"].strip() == "typo"}
        p, r, tp, fp, fn = _pr(scope, gold_typo)
        unlabelled = scope - set(types)
        print(f"spelling types ({scope_name}, {fname}): labelled {len(types)}, typos {len(gold_typo)}, flagged "
              f"{len(scope)} (of which {len(unlabelled)} not in the label file, counted as false positives): "
              f"precision {_fmt(p)}, recall {_fmt(r)} (TP {tp}, FP {fp}, FN {fn})")
        with_fix = [w for w in gold_typo if types[w].get("correction", "").strip()]
        right = [w for w in with_fix if w in flagged and flagged[w].most_common(1)[0][0]
                 == types[w]["correction"].strip().lower()]
        found = [w for w in with_fix if w in flagged]
        acc_found = len(right) / len(found) if found else float("nan")
        acc_all = len(right) / len(with_fix) if with_fix else float("nan")
        print(f"  top suggestion right: {len(right)}/{len(found)} flagged true typos = {_fmt(acc_found)}; "
              f"{len(right)}/{len(with_fix)} of all true typos with a correction = {_fmt(acc_all)}")
        if args.show_errors == "types":
            for w in sorted(scope - gold_typo):
                print(f"    FP type {w!r} -> {flagged[w].most_common(1)[0][0]!r}")
            for w in sorted(gold_typo - scope):
                print(f"    FN type {w!r} (correction {types[w].get('correction')!r})")
            for w in sorted(set(found) - set(right)):
                print(f"    wrong fix {w!r}: {flagged[w].most_common(1)[0][0]!r} vs {types[w]['correction']!r}")

    if args.show_errors and args.show_errors != "types":
        cat = args.show_errors
        pred, gold = (pred_cap, gold_cap) if cat == "caption" else (pred_by_cat[cat], gold_by_cat[cat])
        notes = {r["caption_id"]: r.get("notes", "") for r in rows}
        by_caption: dict[str, list[str]] = {}
        for f in result.findings:
            by_caption.setdefault(f.caption_id, []).append(f"{f.category}:{f.text!r}->{f.suggestion!r}")
        for kind, sel in (("FP", pred - gold), ("FN", gold - pred)):
            for cid in sorted(sel):
                print(f"{kind} {cid}: {texts[cid].text.strip()!r} | found {by_caption.get(cid, [])} | "
                      f"note {notes.get(cid)!r}")


if __name__ == "__main__":
    main()
