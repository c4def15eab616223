"""Measuring the audit against labelled captions: the dev/test split of the label set, precision and recall per
category and at caption level, spelling by word type, and the reliability of the confidences.

Evaluation protocol (issue 10): the first label set (`data/audit_labels/`) is split BY IMAGE into `dev` (rules and
calibration are developed on it) and `test` (reported, never inspected caption by caption); the held-out set
(`data/audit_labels/heldout/`, labelled after its criteria were written) is a second test set, all `test`; the
second development set (`data/audit_labels/dev2/`, labelled under the same criteria) is all `dev`. The third
development set (`data/audit_labels/dev3/`) judges findings instead of captions: every real-word and grammar finding
the raw audit made on its captions, right or wrong (`FindingJudgements`); the fourth (`data/audit_labels/dev4/`)
does the same for the rules that do not use the caption language model, on every other dev-split image (the model
is trained on their references). Both feed the calibration only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from capeval.audit.finding import CAPTION_LEVEL, CATEGORIES, Finding
from capeval.errors import InputError

SPLIT_SALT = "capeval-audit-labels-2026"
TEST_SHARE = 0.5
RELIABILITY_LEVELS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def split_of(image_id: str, reserved: frozenset[str] = frozenset()) -> str:
    """'dev' or 'test' for an image of the first label set: the first byte of SHA-256("<salt>:<image id>") below
    TEST_SHARE * 256 is test. Images in `reserved` (those of coco-val2017, never tuned on) are always test."""
    if image_id in reserved:
        return "test"
    h = hashlib.sha256(f"{SPLIT_SALT}:{image_id}".encode()).digest()[0]
    return "test" if h < TEST_SHARE * 256 else "dev"


@lru_cache(maxsize=4)
def reserved_images(datasets: str) -> frozenset[str]:
    """Image ids of coco-val2017 (reserved for evaluation) as numeric strings; empty when the file is absent."""
    path = Path(datasets) / "coco-val2017" / "captions_val2017.json"
    if not path.is_file():
        return frozenset()
    with open(path, encoding="utf-8") as fh:
        return frozenset(str(int(im["id"])) for im in json.load(fh)["images"])


@dataclass
class LabelSet:
    """One labelled caption set: caption rows (0/1 per category) and word-type labels, each row with its split."""

    name: str
    captions: pd.DataFrame  # caption_id, image_id, split, one 0/1 column per category, notes
    word_types: dict[str, dict[str, str]] = field(default_factory=dict)  # word -> row (label, correction, ...)
    corpus_word_types: dict[str, dict[str, str]] = field(default_factory=dict)  # whole-corpus supplement
    labelled: frozenset[str] = frozenset(CATEGORIES)  # categories this set labels at all

    def ids(self, split: str | None = None) -> set[str]:
        df = self.captions if split is None else self.captions[self.captions["split"] == split]
        return set(df["caption_id"])

    def gold(self, category: str, split: str | None = None) -> set[str]:
        df = self.captions if split is None else self.captions[self.captions["split"] == split]
        return set(df.loc[df[category] == 1, "caption_id"])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_labels(folder: str | Path, *, name: str, split: str | None = None, reserved: frozenset[str] = frozenset(),
                labelled: Iterable[str] = CATEGORIES) -> LabelSet:
    """Read `captions.csv` (+ `word_types.csv`, `word_types_corpus.csv` when present) of a label folder. `split`:
    the split every row belongs to (the held-out set: 'test'); None: by image with `split_of`."""
    folder = Path(folder)
    path = folder / "captions.csv"
    if not path.is_file():
        raise InputError(f"no caption labels at {path}")
    rows = _read_csv(path)
    for r in rows:
        for c in CATEGORIES:
            r[c] = int(r.get(c, "0").strip() or 0)
        r["split"] = split or split_of(r["image_id"], reserved)
    df = pd.DataFrame(rows)
    wt = {r["word"].lower(): r for r in _read_csv(folder / "word_types.csv")} if (
        folder / "word_types.csv").is_file() else {}
    cwt = {r["word"].lower(): r for r in _read_csv(folder / "word_types_corpus.csv")} if (
        folder / "word_types_corpus.csv").is_file() else {}
    if cwt:
        # the corpus file lists the words the dictionary does not know; the sample's typos that it does know
        # ("someones", "os") are labels of the same corpus by the same criteria, so the corpus scope has them too
        cwt.update({w: r for w, r in wt.items() if r.get("in_dictionary") == "1" and w not in cwt})
    return LabelSet(name, df, wt, cwt, frozenset(labelled))


LANGUAGE_ONLY = [c for c in CATEGORIES if c not in ("low_detail", "off_consensus")]  # what heldout and dev2 label


def protocol_sets(folder: str | Path, reserved: frozenset[str]) -> list[tuple[LabelSet, str]]:
    """Every (label set, split) of the evaluation protocol present under `folder`: the first set's dev and test
    splits, the second development set (dev2/, all dev) and the held-out test set (heldout/, all test)."""
    folder = Path(folder)
    first = load_labels(folder, name="first set", reserved=reserved)
    out = [(first, "dev")]
    if (folder / "dev2" / "captions.csv").is_file():
        out.append((load_labels(folder / "dev2", name="dev2 set", split="dev", labelled=LANGUAGE_ONLY), "dev"))
    out.append((first, "test"))
    if (folder / "heldout" / "captions.csv").is_file():
        out.append((load_labels(folder / "heldout", name="held-out set", split="test", labelled=LANGUAGE_ONLY),
                    "test"))
    return out


@dataclass(frozen=True)
class FindingJudgements:
    """Judged findings of one development set: (caption id, category, start, end) -> whether that span is an error
    of that category. Spans the judges never saw (a rule changed since) are not judged."""

    name: str
    verdicts: dict[tuple[str, str, int, int], bool]
    images: frozenset[str]
    excluded_rules: tuple[str, ...] = ()  # rules (and their sub-rules) whose findings no verdict here judges

    def judge(self, findings: Iterable[Finding]) -> list[tuple[Finding, bool]]:
        """The findings on a judged span, each with its verdict (none of an excluded rule's)."""
        v = self.verdicts
        return [(f, v[key]) for f in findings if (key := (f.caption_id, f.category, f.start, f.end)) in v
                and not self.excludes(f.rule)]

    def excludes(self, rule: str) -> bool:
        """Whether `rule` is one of the excluded rules or a sub-rule of one ("real_word.lm.edit1.b0")."""
        return any(rule == r or rule.startswith(r + ".") for r in self.excluded_rules)


def load_finding_judgements(folder: str | Path, *, name: str | None = None) -> FindingJudgements:
    """Read `findings.csv` (caption_id, image_id, category, start, end, text, right, note), `images.csv` and the
    optional `scope.json` ({"excluded_rules": [rule, ...], "why": ...}) of a finding-judged development set."""
    folder = Path(folder)
    name = name if name is not None else f"{folder.name} set"
    path = folder / "findings.csv"
    if not path.is_file():
        raise InputError(f"no judged findings at {path}")
    verdicts = {}
    for k, r in enumerate(_read_csv(path), start=2):
        if r["right"] not in ("0", "1"):
            raise InputError(f"{path}:{k}: 'right' must be 0 or 1, got {r['right']!r}")
        verdicts[(r["caption_id"], r["category"], int(r["start"]), int(r["end"]))] = r["right"] == "1"
    images = frozenset(r["image_id"] for r in _read_csv(folder / "images.csv"))
    return FindingJudgements(name, verdicts, images, _excluded_rules(folder / "scope.json"))


FINDING_SETS = ("dev3", "dev4")  # the finding-judged development sets under data/audit_labels/


def finding_judgement_sets(folder: str | Path) -> list[FindingJudgements]:
    """Every finding-judged development set present under `folder` (the label folder), in FINDING_SETS order."""
    return [load_finding_judgements(Path(folder) / name) for name in FINDING_SETS
            if (Path(folder) / name / "findings.csv").is_file()]


def _excluded_rules(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ()
    try:
        rules = json.loads(path.read_text(encoding="utf-8")).get("excluded_rules", [])
    except (json.JSONDecodeError, AttributeError) as e:
        raise InputError(f"{path}: expected a JSON object with a list 'excluded_rules' ({e})") from None
    if not isinstance(rules, list) or not all(isinstance(r, str) and r for r in rules):
        raise InputError(f"{path}: 'excluded_rules' must be a list of rule names")
    return tuple(rules)


def _pr(pred: set, gold: set) -> dict:
    tp, fp, fn = len(pred & gold), len(pred - gold), len(gold - pred)
    return {"gold": len(gold), "pred": len(pred), "tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else math.nan, "recall": tp / (tp + fn) if tp + fn else math.nan}


def category_table(findings: Iterable[Finding], labels: LabelSet, split: str | None, *,
                   min_confidence: float) -> pd.DataFrame:
    """Precision and recall per category and at caption level (any of CAPTION_LEVEL) on one split's captions,
    counting the findings with confidence >= `min_confidence` (no default: a report states its threshold)."""
    ids = labels.ids(split)
    pred: dict[str, set[str]] = {c: set() for c in CATEGORIES}
    for f in findings:
        if f.caption_id in ids and f.confidence >= min_confidence:
            pred[f.category].add(f.caption_id)
    rows = []
    for c in CATEGORIES:
        if c in labels.labelled:
            rows.append({"category": c, **_pr(pred[c], labels.gold(c, split))})
    level = [c for c in CAPTION_LEVEL if c in labels.labelled]
    rows.append({"category": "caption level", **_pr(set().union(*(pred[c] for c in level)),
                                                     set().union(*(labels.gold(c, split) for c in level)))})
    out = pd.DataFrame(rows)
    out.insert(0, "captions", len(ids))
    return out


def spelling_types(findings: Iterable[Finding], types: dict[str, dict[str, str]], scope_ids: set[str],
                   present: set[str], *, min_confidence: float) -> dict:
    """Spelling by word type over one scope: the types flagged on captions in `scope_ids` against the labelled
    types that occur there (`present`: the lowercased words of those captions); a flagged type missing from the
    labels counts as a false positive. Also how often the most frequent suggestion for a found typo is its
    correction."""
    flagged: dict[str, Counter] = {}
    for f in findings:
        if f.category == "spelling" and f.confidence >= min_confidence and f.caption_id in scope_ids:
            flagged.setdefault(f.text.lower(), Counter())[(f.suggestion or "").lower()] += 1
    types = {w: r for w, r in types.items() if w in present}
    gold = {w for w, r in types.items() if r["label"].strip() == "typo"}
    pr = _pr(set(flagged), gold)
    with_fix = [w for w in gold if types[w].get("correction", "").strip()]
    found = [w for w in with_fix if w in flagged]
    right = [w for w in found if flagged[w].most_common(1)[0][0] == types[w]["correction"].strip().lower()]
    return {**pr, "types": len(types), "fix_found": len(found), "fix_right": len(right),
            "top_suggestion": len(right) / len(found) if found else math.nan,
            "flagged_types": flagged, "gold_types": gold, "right_fix": set(right)}


def finding_truth(findings: Iterable[Finding], labels: LabelSet, split: str | None,
                  corpus_split: dict[str, str] | None = None) -> list[tuple[Finding, bool]]:
    """Each finding that can be judged, with whether it is right: findings on labelled captions of the split (right
    when the caption carries that category's label), plus, with `corpus_split` (image id -> split for the whole
    corpus), spelling findings anywhere in the split judged by the whole-corpus word-type labels."""
    ids = labels.ids(split)
    gold = {c: labels.gold(c, split) for c in CATEGORIES if c in labels.labelled}
    out = []
    seen: set[tuple[str, int]] = set()
    for f in findings:
        if f.caption_id in ids and f.category in gold:
            out.append((f, f.caption_id in gold[f.category]))
            seen.add((f.caption_id, f.start))
    if corpus_split is not None and labels.corpus_word_types:
        typos = {w for w, r in labels.corpus_word_types.items() if r["label"].strip() == "typo"}
        for f in findings:
            if (f.category == "spelling" and (f.caption_id, f.start) not in seen
                    and (split is None or corpus_split.get(f.image_id) == split)
                    and f.caption_id not in labels.ids()):
                out.append((f, f.text.lower() in typos))
    return out


_BAND = re.compile(r"\.b\d+$")


def mechanism(rule: str) -> str:
    """The mechanism a rule name stands for: the name without its log-odds band ("real_word.lm.edit1.b2" ->
    "real_word.lm.edit1")."""
    return _BAND.sub("", rule)


def mechanism_table(judged: list[tuple[Finding, bool]], categories: Iterable[str] = ("spelling", "real_word",
                                                                                     "grammar")) -> pd.DataFrame:
    """Judged findings by mechanism (category, mechanism, findings, right, wrong, precision), most wrong first: where
    the false alarms come from."""
    counts: dict[tuple[str, str], list[int]] = {}
    for f, ok in judged:
        if f.category in categories:
            c = counts.setdefault((f.category, mechanism(f.rule)), [0, 0])
            c[0] += 1
            c[1] += int(ok)
    rows = [{"category": cat, "mechanism": m, "findings": n, "right": tp, "wrong": n - tp, "precision": tp / n}
            for (cat, m), (n, tp) in counts.items()]
    cols = ["category", "mechanism", "findings", "right", "wrong", "precision"]
    return pd.DataFrame(rows, columns=cols).sort_values(["wrong", "findings", "mechanism"],
                                                         ascending=[False, False, True], ignore_index=True)


def miss_table(findings: Iterable[Finding], labels: LabelSet, split: str | None, *, min_confidence: float,
               categories: Iterable[str] = ("spelling", "real_word", "grammar")) -> pd.DataFrame:
    """The labelled errors no shown finding of their category flags, by what the audit had for them: the mechanism
    of the most confident finding of that category below `min_confidence` on the caption ("found below the
    threshold"), or "(no finding)" when no rule flagged that category there at all. `findings` must include the
    findings below the threshold (an audit at min_confidence 0)."""
    by_caption: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        by_caption.setdefault((f.caption_id, f.category), []).append(f)
    counts: Counter = Counter()
    for cat in categories:
        if cat not in labels.labelled:
            continue
        for cid in labels.gold(cat, split):
            fs = by_caption.get((cid, cat), [])
            if any(f.confidence >= min_confidence for f in fs):
                continue
            best = max(fs, key=lambda f: (f.confidence, f.rule), default=None)
            counts[(cat, "(no finding)" if best is None else mechanism(best.rule))] += 1
    rows = [{"category": c, "mechanism": m, "misses": n} for (c, m), n in counts.items()]
    return pd.DataFrame(rows, columns=["category", "mechanism", "misses"]).sort_values(
        ["category", "misses", "mechanism"], ascending=[True, False, True], ignore_index=True)


def reliability_table(judged: list[tuple[Finding, bool]], levels: Iterable[float] = RELIABILITY_LEVELS
                      ) -> pd.DataFrame:
    """For each level c: the findings with confidence >= c and their precision (calibrated: precision >= c)."""
    rows = []
    for c in levels:
        sel = [ok for f, ok in judged if f.confidence >= c]
        n = len(sel)
        p = sum(sel) / n if n else math.nan
        rows.append({"confidence >=": c, "findings": n, "right": sum(sel), "precision": p,
                     "calibrated": (p >= c) if n else None})
    return pd.DataFrame(rows)
