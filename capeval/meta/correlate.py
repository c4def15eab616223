"""`capeval correlate` as a library function: score the judged captions with capeval's metric engine and say how far
each metric agrees with people (statistics with image-bootstrap CIs, system-level verdicts with paired tests).

Two scoring units (capeval.meta.protocols; the unit is in every signature as `|unit:...`):
* `per-system` (judgments naming systems; THumB): each system scored as its own evaluation by `score_systems`, the
  call `capeval score` makes, so system-level metric scores are `capeval score`'s corpus scores
  (tests/test_meta_thumb.py checks them and the caption-level Kendall against pycocoevalcap run per system);
* `pooled` (Flickr8k, Composite, Nebula, Polaris), described below.

Pooled scoring protocol (it reproduces the published Flickr8k figures, see tests/test_meta_flickr8k.py):
* each judged caption is one metric "document" with its own reference list — the image's references minus what the
  reference policy removes (Expert: rows whose caption is one of its own image's references are dropped;
  CrowdFlower: such a caption leaves its image's reference list for every candidate of the image;
  --leave-one-out: a judged reference is scored against the other references of its image);
* identical documents (same image, caption and reference list, e.g. the 3 expert rows of a pair) are scored once:
  multiplying every document by the same factor leaves CIDEr-D's idf, log(N / df), unchanged, so this is exact;
* all documents go to the engine in ONE corpus call per metric (CIDEr-D idf over the judged set, as pycocoevalcap
  computes it in the CLIPScore evaluation code);
* rows stay one per rater (Expert: 3 rows per caption, N = 16,992) unless average_raters=True.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from capeval.errors import CapevalError, InputError, MetricUnavailable
from capeval.meta import stats as S
from capeval.meta.judgments import Judgments, JudgmentsWarning, resolve_judgments
from capeval.records import CaptionSet

#: fast by default (native, no Java, no model download); METEOR, SPICE, BERTScore on request
DEFAULT_METRICS = ("bleu1", "bleu4", "rouge", "cider")
DEFAULT_STATISTICS = ("tau_c", "tau_b", "acc_23", "spearman", "pearson")
LEVELS = ("caption", "image", "system")

_DISPLAY = {"bleu1": "BLEU-1", "bleu2": "BLEU-2", "bleu3": "BLEU-3", "bleu4": "BLEU-4", "rouge": "ROUGE-L",
            "meteor": "METEOR", "cider": "CIDEr-D", "spice": "SPICE", "bertscore": "BERTScore",
            "sacrebleu": "sacreBLEU"}


def display_name(metric: str) -> str:
    return _DISPLAY.get(metric, metric)


def _family(metric: str) -> str:
    m = metric.lower()
    if re.fullmatch(r"bleu[1-4]?", m):
        return "bleu"
    return {"rouge-l": "rouge", "rougel": "rouge", "cider-d": "cider", "ciderd": "cider"}.get(m, m)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _pick(metric: str, results: Sequence[object]) -> object:
    """The MetricResult answering `metric` among a family's outputs (bleu -> bleu1..bleu4)."""
    want = _norm(metric)
    aliases = {want, _norm(display_name(metric))}
    if metric == "bleu":
        aliases.add("bleu4")
    if metric == "rouge":
        aliases |= {"rougel"}
    if metric == "cider":
        aliases |= {"ciderd"}
    if metric == "bertscore":
        aliases |= {"bertscoref1", "bertscoref", "f1"}
    for r in results:
        if _norm(getattr(r, "name", "")) in aliases:
            return r
    if len(results) == 1:
        return results[0]
    raise CapevalError(f"metric engine returned {[getattr(r, 'name', '?') for r in results]} for {metric!r}; "
                       "cannot tell which output to use")


MetricFn = Callable[..., list]


def _native_families() -> tuple[str, ...]:
    try:
        from capeval.metrics.registry import NATIVE
    except ImportError:  # pragma: no cover
        return ()
    return tuple(NATIVE)


def _engine_default() -> MetricFn | None:
    try:
        return _engine()
    except CapevalError:  # pragma: no cover
        return None


def _engine() -> MetricFn:
    try:
        from capeval.metrics import compute_metric  # type: ignore[attr-defined]
    except ImportError as exc:  # pragma: no cover - only while the engine is being built
        raise CapevalError(f"capeval's metric engine is not available ({exc})") from None
    return compute_metric


# ----------------------------------------------------------------------------------------------------------------
# documents: which text is scored against which references
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ScoringPlan:
    """The rows kept, the document each row is scored as, and every document's candidate and references."""

    rows: pd.DataFrame  # the kept judgments rows, with a `doc` column
    candidates: list[str]
    references: list[list[str]]
    notes: list[str]
    policy: str
    dropped_rows: int = 0


def _load_refs(refs: str | os.PathLike[str] | CaptionSet | None, j: Judgments) -> CaptionSet:
    if isinstance(refs, CaptionSet):
        return refs
    if refs is None:
        if j.references is None:
            raise InputError("no references: pass --refs (a caption file or dataset name); these judgments do not "
                             "ship their own")
        return j.references
    from capeval import datasets

    return datasets.load(refs)


def _load_candidates(cands: object) -> dict[str, CaptionSet]:
    """Candidates as {system name: CaptionSet} ('' for a single unnamed set)."""
    if cands is None:
        return {}
    if isinstance(cands, CaptionSet):
        return {cands.name or "": cands}
    if isinstance(cands, Mapping):
        out = {}
        for k, v in cands.items():
            out[str(k)] = v if isinstance(v, CaptionSet) else _load_candidates(v)[""]
        return out
    from capeval import datasets

    paths = [cands] if isinstance(cands, (str, os.PathLike)) else list(cands)  # type: ignore[arg-type]
    out = {}
    for p in paths:
        cs = datasets.load(p)
        out[cs.name or Path(os.fspath(p)).stem] = cs
    if len(out) == 1:
        (k, v), = out.items()
        out = {"": v, k: v}
    return out


def plan_scoring(j: Judgments, refs: CaptionSet, candidates: Mapping[str, CaptionSet] | None = None, *,
                 leave_one_out: bool = False) -> ScoringPlan:
    """Resolve every judged caption's text, apply the reference policy, build the deduplicated documents.

    Unknown image ids, unknown caption ids and captions that cannot be found raise InputError listing them."""
    f = j.frame.copy()
    notes: list[str] = []
    where = j.source or j.name or "judgments"
    refs_by_img = refs.by_image()
    ref_by_id = refs.by_id()
    unknown_img = sorted(set(f["image_id"]) - set(refs_by_img))
    if unknown_img:
        raise InputError(f"{len(unknown_img)} judged image id(s) have no references: {unknown_img[:5]}"
                         f"{' ...' if len(unknown_img) > 5 else ''}; expected ids present in the references file",
                         path=where)
    candidates = candidates or {}
    cand_by_id: dict[str, str] = {}
    for cs in candidates.values():
        cand_by_id.update({c.caption_id: c.text for c in cs})
    cand_by_sys_img = {s: {c.image_id: c.text for c in cs} for s, cs in candidates.items()}

    texts: list[str | None] = []
    missing: list[str] = []
    for cid, sysname, img, cap in zip(f["caption_id"], f["system"], f["image_id"], f["caption"]):
        if cap is not None:
            texts.append(cap)
            continue
        t = None
        if cid is not None:
            t = cand_by_id.get(cid)
            if t is None and cid in ref_by_id:
                t = ref_by_id[cid].text
        elif sysname is not None:
            t = cand_by_sys_img.get(sysname, cand_by_sys_img.get("", {})).get(img)
        if t is None:
            missing.append(str(cid if cid is not None else f"{sysname}@{img}"))
        texts.append(t)
    if missing:
        uniq = list(dict.fromkeys(missing))
        raise InputError(f"{len(uniq)} judged caption(s) not found in the candidates or references: {uniq[:5]}"
                         f"{' ...' if len(uniq) > 5 else ''}; expected caption ids of --candidates/--refs (or a "
                         "caption column)", path=where)
    f["caption"] = texts

    # a judged caption is "self" when it is one of its own image's references: same caption id AND same text.
    # Ids alone are not enough: candidate files without ids get `<image>#k`, the same ids as the references.
    def _same(a: str, b: str) -> bool:
        return " ".join(a.split()) == " ".join(b.split())

    is_self = np.array([cid is not None and cid in ref_by_id and ref_by_id[cid].image_id == img
                        and _same(ref_by_id[cid].text, text)
                        for cid, img, text in zip(f["caption_id"], f["image_id"], f["caption"])], dtype=bool)
    policy = "leave-one-out" if leave_one_out else j.reference_policy
    dropped = 0
    if is_self.any():
        n_pairs = f.loc[is_self, ["image_id", "caption_id"]].drop_duplicates().shape[0]
        if policy == "drop":
            dropped = int(is_self.sum())
            msg = (f"dropped {n_pairs} judged caption(s) ({dropped} rows) that are references of their own image "
                   "(they would be scored against themselves); --leave-one-out scores them against the other "
                   "references instead")
            notes.append(msg)
            if j.name not in ("flickr8k-expert",):
                warnings.warn(msg, JudgmentsWarning, stacklevel=2)
            f = f[~is_self].reset_index(drop=True)
            is_self = is_self[~is_self]
        elif policy == "remove-from-image-refs":
            notes.append(f"{n_pairs} judged caption(s) are references of their own image: removed from that image's "
                         "reference list for every candidate of the image")
        elif policy == "leave-one-out":
            notes.append(f"{n_pairs} judged reference(s) scored against the other references of their image "
                         "(leave-one-out)")
        else:
            raise ValueError(f"unknown reference policy {policy!r}")
    removed_by_img: dict[str, set[str]] = {}
    if policy == "remove-from-image-refs":
        for img, cid in zip(f.loc[is_self, "image_id"], f.loc[is_self, "caption_id"]):
            removed_by_img.setdefault(img, set()).add(cid)

    doc_index: dict[tuple[str, str, tuple[str, ...]], int] = {}
    cands_out: list[str] = []
    refs_out: list[list[str]] = []
    docs = np.empty(len(f), dtype=np.int64)
    excluded_col: list[tuple[str, ...]] = []
    empty_refs: list[str] = []
    for i, (img, cid, text, self_) in enumerate(zip(f["image_id"], f["caption_id"], f["caption"], is_self)):
        excl = removed_by_img.get(img, set())
        if policy == "leave-one-out" and self_:
            excl = {cid}
        key = (img, text, tuple(sorted(excl)))
        k = doc_index.get(key)
        if k is None:
            rl = [" ".join(c.text.split()) for c in refs_by_img[img] if c.caption_id not in excl]
            if not rl:
                empty_refs.append(img)
            k = doc_index[key] = len(cands_out)
            cands_out.append(" ".join(str(text).split()))
            refs_out.append(rl)
        docs[i] = k
        excluded_col.append(tuple(sorted(excl)))
    if empty_refs:
        raise InputError(f"{len(set(empty_refs))} image(s) have no reference left after the reference policy "
                         f"({sorted(set(empty_refs))[:5]}); expected at least one reference per judged image",
                         path=where)
    f["doc"] = docs
    f["excluded_refs"] = pd.Series(excluded_col, index=f.index, dtype=object)
    return ScoringPlan(f, cands_out, refs_out, notes, policy, dropped)


def score_plan(plan: ScoringPlan, metrics: Sequence[str], *, engine: MetricFn | None = None,
               options: Mapping[str, object] | None = None,
               on_metric: Callable[[str], None] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str],
                                                                      dict[str, str]]:
    """Per-document scores for each metric (one engine call per metric family), signatures, unavailable reasons."""
    engine = engine or _engine()
    scores: dict[str, np.ndarray] = {}
    sigs: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    by_family: dict[str, list[str]] = {}
    for m in metrics:
        by_family.setdefault(_family(m), []).append(m)
    batched: dict[str, list] = {}
    if engine is _engine_default():
        native = [f for f in by_family if f in _native_families()]
        if len(native) > 1:  # one call: tokenization and reference n-grams shared by the native metrics
            if on_metric:
                on_metric(",".join(native))
            from capeval.metrics import compute_metric_many

            opts: dict[str, object] = {}
            for f in native:
                opts.update(dict((options or {}).get(f, {})))
            all_results = compute_metric_many(native, plan.candidates, plan.references, **opts)
            for f in native:
                batched[f] = [r for r in all_results if _family(_norm(r.name).replace("rougel", "rouge")
                                                                .replace("ciderd", "cider")) == f]
    for fam, names in by_family.items():
        if fam in batched:
            results = batched[fam]
        else:
            if on_metric:
                on_metric(fam)
            try:
                results = engine(fam, plan.candidates, plan.references, **dict(options or {}).get(fam, {}))
            except MetricUnavailable as exc:
                for m in names:
                    unavailable[m] = str(exc)
                continue
        for m in names:
            r = _pick(m, results)
            per = np.asarray(r.per_item, dtype=np.float64)  # type: ignore[attr-defined]
            if per.shape != (len(plan.candidates),):
                raise CapevalError(f"metric {m}: {per.shape} per-item scores for {len(plan.candidates)} captions")
            if np.isnan(per).any():
                raise CapevalError(f"metric {m} returned NaN for {int(np.isnan(per).sum())} caption(s)")
            scores[m] = per
            sig = getattr(r, "signature", None)
            sigs[m] = sig.format() if hasattr(sig, "format") else str(sig)
    return scores, sigs, unavailable


# ----------------------------------------------------------------------------------------------------------------
# result
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class CorrelationResult:
    """Everything `capeval correlate` / `capeval report` show: tidy tables plus the protocol that produced them."""

    table: pd.DataFrame  # metric, level, statistic, value, ci_low, ci_high, n, n_images
    scores: pd.DataFrame  # one row per judgment row: image_id, caption_id, system, rating, <metric columns>
    signatures: dict[str, str]
    unavailable: dict[str, str]
    level: str
    statistics: list[str]
    primary_statistic: str
    judgments: str
    n_rows: int
    n_images: int
    n_resamples: int
    seed: int
    protocol: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    systems: pd.DataFrame | None = None  # system-level means (human and metrics)
    system_correlation: pd.DataFrame | None = None
    verdicts: pd.DataFrame | None = None  # system X vs Y per judge, with p-values and sentences
    metric_tests: pd.DataFrame | None = None  # metric A vs B significance
    unit: str = "pooled"  # scoring unit (capeval.meta.protocols.UNITS)
    references: dict[str, list[str]] = field(default_factory=dict)  # image -> references scored against

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(self.table["metric"])) if len(self.table) else []

    def wide(self, scale: float = 100.0, digits: int = 1, level: str | None = None) -> pd.DataFrame:
        """metric x statistic table of 'value [lo, hi]' strings (x100 by default, as papers report) for one level
        (default: the result's own; a statistic undefined there reads 'n/a')."""
        rows = {}
        want = level or self.level
        t = self.table[self.table["level"] == want] if len(self.table) and want in set(self.table["level"]) \
            else self.table
        for _, r in t.iterrows():
            v = r["value"] * scale
            cell = "n/a" if math.isnan(v) else f"{v:.{digits}f}"
            if not (math.isnan(r["ci_low"]) or math.isnan(r["ci_high"])):
                cell += f" [{r['ci_low'] * scale:.{digits}f}, {r['ci_high'] * scale:.{digits}f}]"
            rows.setdefault(display_name(r["metric"]), {})[r["statistic"]] = cell
        if not rows:
            return pd.DataFrame()
        wide = pd.DataFrame.from_dict(rows, orient="index")
        return wide.reindex(columns=[s for s in self.statistics]).fillna("n/a")

    def to_dict(self) -> dict[str, object]:
        def frame(df: pd.DataFrame | None) -> object:
            return None if df is None else json.loads(df.to_json(orient="records"))

        return {"judgments": self.judgments, "level": self.level, "unit": self.unit, "statistics": self.statistics,
                "primary_statistic": self.primary_statistic, "n_rows": self.n_rows, "n_images": self.n_images,
                "bootstrap": {"n_resamples": self.n_resamples, "seed": self.seed, "unit": "image",
                              "ci": "95% percentile"},
                "correlations": frame(self.table), "signatures": self.signatures, "unavailable": self.unavailable,
                "protocol": self.protocol, "warnings": self.warnings, "systems": frame(self.systems),
                "system_correlation": frame(self.system_correlation), "verdicts": frame(self.verdicts),
                "metric_tests": frame(self.metric_tests)}

    def write(self, path: str | os.PathLike[str]) -> Path:
        """results.json (everything) or results.csv (the correlation table; other tables beside it)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix.lower() == ".json":
            p.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        elif p.suffix.lower() in (".csv", ".tsv"):
            sep = "\t" if p.suffix.lower() == ".tsv" else ","
            self.table.assign(judgments=self.judgments, n_resamples=self.n_resamples, seed=self.seed,
                              signature=self.table["metric"].map(self.signatures)).to_csv(p, index=False, sep=sep)
            for name, df in (("systems", self.systems), ("verdicts", self.verdicts),
                             ("metric_tests", self.metric_tests)):
                if df is not None and len(df):
                    df.to_csv(p.with_name(f"{p.stem}.{name}{p.suffix}"), index=False, sep=sep)
        else:
            raise InputError("expected an output file ending in .json, .csv or .tsv", path=str(p))
        return p


# ----------------------------------------------------------------------------------------------------------------
# main entry
# ----------------------------------------------------------------------------------------------------------------


def _with_unit(sig: str, unit: str) -> str:
    return f"{sig}|unit:{unit}" if sig else f"unit:{unit}"


def correlate(human: str | os.PathLike[str] | Judgments, refs: str | os.PathLike[str] | CaptionSet | None = None,
              candidates: object = None, metrics: Sequence[str] = DEFAULT_METRICS, *, level: str = "caption",
              statistics: Sequence[str] | None = None, bootstrap: int = 1000, seed: int = 0,
              leave_one_out: bool = False, average_raters: bool = False, compare_metrics: int = 0,
              system_tests: int = 10000, engine: MetricFn | None = None, criterion: str | None = None,
              scale: str | None = None, on_nan: str = "error", unit: str = "auto",
              metric_options: Mapping[str, Mapping[str, object]] | None = None,
              progress: Callable[[str], None] | None = None) -> CorrelationResult:
    """Score the judged captions with capeval's metrics and correlate them with the human ratings.

    unit (capeval.meta.protocols.UNITS): 'per-system' scores each system as its own evaluation (`capeval score`'s
    numbers), 'pooled' scores every judged caption in one corpus (CLIPScore's protocol; Flickr8k, Composite,
    Nebula, Polaris), 'auto' takes the set's published unit, else per-system when every row names a system.
    level='caption': one statistic over all rows (raters kept as rows, as the published protocols do);
    'image': ratings averaged per caption, statistic within each image, averaged over images;
    'system': caption-level table plus per-system scores with CIs, correlations over systems and every pair of
    systems tested by the metric and by people (capeval.meta.system).
    CIs: `bootstrap` resamples of images (fixed `seed`). `compare_metrics` > 0 runs that many PERM-BOTH permutations
    of each metric against the best one (Williams test for Pearson always)."""
    from capeval.meta.protocols import UNITS, per_system_eligible, score_by_system

    if level not in LEVELS:
        raise InputError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    if unit not in ("auto", *UNITS):
        raise InputError(f"unknown scoring unit {unit!r}; expected auto, {', '.join(UNITS)}")
    if bootstrap < 0:
        raise InputError("--bootstrap must be >= 0")
    j = resolve_judgments(human, criterion=criterion, scale=scale, on_nan=on_nan)
    notes: list[str] = list(j.warnings)
    stats_list = list(statistics) if statistics else list(dict.fromkeys([j.default_statistic, *DEFAULT_STATISTICS]))
    try:
        S._check_statistics(stats_list)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if level == "system":
        systems = j.systems
        if len(systems) < 2:
            raise InputError(f"--level system needs judgments of at least 2 systems (a 'system' column); these have "
                             f"{len(systems)}{': ' + systems[0] if systems else ''}", path=j.source)
    ref_set = _load_refs(refs, j)
    cand_sets = _load_candidates(candidates)
    if progress:
        progress("planning documents")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", JudgmentsWarning)
        plan = plan_scoring(j, ref_set, cand_sets, leave_one_out=leave_one_out)
    notes += [str(w.message) for w in caught]
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=2)
    metric_names = [m.lower() for m in metrics]
    why_not = per_system_eligible(plan.rows)
    chosen = unit if unit != "auto" else (j.unit if j.unit != "auto" else ("pooled" if why_not else "per-system"))
    if chosen == "per-system" and why_not:
        if unit == "per-system" or j.unit == "per-system":
            raise InputError(f"cannot score per system: {why_not}", path=j.source)
        chosen = "pooled"
    if engine is not None and chosen == "per-system" and unit == "auto" and j.unit == "auto":
        chosen = "pooled"  # a custom engine scores documents; the per-system unit runs capeval's own score_systems
    scoring = None
    with quiet_third_party(metric_names):
        if chosen == "per-system":
            excl: dict[str, set[str]] = {}
            for sysname, ex in zip(plan.rows["system"], plan.rows["excluded_refs"]):
                excl.setdefault(str(sysname), set()).update(ex)
            scoring = score_by_system(plan.rows, ref_set, metric_names, excluded=excl, metric_options=metric_options,
                                      on_metric=(lambda msg: progress(f"scoring {msg}")) if progress else None)
            scores, sigs, unavailable = scoring.row_scores, scoring.signatures, scoring.unavailable
            notes += scoring.notes
        else:
            scores, sigs, unavailable = score_plan(plan, metric_names, engine=engine, options=metric_options,
                                                   on_metric=(lambda fam: progress(f"scoring {fam}")) if progress
                                                   else None)
    sigs = {m: _with_unit(v, chosen) for m, v in sigs.items()}
    for m, why in unavailable.items():
        notes.append(f"{m}: unavailable ({why})")
    rows = plan.rows.copy()
    if chosen == "per-system":
        for m, v in scores.items():
            rows[m] = v
    else:
        for m, v in scores.items():
            rows[m] = v[rows["doc"].to_numpy()]
    protocol = [j.protocol] if j.protocol else []
    protocol += plan.notes
    protocol.append(f"scoring unit: {chosen} ({UNITS[chosen]})")
    if chosen == "pooled":
        protocol.append(f"reference policy: {plan.policy}; {len(plan.candidates)} distinct scored documents for "
                        f"{len(rows)} rating rows over {rows['image_id'].nunique()} images")
    else:
        protocol.append(f"reference policy: {plan.policy}; {rows['system'].nunique()} system evaluations for "
                        f"{len(rows)} rating rows over {rows['image_id'].nunique()} images")
    primary = stats_list[0]

    data = rows
    if average_raters or level in ("image", "system"):
        keys = ["image_id", "doc"] + (["system"] if rows["system"].notna().any() else [])
        agg = {"rating": "mean", "caption_id": "first", "caption": "first", **{m: "first" for m in scores}}
        if "system" not in keys:
            agg["system"] = "first"
        data = rows.groupby(keys, sort=False, dropna=False).agg(agg).reset_index()
        if len(data) != len(rows):
            protocol.append(f"ratings averaged per caption: {len(data)} captions")

    if progress:
        progress(f"bootstrap ({bootstrap} image resamples)")
    table = pd.DataFrame(columns=["metric", "level", "statistic", "value", "ci_low", "ci_high", "n", "n_images"])
    boot = None
    flat_level = "image" if level == "image" else "caption"
    if scores:
        boot = S.bootstrap_correlations({m: data[m].to_numpy() for m in scores}, data["rating"].to_numpy(),
                                        data["image_id"].to_numpy(), statistics=stats_list, n_resamples=bootstrap,
                                        seed=seed, level=flat_level)
        table = boot.to_frame()
        for m, d in boot.dropped_groups.items():
            for s, k in d.items():
                if k:
                    notes.append(f"{m} {s}: {k} image(s) without a defined within-image value (fewer than 2 "
                                 "captions or all tied) left out of the image average")
                    break
    result = CorrelationResult(table, rows.drop(columns=["doc", "excluded_refs"]), sigs, unavailable, level,
                               stats_list, primary, j.name or str(human), len(data), int(data["image_id"].nunique()),
                               bootstrap, seed, protocol, notes)
    result.unit = chosen
    result.references = _references_shown(plan, scoring)
    if scores and compare_metrics and len(scores) > 1:
        result.metric_tests = _metric_tests(data, list(scores), primary, boot, compare_metrics, seed, flat_level)
    elif scores and len(scores) > 1 and "pearson" in stats_list and flat_level == "caption":
        result.metric_tests = _metric_tests(data, list(scores), primary, boot, 0, seed, flat_level)
    if level == "system" and scores:
        if progress:
            progress(f"system level: {bootstrap} image resamples recomputing each system's corpus score, "
                     f"{system_tests} paired permutations per pair")
        _system_level(result, data, list(scores), stats_list, system_tests, seed, scoring, bootstrap)
    return result


#: metric families that load models through transformers / huggingface_hub (their progress bars leak otherwise)
_MODEL_METRICS = ("bertscore",)


class quiet_third_party:
    """Silence the progress bars and info logs of transformers / huggingface_hub while metrics run, and restore
    their previous settings on exit: scoped, never left changed for the rest of the process. When a model-based
    metric is about to run (`metrics`), those libraries are imported first so their settings can be scoped too;
    otherwise only libraries already imported are touched."""

    def __init__(self, metrics: Sequence[str] = ()) -> None:
        self.needs_models = any(_family(m) in _MODEL_METRICS for m in metrics)

    def __enter__(self) -> "quiet_third_party":
        self._restore: list[Callable[[], None]] = []
        if self.needs_models:
            import importlib

            for mod in ("huggingface_hub.utils", "transformers.utils.logging"):
                try:
                    importlib.import_module(mod)
                except ImportError:  # the metric reports itself unavailable
                    pass
        self._hook()
        return self

    def _hook(self) -> None:
        import sys

        hf = sys.modules.get("huggingface_hub.utils")
        if hf is not None and hasattr(hf, "are_progress_bars_disabled") and not hf.are_progress_bars_disabled():
            hf.disable_progress_bars()
            self._restore.append(hf.enable_progress_bars)
        tl = sys.modules.get("transformers.utils.logging")
        if tl is not None:
            if tl.is_progress_bar_enabled():
                tl.disable_progress_bar()
                self._restore.append(tl.enable_progress_bar)
            level = tl.get_verbosity()
            tl.set_verbosity_error()
            self._restore.append(lambda: tl.set_verbosity(level))

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._restore):
            undo()


_quiet_third_party = quiet_third_party


def _references_shown(plan: ScoringPlan, scoring: object) -> dict[str, list[str]]:
    """image id -> the references the judged captions of that image were scored against (for the report)."""
    out: dict[str, list[str]] = {}
    if scoring is not None:
        for per_img in scoring.references.values():  # type: ignore[attr-defined]
            for img, refs in per_img.items():
                out.setdefault(img, refs)
        return out
    for img, doc in zip(plan.rows["image_id"], plan.rows["doc"]):
        out.setdefault(img, plan.references[int(doc)])
    return out


def _metric_tests(data: pd.DataFrame, metrics: list[str], primary: str, boot: S.BootstrapResult | None,
                  n_perm: int, seed: int, level: str) -> pd.DataFrame:
    """Each metric vs the best by the primary statistic: bootstrap CI of the difference of the primary statistic on
    the shared resamples, PERM-BOTH on the primary statistic (if n_perm) and, separately, the Williams test on
    Pearson r (a different statistic: it asks whether the Pearson correlations differ)."""
    y = data["rating"].to_numpy()
    best = max(metrics, key=lambda m: boot.estimates[m].get(primary, -np.inf) if boot else 0)
    rows = []
    units = data["doc"].to_numpy() if "doc" in data else None
    groups = data["image_id"].to_numpy() if level == "image" else None
    for m in metrics:
        if m == best:
            continue
        rec: dict[str, object] = {"metric_a": best, "metric_b": m, "statistic": primary}
        if boot is not None and boot.n_resamples:
            d, lo, hi = boot.diff_ci(best, m, primary)
            rec.update(delta=d, delta_ci_low=lo, delta_ci_high=hi)
        if n_perm:
            c = S.permutation_test(data[best].to_numpy(), data[m].to_numpy(), y, primary, units=units, groups=groups,
                                   n_resamples=n_perm, seed=seed, names=(best, m))
            rec.update(p_perm=c.p_value, n_permutations=n_perm)
        if level == "caption":
            w = S.compare_metrics_pearson(data[best].to_numpy(), data[m].to_numpy(), y, (best, m))
            rec.update(pearson_a=w.value_a, pearson_b=w.value_b, p_williams=w.p_value)
        rows.append(rec)
    return pd.DataFrame(rows)


def _system_level(result: CorrelationResult, data: pd.DataFrame, metrics: list[str], stats_list: list[str],
                  n_tests: int, seed: int, scoring: object, n_boot: int) -> None:
    from capeval.meta.protocols import AdditiveStats
    from capeval.meta.system import system_level
    from capeval.metrics.registry import REPORTED_X100

    if scoring is not None:
        mstats = {m: scoring.stats[m] for m in metrics}  # type: ignore[attr-defined]
        corpus = {m: scoring.corpus[m] for m in metrics}  # type: ignore[attr-defined]
    else:  # pooled documents: a system's score is the mean of its per-caption scores (no corpus form)
        mstats, corpus = {}, {}
        for m in metrics:
            per = data.groupby(["system", "image_id"], sort=False)[m].mean()
            mstats[m] = {}
            corpus[m] = {}
            for sname in dict.fromkeys(data["system"].dropna().astype(str)):
                v = per[sname]
                mstats[m][sname] = AdditiveStats("mean", [str(i) for i in v.index],
                                                 np.column_stack([v.to_numpy(), np.ones(len(v))]))
                corpus[m][sname] = float(v.mean())
        result.protocol.append("pooled unit: a system's metric score is the mean of its per-caption scores (not a "
                               "corpus score); use the per-system unit for `capeval score`'s numbers")
    human = data[data["system"].notna()][["system", "image_id", "rating"]]
    n_sys = human["system"].nunique()
    if n_sys < 5:
        result.warnings.append(f"only {n_sys} systems: correlations over systems take a handful of values; read the "
                               "pair table (metric and human deltas with CIs and p-values)")
    lvl = system_level(mstats, corpus, human, stats_list, n_resamples=n_boot, n_permutations=n_tests, seed=seed,
                       display={m: display_name(m) for m in metrics},
                       scale={m: 100.0 if m.startswith(REPORTED_X100) else 1.0 for m in metrics},
                       n_images=result.n_images)
    result.systems = lvl.systems
    result.system_correlation = lvl.correlation
    result.table = pd.concat([result.table.assign(note=""), lvl.correlation], ignore_index=True)
    result.verdicts = lvl.pairs
    result.warnings += lvl.notes
