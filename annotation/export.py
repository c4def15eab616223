"""Researcher outputs: ratings in the judgments format `capeval correlate` reads, progress, gold accuracy, agreement.

Judgments columns: image_id, caption_id, system, caption, rating, rater, scale, criterion, timestamp, plus item (the
campaign's opaque item id), comment and, for pairwise items, pair_system (the other caption's system).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from capeval.errors import InputError

from annotation.agreement import campaign_agreement
from annotation.rubrics import Rubric

JUDGMENT_COLUMNS = ["image_id", "caption_id", "system", "caption", "rating", "rater", "scale", "criterion",
                    "timestamp", "item", "comment", "pair_system"]
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}


def criterion_scale(rubric: Rubric, criterion: str) -> str:
    c = rubric.criterion(criterion)
    if c.kind == "scale":
        vals = [int(v) for v in c.values]
        return f"{min(vals)}-{max(vals)}"
    return "0-1"


def judgments(rows: list[dict[str, Any]], rubric: Rubric, include_gold: bool = False) -> pd.DataFrame:
    """Long table, one row per (rating, criterion) (pairwise: one row per caption, 1 preferred, 0 not, 0.5 tie).

    Broken-image reports carry no rating and are left out; gold items only with `include_gold`.
    """
    out: list[dict[str, Any]] = []
    for r in rows:
        if r["broken"] or (r["gold"] and not include_gold):
            continue
        base = {"rater": r["annotator"], "timestamp": r["updated_at"], "item": r["public_id"],
                "comment": r["comment"], "image_id": r["image_id"]}
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
        df.to_csv(p, index=False)
    elif fmt == "jsonl":
        df.to_json(p, orient="records", lines=True, force_ascii=False)
    else:
        df.to_parquet(p, index=False)
    return p


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


def summarise(rows: list[dict[str, Any]], counts: list[dict[str, Any]], rubric: Rubric, annotators: list[str],
              edits: int = 0) -> Summary:
    """Progress per annotator and per system, gold accuracy, and agreement on the non-gold items."""
    assigned: dict[str, int] = {a: 0 for a in annotators}
    sys_assigned: dict[str, int] = {}
    for c in counts:
        assigned[c["annotator"]] = assigned.get(c["annotator"], 0) + c["n"]
        if not c["gold"]:
            key = c["system"] if c["system_b"] is None else f"{c['system']} vs {c['system_b']}"
            sys_assigned[key] = sys_assigned.get(key, 0) + c["n"]
    gold = gold_hits(rows)
    per_ann = []
    for a in sorted(assigned):
        mine = [r for r in rows if r["annotator"] == a]
        g = gold[gold["rater"] == a]
        per_ann.append({"annotator": a, "done": len(mine), "assigned": assigned[a],
                        "percent": round(100.0 * len(mine) / assigned[a], 1) if assigned[a] else 0.0,
                        "broken_reports": sum(r["broken"] for r in mine),
                        "gold_rated": int(g.shape[0]),
                        "gold_accuracy": round(float(g["correct"].mean()), 3) if g.shape[0] else float("nan")})
    per_sys = []
    for key, n in sorted(sys_assigned.items()):
        done = sum(1 for r in rows if not r["gold"] and
                   (r["system"] if r["system_b"] is None else f"{r['system']} vs {r['system_b']}") == key)
        per_sys.append({"system": key, "done": done, "assigned": n,
                        "percent": round(100.0 * done / n, 1) if n else 0.0})
    long = [{"item": r["public_id"], "rater": r["annotator"], "criterion": crit, "rating": val}
            for r in rows if not r["gold"] and not r["broken"] for crit, val in r["ratings"].items()]
    ldf = pd.DataFrame(long, columns=["item", "rater", "criterion", "rating"])
    crits: dict[str, tuple[str, list[Any]]] = {}
    for c in rubric.criteria:
        if c.kind == "scale":
            crits[c.name] = ("ordinal", [int(v) for v in c.values])
        elif c.kind == "flag":
            crits[c.name] = ("nominal", [0, 1])
        else:
            crits[c.name] = ("nominal", list(c.values))
    alpha, kappa = campaign_agreement(ldf, crits)
    broken = pd.DataFrame([{"annotator": r["annotator"], "image_id": r["image_id"], "item": r["public_id"],
                            "comment": r["comment"], "at": r["updated_at"]} for r in rows if r["broken"]],
                          columns=["annotator", "image_id", "item", "comment", "at"])
    return Summary(pd.DataFrame(per_ann), pd.DataFrame(per_sys), alpha, kappa, broken, edits)
