"""Calibrated confidence: turn each rule's raw score into the share of such findings that are right.

Fitted on the DEV sets only: the first label set's dev split (`evaluation.split_of`), the second development
set (`data/audit_labels/dev2`) and the judged findings of the third and fourth (`data/audit_labels/dev3`, `dev4`;
dev4 judges only the rules without the language model). Every finding the audit makes on a labelled dev caption is
right when the caption carries that category's label; spelling findings anywhere in the first set's dev images are
also judged by the whole-corpus word-type labels; a dev3 or dev4 finding is right when its span was judged an error
of its category. Estimates are shrunk level by level (category -> each
dotted prefix of the rule name -> rule and raw-score band) with `PRIOR_STRENGTH` pseudo-findings at the level above,
so a rule seen a few times gets close to its category's precision and a well-attested one its own. The fitted table
ships as `capeval/audit/data/calibration.json`; rebuild it with `python -m capeval.audit.calibration` (needs the data
mirror) whenever a rule changes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

from capeval.audit.finding import Finding

PRIOR_STRENGTH = 4.0
# reported confidence: posterior mean minus this many posterior standard deviations. Chosen by 5-fold
# cross-validation over the dev images (`--cross-validate`): the smallest z of `Z_CANDIDATES` at which the
# out-of-fold precision of findings with confidence >= c exceeded c by at least its standard error at every level
# (`holds_with_margin`): a precision barely above c on the dev images falls below it on new captions about half the
# time. z = 0.5 passes since missing apostrophes that leave no English word ("thats") are spelling (0.986 at 0.95
# over 143 findings); before that it came within 0.005 of 0.95, and z was 1
Z_CANDIDATES = (0.5, 1.0, 1.5, 2.0)
LOWER_BOUND_Z = 0.5
BAND_WIDTH = 0.1  # raw scores are grouped in bands of this width within a rule


def band_key(f: Finding) -> str:
    return f"{f.rule}|{round(f.confidence / BAND_WIDTH) * BAND_WIDTH:.1f}"


def _prefixes(rule: str) -> list[str]:
    """'real_word.lm.edit1.b2' -> ['real_word.lm', 'real_word.lm.edit1', 'real_word.lm.edit1.b2']: a rule's
    families from the broadest (below its category) to itself."""
    parts = rule.split(".")
    return [".".join(parts[:k]) for k in range(2, len(parts) + 1)]


@dataclass(frozen=True)
class Calibration:
    """Precision estimates by category, rule family (each dotted prefix of a rule name) and (rule, raw-score band);
    `apply` replaces raw scores by the most specific estimate there is."""

    categories: dict[str, float] = field(default_factory=dict)
    rules: dict[str, float] = field(default_factory=dict)  # every rule-name prefix seen on the dev split
    bands: dict[str, float] = field(default_factory=dict)

    def confidence(self, f: Finding) -> float:
        if (p := self.bands.get(band_key(f))) is not None:
            return p
        for prefix in reversed(_prefixes(f.rule)):
            if (p := self.rules.get(prefix)) is not None:
                return p  # the closest family seen on the dev split ("real_word.lm" for an unseen LM band)
        return self.categories.get(f.category, f.confidence)  # a category the dev split never saw: the raw score

    def ceiling(self, rule: str, category: str) -> float:
        """The highest confidence `confidence` can give a finding of `rule` or of any of its sub-rules, rounded as
        `apply` rounds (1.0 when such a finding could keep its raw score): a rule whose ceiling is below the
        threshold cannot show a finding, so the audit need not run it."""
        under = [p for k, p in self.rules.items() if k == rule or k.startswith(rule + ".")]
        under += [p for k, p in self.bands.items() if (r := k.split("|", 1)[0]) == rule or r.startswith(rule + ".")]
        # a sub-rule or band the table lacks gets the nearest family it has, else the category, else its raw score
        fallback = next((self.rules[p] for p in reversed(_prefixes(rule)) if p in self.rules),
                        self.categories.get(category, 1.0))
        return round(max(under + [fallback]), 3)

    def apply(self, findings: list[Finding]) -> list[Finding]:
        """Calibrated copies of the built-in checker's findings (other backends keep their own scores)."""
        return [replace(f, confidence=round(self.confidence(f), 3)) if f.backend == "builtin" else f
                for f in findings]


def fit(judged: list[tuple[Finding, bool]], strength: float = PRIOR_STRENGTH,
        lower_bound_z: float | None = None) -> Calibration:
    """Shrunk precision estimates from (raw finding, right?) pairs: category (uniform prior), then each rule-name
    prefix shrunk towards its parent, then each (rule, band) towards its rule."""
    def counts(keys_of):
        out: dict[str, list[int]] = {}
        for f, ok in judged:
            for key in keys_of(f):
                c = out.setdefault(key, [0, 0])
                c[0] += 1
                c[1] += int(ok)
        return out

    # a category's precision as the mean over its rules (each rule's own smoothed precision), so that a rule never
    # seen on the dev sets is expected to be like a typical rule of its category, not like its most prolific one
    # (286 double spaces, almost never labelled, would otherwise drag every formatting rule down)
    top = counts(lambda f: _prefixes(f.rule)[:1])
    by_cat: dict[str, list[float]] = {}
    for key, (n, tp) in top.items():
        by_cat.setdefault(key.split(".")[0], []).append((tp + 1.0) / (n + 2.0))
    cat = {k: sum(v) / len(v) for k, v in by_cat.items()}
    fam = counts(lambda f: _prefixes(f.rule))
    parent: dict[str, str | None] = {}
    cat_of: dict[str, str] = {}
    for f, _ in judged:
        ps = _prefixes(f.rule)
        for k, p in enumerate(ps):
            parent[p] = ps[k - 1] if k else None
            cat_of[p] = f.category
    rules: dict[str, float] = {}
    for key in sorted(fam, key=lambda k: k.count(".")):  # parents before children
        n, tp = fam[key]
        prior = rules[parent[key]] if parent[key] is not None else cat[cat_of[key]]
        rules[key] = (tp + strength * prior) / (n + strength)
    rule_of = {band_key(f): f.rule for f, _ in judged}
    band_counts = counts(lambda f: [band_key(f)])
    bands = {k: (tp + strength * rules[rule_of[k]]) / (n + strength) for k, (n, tp) in band_counts.items()}
    # more evidence is never less precise: within a rule (and across the log-odds bands `.bN` of one mechanism) the
    # estimates are made non-decreasing in the raw score, so that sampling noise cannot rank a stronger band lower
    rules = _monotone(rules, {k: fam[k][0] + strength for k in rules}, lambda k: _monotone_key(k, None))
    bands = _monotone(bands, {k: band_counts[k][0] + strength for k in bands},
                      lambda k: _monotone_key(rule_of[k], float(k.rsplit("|", 1)[1])))

    def lower(p: float, n: int) -> float:
        """The one-sided bound the promise "precision >= confidence" needs under sampling noise: a rule seen on
        few dev findings is reported below its mean estimate, a well-attested one close to it."""
        z = LOWER_BOUND_Z if lower_bound_z is None else lower_bound_z
        return max(0.0, p - z * math.sqrt(p * (1.0 - p) / (n + strength + 1.0)))

    r = 4
    cat_n = counts(lambda f: [f.category])
    return Calibration({k: round(lower(v, cat_n[k][0]), r) for k, v in sorted(cat.items())},
                       {k: round(lower(v, fam[k][0]), r) for k, v in sorted(rules.items())},
                       {k: round(lower(v, band_counts[k][0]), r) for k, v in sorted(bands.items())})


_BAND_SUFFIX = re.compile(r"\.b(\d+)$")


def _monotone_key(rule: str, score: float | None) -> tuple[str, tuple[float, float]] | None:
    """(group, order) of a rule or band for the monotone fit: the LM families' bands `.bN` of one mechanism form
    one group ordered by N; a rule's raw-score bands one group ordered by score; None: not ordered."""
    m = _BAND_SUFFIX.search(rule)
    if m is not None:
        return rule[:m.start()], (float(m.group(1)), score or 0.0)
    return (rule, (0.0, score)) if score is not None else None


def pool_adjacent_violators(values: list[float], weights: list[float]) -> list[float]:
    """The non-decreasing sequence closest to `values` in weighted least squares (isotonic regression)."""
    blocks: list[list[float]] = []  # [value, weight, members]
    for v, w in zip(values, weights):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return [b[0] for b in blocks for _ in range(int(b[2]))]


def _monotone(estimates: dict[str, float], weights: dict[str, float], key_of) -> dict[str, float]:
    groups: dict[str, list[tuple[tuple[float, float], str]]] = {}
    for k in estimates:
        if (gk := key_of(k)) is not None:
            groups.setdefault(gk[0], []).append((gk[1], k))
    out = dict(estimates)
    for members in groups.values():
        if len(members) > 1:
            members.sort()
            keys = [k for _, k in members]
            for k, v in zip(keys, pool_adjacent_violators([estimates[k] for k in keys], [weights[k] for k in keys])):
                out[k] = v
    return out


def default_path() -> Path:
    return Path(str(resources.files("capeval.audit") / "data" / "calibration.json"))


@lru_cache(maxsize=4)
def load_calibration(path: str | None = None) -> Calibration:
    """The shipped calibration (an empty one, i.e. raw scores, when the file is missing)."""
    p = Path(path) if path else default_path()
    if not p.is_file():
        return Calibration()
    data = json.loads(p.read_text(encoding="utf-8"))
    return Calibration(data["categories"], data["rules"], data["bands"])


CV_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def holds_with_margin(row: dict) -> bool:
    """An out-of-fold reliability row keeps the promise with room to spare: precision >= c + its standard error
    (binomial, at precision c over the row's findings); a level with no findings promises nothing."""
    n, c = row["findings"], row["level"]
    return not n or row["precision"] >= c + math.sqrt(c * (1.0 - c) / n)


def cross_validate(judged: list[tuple[Finding, bool]], lower_bound_z: float, strength: float = PRIOR_STRENGTH,
                   folds: int = 5, levels: tuple[float, ...] = CV_LEVELS) -> list[dict]:
    """Out-of-fold reliability: fit on all but one fold of the dev images (by a hash of the image id), calibrate
    the findings of that fold, and report per level c the count and precision of findings with confidence >= c."""
    import hashlib

    def fold(f: Finding) -> int:
        return hashlib.sha256(f.image_id.encode()).digest()[0] % folds

    scored = []
    for k in range(folds):
        cal = fit([j for j in judged if fold(j[0]) != k], strength, lower_bound_z)
        scored += [(cal.confidence(f), ok) for f, ok in judged if fold(f) == k]
    out = []
    for c in levels:
        sel = [ok for p, ok in scored if p >= c]
        out.append({"level": c, "findings": len(sel), "precision": sum(sel) / len(sel) if sel else float("nan")})
    return out


def judged_dev_findings(datasets: str | Path, labels: str | Path) -> list[tuple[Finding, bool]]:
    """The raw findings of the audit on the Karpathy references that the dev sets judge, with their verdicts."""
    from capeval.audit import evaluation as ev
    from capeval.audit.run import audit_images
    from capeval.audit.summary import CorpusSummary
    from capeval.io import load_captions

    datasets = Path(datasets)
    refs = load_captions(datasets / "coco-karpathy-test" / "coco_test.json", allow_empty=True)
    reserved = ev.reserved_images(str(datasets))
    raw = audit_images(refs, CorpusSummary.from_captions(refs), min_confidence=0.0, progress=False,
                       calibrated=False)
    image_split = {c.image_id: ev.split_of(c.image_id, reserved) for c in refs.captions}
    judged = []
    for labels_set, split in ev.protocol_sets(labels, reserved):
        if split == "dev":
            judged += ev.finding_truth(raw.findings, labels_set, "dev",
                                       image_split if labels_set.corpus_word_types else None)
    for judgements in ev.finding_judgement_sets(labels):
        judged += judgements.judge(raw.findings)
    return judged


def build(datasets: str | Path, labels: str | Path) -> dict:
    """Audit the Karpathy references with raw scores and fit the calibration on the dev split."""
    judged = judged_dev_findings(datasets, labels)
    cal = fit(judged)
    return {"fitted_on": "data/audit_labels dev split (capeval.audit.evaluation.split_of), data/audit_labels/dev2 "
                         "and the judged findings of data/audit_labels/dev3 and dev4, of the coco-karpathy-test references; "
                         "spelling also by word_types_corpus.csv on all references of the first set's dev images",
            "judged_findings": len(judged), "prior_strength": PRIOR_STRENGTH, "band_width": BAND_WIDTH,
            "lower_bound_z": LOWER_BOUND_Z,
            "categories": cal.categories, "rules": cal.rules, "bands": cal.bands}


def main(argv: list[str] | None = None) -> None:
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description="Fit the audit's confidence calibration on the dev split.")
    ap.add_argument("--data", default=os.environ.get("CAPEVAL_DATA_MIRROR") or str(repo.parent / "shared" / "datasets"))
    ap.add_argument("--labels", default=str(repo / "data" / "audit_labels"))
    ap.add_argument("--out", default=str(default_path()))
    ap.add_argument("--cross-validate", action="store_true",
                    help="print the out-of-fold reliability per lower-bound z instead of writing the calibration")
    args = ap.parse_args(argv)
    if args.cross_validate:
        judged = judged_dev_findings(args.data, args.labels)
        zs = Z_CANDIDATES
        table = {z: cross_validate(judged, z) for z in zs}
        print("out-of-fold reliability, 5 folds by dev image: findings with confidence >= c,")
        print("and their precision")
        print("   c  " + "".join(f"{f'z = {z}':>16}" for z in zs))
        for k, c in enumerate(CV_LEVELS):
            cells = []
            for z in zs:
                r = table[z][k]
                flag = "!" if r["precision"] < c else "~" if not holds_with_margin(r) else " "
                cells.append(f"{r['findings']:>6} {r['precision']:>7.3f}{flag} ")
            print(f"{c:>5} " + "".join(cells))
        print("(! : precision below c; ~ : above c by less than one standard error)")
        return
    data = build(args.data, args.labels)
    Path(args.out).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {data['judged_findings']} judged dev findings, {len(data['rules'])} rules, "
          f"{len(data['bands'])} bands")


if __name__ == "__main__":
    main()
