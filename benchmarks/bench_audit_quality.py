"""Quality of the built-in reference audit against the AI-labelled sets in data/audit_labels/ (see NOTE.md there):
precision and recall per category and at caption level (any of spelling, real_word, grammar, truncated,
non_caption), the false alarms by mechanism and the misses by what the audit had for them (a finding below the
threshold, or none), spelling by word type with how often the top suggestion is the right correction, and the
reliability of the confidences (among findings with confidence >= c, the share that is right).

Evaluation protocol: the first label set is split by image into dev and test (`capeval.audit.evaluation.split_of`);
data/audit_labels/dev2/ is a second dev set, data/audit_labels/dev3/ a third that judges findings (real-word and grammar
spans, right or wrong) instead of captions, dev4/ a fourth that does so for the rules without the language model, and
the held-out set (data/audit_labels/heldout/) a second test set. Figures are printed per split; `--show-errors`
lists the misses of the DEV sets only (test misses are never printed). The checker runs on the WHOLE Karpathy
reference corpus (corpus awareness needs all of it); only labelled captions are scored.

Usage: python benchmarks/bench_audit_quality.py [--data DIR] [--min-confidence X] [--show-errors CATEGORY]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from capeval.audit import CAPTION_LEVEL, CATEGORIES, audit_captions  # noqa: E402
from capeval.audit.finding import DEFAULT_MIN_CONFIDENCE  # noqa: E402
from capeval.audit import evaluation as ev  # noqa: E402
from capeval.audit.corpus import words_of  # noqa: E402


def _f(x: float) -> str:
    return "  n/a" if x != x else f"{x:.3f}"


def _category_lines(table) -> None:
    print(f"  {'category':<16} {'gold':>5} {'pred':>5} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7}")
    for r in table.to_dict("records"):
        print(f"  {r['category']:<16} {r['gold']:>5} {r['pred']:>5} {r['tp']:>4} {r['fp']:>4} {r['fn']:>4} "
              f"{_f(r['precision']):>9} {_f(r['recall']):>7}")


def _types_line(label: str, t: dict) -> None:
    print(f"  spelling types ({label}): labelled {t['types']}, typos {t['gold']}, flagged {t['pred']}: precision "
          f"{_f(t['precision'])}, recall {_f(t['recall'])} (TP {t['tp']}, FP {t['fp']}, FN {t['fn']}); top suggestion "
          f"right {t['fix_right']}/{t['fix_found']} = {_f(t['top_suggestion'])}")


def _mechanism_lines(shown, misses) -> None:
    """Where the false alarms come from and what the audit had for the misses (spelling, real_word, grammar)."""
    wrong = shown[shown["wrong"] > 0]
    print("  false alarms by mechanism (shown findings on labelled captions: wrong of all):"
          + ("" if len(wrong) else " none"))
    for r in wrong.to_dict("records"):
        print(f"    {r['mechanism']:<44} {r['wrong']:>3} of {r['findings']:>3}")
    print("  misses by what the audit had (the most confident finding of the category below the threshold):"
          + ("" if len(misses) else " none"))
    for r in misses.to_dict("records"):
        print(f"    {r['category']:<10} {r['mechanism']:<44} {r['misses']:>3}")


def _reliability_lines(table) -> None:
    print("  reliability (all labelled categories): confidence >= c -> findings, precision")
    for r in table.to_dict("records"):
        ok = "" if r["calibrated"] is None else ("ok" if r["calibrated"] else "BELOW c")
        print(f"    c={r['confidence >=']:.2f}: {r['findings']:>4} findings, precision {_f(r['precision'])} {ok}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("CAPEVAL_DATA_MIRROR") or str(REPO.parent / "shared" / "datasets"))
    ap.add_argument("--labels", default=str(REPO / "data" / "audit_labels"))
    ap.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE)
    ap.add_argument("--show-errors", default=None, choices=[*CATEGORIES, "caption", "types"],
                    help="print the DEV split's false positives/negatives of this category (or 'caption', 'types')")
    args = ap.parse_args()
    labels_dir = Path(args.labels)
    src = Path(args.data) / "coco-karpathy-test" / "coco_test.json"
    if not src.is_file():
        sys.exit(f"Karpathy references not found: {src}")
    from capeval.io import load_captions

    reserved = ev.reserved_images(str(Path(args.data)))
    sets = ev.protocol_sets(labels_dir, reserved)
    first = sets[0][0]

    refs = load_captions(src, allow_empty=True)
    result = audit_captions(refs, min_confidence=0.0, progress=False)  # the hidden findings explain the misses
    texts = refs.by_id()
    findings = [f for f in result.findings if f.confidence >= args.min_confidence]
    image_split = {c.image_id: ev.split_of(c.image_id, reserved) for c in refs.captions}
    for labels, split in sets:
        missing = labels.ids() - set(texts)
        if missing:
            sys.exit(f"{len(missing)} labelled caption ids of the {labels.name} are not in {src}")

    print(f"audited {len(refs)} Karpathy-test references; min confidence {args.min_confidence}; "
          f"first set split by image: dev {len(first.ids('dev'))} / test {len(first.ids('test'))} captions "
          f"({len(reserved & set(first.captions['image_id']))} val2017 images kept in test)")
    for labels, split in sets:
        ids = labels.ids(split)
        print(f"\n== {labels.name}, {split.upper()} split ({len(ids)} captions) ==")
        _category_lines(ev.category_table(findings, labels, split, min_confidence=args.min_confidence))
        _mechanism_lines(ev.mechanism_table(ev.finding_truth(findings, labels, split)),
                         ev.miss_table(result.findings, labels, split, min_confidence=args.min_confidence))
        present = {w for cid in ids for w in words_of(texts[cid].text)}
        if labels.word_types:
            _types_line("labelled captions, word_types.csv",
                        ev.spelling_types(findings, labels.word_types, ids, present,
                                          min_confidence=args.min_confidence))
        if labels.corpus_word_types:
            scope = {c.caption_id for c in refs.captions if image_split[c.image_id] == split}
            corpus_present = {w for cid in scope for w in words_of(texts[cid].text)}
            t = ev.spelling_types(findings, labels.corpus_word_types, scope, corpus_present,
                                  min_confidence=args.min_confidence)
            _types_line(f"all references of the {split} images, word_types_corpus.csv", t)
        judged = ev.finding_truth(findings, labels, split, image_split if labels.corpus_word_types else None)
        _reliability_lines(ev.reliability_table(judged))

    for judgements in ev.finding_judgement_sets(labels_dir):
        judged = judgements.judge(findings)
        scope = f"; rules {', '.join(judgements.excluded_rules)} not judged" if judgements.excluded_rules else ""
        print(f"\n== {judgements.name}, DEV ({len(judgements.verdicts)} judged findings, "
              f"{len(judgements.images)} images{scope}) ==")
        for cat in ("real_word", "grammar"):
            sel = [ok for f, ok in judged if f.category == cat]
            print(f"  {cat:<16} shown {len(sel):>4}, right {sum(sel):>4}, precision "
                  f"{_f(sum(sel) / len(sel) if sel else float('nan'))}")
        _reliability_lines(ev.reliability_table(judged))

    if args.show_errors:
        for labels, split in sets:
            if split == "dev":
                _show_dev_errors(args.show_errors, findings, labels, texts, refs, image_split, args.min_confidence)


def _show_dev_errors(cat, findings, labels, texts, refs, image_split, min_confidence) -> None:
    """Misses and false alarms of the DEV split only (the test splits are never inspected)."""
    ids = labels.ids("dev")
    print(f"\n== {labels.name}, dev-split errors: {cat} ==")
    if cat == "types" and not labels.corpus_word_types:
        t = ev.spelling_types(findings, labels.word_types, ids, {w for cid in ids for w in words_of(texts[cid].text)},
                              min_confidence=min_confidence)
        for w in sorted(set(t["flagged_types"]) - t["gold_types"]):
            print(f"  FP type {w!r}")
        for w in sorted(t["gold_types"] - set(t["flagged_types"])):
            print(f"  FN type {w!r}")
        return
    if cat == "types":
        scope = {c.caption_id for c in refs.captions if image_split[c.image_id] == "dev"}
        present = {w for cid in scope for w in words_of(texts[cid].text)}
        t = ev.spelling_types(findings, labels.corpus_word_types, scope, present, min_confidence=min_confidence)
        flagged, gold = t["flagged_types"], t["gold_types"]
        for w in sorted(set(flagged) - gold):
            print(f"  FP type {w!r} -> {flagged[w].most_common(1)[0][0]!r}")
        for w in sorted(gold - set(flagged)):
            print(f"  FN type {w!r} (correction {labels.corpus_word_types[w].get('correction')!r})")
        for w in sorted(set(flagged) & gold - t["right_fix"]):
            print(f"  wrong fix {w!r}: {flagged[w].most_common(1)[0][0]!r} vs "
                  f"{labels.corpus_word_types[w]['correction']!r}")
        return
    cats = CAPTION_LEVEL if cat == "caption" else {cat}
    pred = {f.caption_id for f in findings if f.caption_id in ids and f.category in cats}
    gold = set().union(*(labels.gold(c, "dev") for c in cats))
    notes = dict(zip(labels.captions["caption_id"], labels.captions["notes"]))
    by_caption: dict[str, list[str]] = {}
    for f in findings:
        by_caption.setdefault(f.caption_id, []).append(f"{f.category}:{f.text!r}->{f.suggestion!r} {f.rule} "
                                                       f"{f.confidence:.2f}")
    for kind, sel in (("FP", pred - gold), ("FN", gold - pred)):
        for cid in sorted(sel):
            print(f"  {kind} {cid}: {texts[cid].text.strip()!r} | found {by_caption.get(cid, [])} | "
                  f"note {notes.get(cid)!r}")


if __name__ == "__main__":
    main()
