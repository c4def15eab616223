"""The story first: plain-words sentences from a CorrelationResult ("people rank Human first while BLEU-4 ranks it
last ...", with deltas, CIs and p-values) and the captions on which a metric and people disagree most."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

_ORDINAL = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh", 8: "eighth",
            9: "ninth", 10: "tenth"}


def ordinal(k: int, n: int) -> str:
    """'first', 'fourth', 'last' (k of n)."""
    if k == n and n > 1:
        return "last"
    return _ORDINAL.get(k, f"{k}th")


#: how registered judgment sets are named in sentences
SET_NAMES = {"thumb": "THumB", "flickr8k-expert": "Flickr8k-Expert", "flickr8k-crowdflower": "Flickr8k-CrowdFlower",
             "nebula": "Nebula", "polaris": "Polaris", "composite": "Composite"}


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass
class Story:
    """What to say before any table: `headline` sentences and the captions where a metric and people disagree."""

    headline: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    disagreements: pd.DataFrame | None = None
    disagreement_metric: str | None = None


def _metric_scale(metric: str) -> float:
    from capeval.metrics.registry import REPORTED_X100

    return 100.0 if metric.startswith(REPORTED_X100) else 1.0


def system_story(result: Any, set_name: str | None = None) -> tuple[list[str], list[str]]:
    """Headline + detail sentences at system level: who people rank first, where each metric ranks that system,
    and for each metric the starkest pair it gets backwards (both systems named, deltas with CIs and p-values)."""
    from capeval.meta.correlate import display_name

    s = result.systems
    v = result.verdicts
    if s is None or not len(s) or v is None or not len(v):
        return [], []
    metrics = [m for m in result.metrics if m in s.columns]
    n = len(s)
    top = s.sort_values("human", ascending=False).iloc[0]
    who = str(top["system"])
    where = f"On {SET_NAMES.get(set_name, set_name)}, people" if set_name else "People"
    head = (f"{where} rank {who} first of {n} systems (mean rating {top['human']:.2f}, 95% CI "
            f"[{top['human_ci_low']:.2f}, {top['human_ci_high']:.2f}])")
    by_rank: dict[str, list[str]] = {}
    for m in metrics:
        k = int(s.set_index("system").loc[who, f"{m}_rank"])
        by_rank.setdefault(ordinal(k, n), []).append(display_name(m))
    parts = []
    order = sorted(by_rank, key=lambda o: -{"last": n, **{v_: k for k, v_ in _ORDINAL.items()}}.get(o, 0))
    for o in order:
        names = by_rank[o]
        parts.append(f"{_join(names)} rank{'s' if len(names) == 1 else ''} it {o}" + (" too" if o == "first" else ""))
    headline = [head + ("; " + "; ".join(parts) if parts else "") + "."]
    details = []
    for m in metrics:
        rows = v[(v["metric"] == m) & ((v["system_x"] == who) | (v["system_y"] == who))]
        wrong = rows[~rows["agree"]]
        if not len(wrong):
            details.append(f"{display_name(m)} agrees with people on every pair involving {who}.")
            continue
        other = np.where(wrong["system_x"] == who, wrong["system_y"], wrong["system_x"])
        humans = s.set_index("system").loc[other, "human"].to_numpy()
        details.append(str(wrong.iloc[int(np.argmin(humans))]["verdict"]) + ".")
    for m in metrics:
        rows = v[v["metric"] == m]
        details.append(f"Over all {len(rows)} pairs of systems {display_name(m)} orders {int(rows['agree'].sum())} "
                       f"the way people do; {int(rows['significant_disagreement'].sum())} disagreement(s) are "
                       "significant on both sides (p<0.05).")
    return headline, details


def disagreements(result: Any, metric: str | None = None, top: int = 4) -> tuple[pd.DataFrame, str]:
    """The captions on which `metric` (default: CIDEr-D if scored, else the first metric) and people disagree most:
    by the gap between their percentile ranks, `top` the people like and the metric does not, and `top` the other
    way round. Columns: who likes it, image_id, system, caption, references, metric score, human score."""
    from capeval.meta.correlate import display_name

    df = result.scores
    metrics = [m for m in result.metrics if m in df.columns]
    if not metrics or not len(df):
        return pd.DataFrame(), ""
    m = metric or ("cider" if "cider" in metrics else metrics[0])
    keys = [k for k in ("image_id", "system", "caption") if k in df.columns]
    d = df.assign(system=df["system"].fillna("")).groupby(keys, sort=False, dropna=False).agg(
        rating=("rating", "mean"), score=(m, "first")).reset_index()
    gap = d["rating"].rank(pct=True) - d["score"].rank(pct=True)
    refs = result.references or {}
    sc = _metric_scale(m)
    out = []
    for label, idx in (("people, not the metric", gap[gap > 0].nlargest(top).index),
                       ("the metric, not people", gap[gap < 0].nsmallest(top).index)):
        for i in idx:
            r = d.loc[i]
            out.append({"liked by": label, "image_id": r["image_id"], "system": r["system"] or "",
                        "caption": r["caption"], "references": " | ".join(refs.get(r["image_id"], [])),
                        display_name(m): round(float(r["score"]) * sc, 1), "human": round(float(r["rating"]), 2)})
    table = pd.DataFrame(out)
    if len(table) and not table["system"].astype(bool).any():
        table = table.drop(columns=["system"])  # judgments without systems (Flickr8k)
    return table, m


def caption_story(result: Any) -> list[str]:
    """One sentence on caption-level agreement: the best and worst metric by the primary statistic, with CIs."""
    from capeval.meta.correlate import display_name

    t = result.table
    t = t[(t["level"] == ("image" if result.level == "image" else "caption")) &
          (t["statistic"] == result.primary_statistic)].dropna(subset=["value"])
    if not len(t):
        return []
    t = t.sort_values("value", ascending=False)
    best, worst = t.iloc[0], t.iloc[-1]

    def cell(r: pd.Series) -> str:
        ci = "" if np.isnan(r["ci_low"]) else f" (95% CI [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}])"
        return f"{display_name(r['metric'])} {100 * r['value']:.1f}{ci}"

    level = "caption" if result.level != "image" else "image-grouped"
    if len(t) == 1:
        return [f"At {level} level, {result.primary_statistic} x 100 with people: {cell(best)}."]
    return [f"At {level} level the metric closest to people is {cell(best)} by {result.primary_statistic} x 100; the "
            f"farthest is {cell(worst)}."]


def tell(result: Any, set_name: str | None = None, top: int = 4) -> Story:
    """The whole story of one CorrelationResult."""
    head, details = system_story(result, set_name)
    cap = caption_story(result)
    table, m = disagreements(result, top=top)
    return Story(head or cap, details + (cap if head else []), table if len(table) else None, m or None)
