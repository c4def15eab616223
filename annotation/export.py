"""Researcher outputs: ratings in the judgments format `capeval correlate` reads, progress, gold accuracy, agreement.

Judgments columns: image_id, caption_id, system, caption, rating, rater, scale, criterion, timestamp, plus item (the
campaign's opaque item id), comment, for pairwise items pair_system (the other caption's system), and time on task:
shown_at, submitted_at (first submission), seconds (shown to submitted) and active_seconds (page visible and in use;
empty for API clients). CSV cells that a spreadsheet would run as a formula (= + - @ tab CR) get a leading '.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from capeval.errors import InputError

from annotation.agreement import alpha_bootstrap, campaign_agreement, krippendorff_alpha
from annotation.rubrics import Rubric

JUDGMENT_COLUMNS = ["image_id", "caption_id", "system", "caption", "rating", "rater", "scale", "criterion",
                    "timestamp", "item", "comment", "pair_system", "shown_at", "submitted_at", "seconds",
                    "active_seconds"]
MIN_ALPHA_ITEMS = 5  # fewer items with 2+ raters: alpha is shown as n/a
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}


def criterion_scale(rubric: Rubric, criterion: str) -> str:
    c = rubric.criterion(criterion)
    if c.kind == "scale":
        vals = [int(v) for v in c.values]
        return f"{min(vals)}-{max(vals)}"
    return "0-1"


def _timing_index(timings: list[dict[str, Any]] | None) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for t in timings or []:
        secs = None
        if t.get("submitted_at") and t.get("shown_at"):
            secs = (pd.Timestamp(t["submitted_at"]) - pd.Timestamp(t["shown_at"])).total_seconds()
        out[(t["annotator"], t["public_id"])] = {
            "shown_at": t.get("shown_at"), "submitted_at": t.get("submitted_at"), "seconds": secs,
            "active_seconds": None if t.get("active_ms") is None else t["active_ms"] / 1000.0}
    return out


def judgments(rows: list[dict[str, Any]], rubric: Rubric, include_gold: bool = False,
              timings: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """Long table, one row per (rating, criterion) (pairwise: one row per caption, 1 preferred, 0 not, 0.5 tie).

    Broken-image reports carry no rating and are left out; gold items only with `include_gold`.
    """
    out: list[dict[str, Any]] = []
    tix = _timing_index(timings)
    empty = {"shown_at": None, "submitted_at": None, "seconds": None, "active_seconds": None}
    for r in rows:
        if r["broken"] or (r["gold"] and not include_gold):
            continue
        base = {"rater": r["annotator"], "timestamp": r["updated_at"], "item": r["public_id"],
                "comment": r["comment"], "image_id": r["image_id"],
                **tix.get((r["annotator"], r["public_id"]), empty)}
        for crit, value in r["ratings"].items():
            scale = criterion_scale(rubric, crit)
            if rubric.pairwise:
                score_a = {"A": 1.0, "B": 0.0, "tie": 0.5}[value]
                out.append({**base, "caption_id": r["caption_id"], "system": r["system"], "caption": r["caption"],
                            "rating": score_a, "scale": scale, "criterion": crit, "pair_system": r["system_b"]})
                out.append({**base, "caption_id": r["caption_id_b"], "system": r["system_b"],
                            "caption": r["caption_b"], "rating": 1.0 - score_a, "scale": scale, "criterion": crit,
                            "pair_system": r["system"]})
            else:
                out.append({**base, "caption_id": r["caption_id"], "system": r["system"], "caption": r["caption"],
                            "rating": float(value), "scale": scale, "criterion": crit, "pair_system": ""})
    df = pd.DataFrame(out, columns=JUDGMENT_COLUMNS)
    df["rating"] = df["rating"].astype(float)
    return df


def write_judgments(df: pd.DataFrame, out: str | Path) -> Path:
    """Write by suffix: .csv, .jsonl or .parquet."""
    p = Path(out)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise InputError(f"unknown export format {p.suffix!r}; expected .csv, .jsonl or .parquet", path=str(p))
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        csv_safe(df).to_csv(p, index=False)
    elif fmt == "jsonl":
        df.to_json(p, orient="records", lines=True, force_ascii=False)
    else:
        df.to_parquet(p, index=False)
    return p


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would evaluate (=, +, -, @, tab, CR first) prefixed with ' (OWASP CSV injection)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v)
    return out


def gold_hits(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per gold submission: rater, item, correct (every expected criterion within its accepted values)."""
    out = []
    for r in rows:
        if not r["gold"] or r["broken"]:
            continue
        ok = all(r["ratings"].get(crit) in accepted for crit, accepted in (r["gold_expect"] or {}).items())
        out.append({"rater": r["annotator"], "item": r["public_id"], "correct": ok})
    return pd.DataFrame(out, columns=["rater", "item", "correct"])


@dataclass
class Summary:
    """The admin view's tables."""

    per_annotator: pd.DataFrame
    per_system: pd.DataFrame
    alpha: pd.DataFrame
    kappa: pd.DataFrame
    broken_reports: pd.DataFrame
    edits: int
    comments: pd.DataFrame | None = None


def _criteria_levels(rubric: Rubric) -> dict[str, tuple[str, list[Any]]]:
    crits: dict[str, tuple[str, list[Any]]] = {}
    for c in rubric.criteria:
        if c.kind == "scale":
            crits[c.name] = ("ordinal", [int(v) for v in c.values])
        elif c.kind == "flag":
            crits[c.name] = ("nominal", [0, 1])
        else:
            crits[c.name] = ("nominal", list(c.values))
    return crits


def alpha_text(alpha: float, lo: float, hi: float, items: int) -> str:
    """How alpha is shown: with its CI, or n/a when too few items have two or more raters (never a bare 0)."""
    if items < MIN_ALPHA_ITEMS or pd.isna(alpha):
        return "n/a (too few items with 2+ raters)" if items < MIN_ALPHA_ITEMS else "n/a (no variation in ratings)"
    ci = "" if pd.isna(lo) else f" [{lo:.2f}, {hi:.2f}]"
    return f"{alpha:.3f}{ci}"


def _wide(ldf: pd.DataFrame, crit: str) -> pd.DataFrame:
    sub = ldf[ldf["criterion"] == crit]
    return sub.pivot_table(index="rater", columns="item", values="rating", aggfunc="first")


def _table(wide: pd.DataFrame) -> list[list[Any]]:
    return wide.astype(object).where(wide.notna(), None).values.tolist()


def annotator_quality(ldf: pd.DataFrame, rubric: Rubric, timings: list[dict[str, Any]] | None,
                      annotators: list[str]) -> pd.DataFrame:
    """Per annotator, on the first rating criterion: alpha of the others with this annotator left out (next to the
    alpha of everyone), the share of their most used value (straight-lining flag at >= 0.8 over 10+ items) and
    their median seconds per item (speed flag below a third of the median annotator, or under 2 s)."""
    crits = _criteria_levels(rubric)
    main = next((c.name for c in rubric.criteria if c.kind != "flag"), None)
    secs: dict[str, list[float]] = {}
    for t in timings or []:
        if t.get("submitted_at") and t.get("shown_at"):
            v = t["active_ms"] / 1000.0 if t.get("active_ms") is not None else (
                pd.Timestamp(t["submitted_at"]) - pd.Timestamp(t["shown_at"])).total_seconds()
            secs.setdefault(t["annotator"], []).append(min(600.0, v))
    medians = {a: float(pd.Series(v).median()) for a, v in secs.items() if v}
    overall = float(pd.Series(list(medians.values())).median()) if medians else float("nan")
    wide = _wide(ldf, main) if main else pd.DataFrame()
    level, levels = crits.get(main, ("nominal", None)) if main else ("nominal", None)
    dom = levels if level != "ordinal" else None
    rows = []
    for a in annotators:
        mine = wide.loc[a].dropna() if a in wide.index else pd.Series(dtype=float)
        others = wide.drop(index=a) if a in wide.index else wide
        multi = int((others.notna().sum(axis=0) >= 2).sum()) if not others.empty else 0
        loo = krippendorff_alpha(_table(others), level, dom) if multi >= MIN_ALPHA_ITEMS else float("nan")
        top = float(mine.value_counts(normalize=True).iloc[0]) if len(mine) else float("nan")
        med = medians.get(a, float("nan"))
        flags = []
        if len(mine) >= 10 and top >= 0.8:
            flags.append("straight-lining")
        if not pd.isna(med) and (med < 2.0 or (not pd.isna(overall) and len(medians) > 1 and med < overall / 3)):
            flags.append("fast")
        rows.append({"annotator": a, "criterion": main, "alpha_without": round(loo, 3) if not pd.isna(loo) else None,
                     "top_value_share": round(top, 3) if not pd.isna(top) else None,
                     "median_seconds": round(med, 1) if not pd.isna(med) else None, "flags": ", ".join(flags)})
    return pd.DataFrame(rows, columns=["annotator", "criterion", "alpha_without", "top_value_share",
                                       "median_seconds", "flags"])


def summarise(rows: list[dict[str, Any]], counts: list[dict[str, Any]], rubric: Rubric, annotators: list[str],
              edits: int = 0, timings: list[dict[str, Any]] | None = None, n_boot: int = 500,
              practice: dict[str, tuple[int, int]] | None = None) -> Summary:
    """Progress and quality per annotator, progress per system, gold accuracy, agreement with bootstrap CIs on the
    non-gold items, broken-image reports and comments."""
    assigned: dict[str, int] = {a: 0 for a in annotators}
    sys_assigned: dict[str, int] = {}
    for c in counts:
        assigned[c["annotator"]] = assigned.get(c["annotator"], 0) + c["n"]
        if not c["gold"]:
            key = c["system"] if c["system_b"] is None else f"{c['system']} vs {c['system_b']}"
            sys_assigned[key] = sys_assigned.get(key, 0) + c["n"]
    gold = gold_hits(rows)
    long = [{"item": r["public_id"], "rater": r["annotator"], "criterion": crit, "rating": val}
            for r in rows if not r["gold"] and not r["broken"] for crit, val in r["ratings"].items()]
    ldf = pd.DataFrame(long, columns=["item", "rater", "criterion", "rating"])
    quality = annotator_quality(ldf, rubric, timings, sorted(assigned)).set_index("annotator")
    per_ann = []
    for a in sorted(assigned):
        mine = [r for r in rows if r["annotator"] == a]
        g = gold[gold["rater"] == a]
        q = quality.loc[a]
        per_ann.append({"annotator": a, "done": len(mine), "assigned": assigned[a],
                        "percent": round(100.0 * len(mine) / assigned[a], 1) if assigned[a] else 0.0,
                        "broken_reports": sum(r["broken"] for r in mine),
                        "gold_rated": int(g.shape[0]),
                        "gold_accuracy": round(float(g["correct"].mean()), 3) if g.shape[0] else float("nan"),
                        "alpha_without": q["alpha_without"], "top_value_share": q["top_value_share"],
                        "median_seconds": q["median_seconds"], "flags": q["flags"],
                        **({"practice_correct": "{}/{}".format(*practice.get(a, (0, 0)))} if practice else {})})
    per_sys = []
    for key, n in sorted(sys_assigned.items()):
        done = sum(1 for r in rows if not r["gold"] and
                   (r["system"] if r["system_b"] is None else f"{r['system']} vs {r['system_b']}") == key)
        per_sys.append({"system": key, "done": done, "assigned": n,
                        "percent": round(100.0 * done / n, 1) if n else 0.0})
    crits = _criteria_levels(rubric)
    alpha, kappa = campaign_agreement(ldf, crits)
    lows, highs, texts = [], [], []
    for row in alpha.itertuples(index=False):
        level, levels = crits[row.criterion]
        if row.items_with_2plus_raters >= MIN_ALPHA_ITEMS:
            _, lo, hi = alpha_bootstrap(_table(_wide(ldf, row.criterion)), level,
                                        levels if level != "ordinal" else None, n_boot=n_boot)
        else:
            lo = hi = float("nan")
        lows.append(lo)
        highs.append(hi)
        texts.append(alpha_text(row.alpha, lo, hi, row.items_with_2plus_raters))
    alpha = alpha.assign(ci_low=lows, ci_high=highs, shown=texts)
    broken = pd.DataFrame([{"annotator": r["annotator"], "image_id": r["image_id"], "item": r["public_id"],
                            "comment": r["comment"], "at": r["updated_at"]} for r in rows if r["broken"]],
                          columns=["annotator", "image_id", "item", "comment", "at"])
    comments = pd.DataFrame([{"annotator": r["annotator"], "item": r["public_id"], "system": r["system"],
                              "image_id": r["image_id"], "comment": r["comment"], "at": r["updated_at"]}
                             for r in rows if r["comment"] and not r["broken"]],
                            columns=["annotator", "item", "system", "image_id", "comment", "at"])
    return Summary(pd.DataFrame(per_ann), pd.DataFrame(per_sys), alpha, kappa, broken, edits, comments)
