"""The end-to-end demo on real public data: the story first (on THumB people rank the Human captions first while
BLEU-4 and ROUGE-L rank them last), then score four real systems on the COCO Karpathy test references, audit those
references and rescore without the flagged ones, meta-evaluate the classic metrics on Flickr8k, write one report."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from capeval.records import CaptionSet

SYSTEMS = ("m2-transformer", "blip2", "llava-1.5-7b-briefly", "llava-1.5-7b-default")
SCORE_METRICS = ("bleu", "cider", "rouge", "meteor", "spice")
META_METRICS = ("bleu1", "bleu4", "rouge", "meteor", "cider")
JUDGMENTS = ("flickr8k-expert", "flickr8k-crowdflower")
STORY_SET = "thumb"
STORY_METRICS = ("bleu4", "rouge", "cider")


@dataclass
class DemoResult:
    """What the demo computed and where it wrote it; `skipped` says which steps could not run and why."""

    out_dir: Path
    report_html: Path
    report_md: Path
    scores: pd.DataFrame
    signatures: dict[str, str]
    unavailable: dict[str, str]
    impact: pd.DataFrame | None = None
    audit_summary: pd.DataFrame | None = None
    correlations: list[object] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    story: object | None = None  # capeval.report.story.Story of the story set (THumB)
    story_result: object | None = None  # its CorrelationResult (system level)


def _as_percent(corpus: pd.DataFrame) -> pd.DataFrame:
    """Corpus scores as people report them (x100 for the COCO metrics), one row per system."""
    from capeval.metrics.registry import REPORTED_X100

    out = corpus.copy()
    for col in out.columns:
        if str(col).startswith(REPORTED_X100):
            out[col] = out[col] * 100
    return out.round(2).reset_index().rename(columns={"index": "system"})


def impact_table(impact: pd.DataFrame) -> pd.DataFrame:
    """The audit's rescoring table as people read it: x100, short column names, rank changes last."""
    out = pd.DataFrame({"system": impact["system"]})
    for variant in ("all", "kept", "fixed"):
        out[f"BLEU-4 {variant}"] = (impact[f"bleu4_{variant}"] * 100).round(2)
        out[f"CIDEr-D {variant}"] = (impact[f"cider_{variant}"] * 100).round(2)
    out["rank all"] = impact["rank_all"]
    out["rank kept"] = impact["rank_kept"]
    out["rank fixed"] = impact["rank_fixed"]
    return out


def _judgments(name: str, mirror: str | None) -> object:
    """A registered judgment set fetched through `mirror` (or the cache / $CAPEVAL_DATA_MIRROR)."""
    from capeval import datasets
    from capeval.meta import judgments as J

    if name == "thumb":
        return J.load_thumb(datasets.get_file("thumb", "mscoco_THumB-1.0.jsonl", mirror=mirror, progress=False))
    if name in ("flickr8k-expert", "flickr8k-crowdflower"):
        loader = J.load_flickr8k_expert if name == "flickr8k-expert" else J.load_flickr8k_crowdflower
        return loader(datasets.get(name, mirror=mirror, progress=False),
                      tokens=datasets.get("flickr8k-tokens", mirror=mirror, progress=False))
    return J.resolve_judgments(name)


def run_demo(out_dir: str | os.PathLike[str], *, mirror: str | None = None, systems: Sequence[str] = SYSTEMS,
             metrics: Sequence[str] = SCORE_METRICS, meta_metrics: Sequence[str] = META_METRICS,
             judgments: Sequence[str] = JUDGMENTS, bootstrap: int = 1000, story_set: str | None = STORY_SET,
             story_metrics: Sequence[str] = STORY_METRICS, system_tests: int = 10000,
             say: Callable[[str], None] = lambda _msg: None) -> DemoResult:
    """Run every step on the registry's datasets (fetched through the mirror/cache) and write `out_dir/report.html`:
    the story on `story_set` first (system level, per-system scoring as `capeval score`), then scoring, audit,
    rescoring and the Flickr8k meta-evaluation."""
    from capeval import datasets
    from capeval.io import load_captions
    from capeval.metrics import score_systems
    from capeval.report import Report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    report = Report("capeval demo: what the metrics say, what the references are worth, what people say")

    story = story_result = None
    if story_set:
        from capeval.meta.correlate import correlate
        from capeval.report.meta import add_story
        from capeval.report.story import SET_NAMES

        name = SET_NAMES.get(story_set, story_set)
        say(f"the story: {', '.join(story_metrics)} against people on {name} (each system scored as its own "
            f"evaluation, {bootstrap} image resamples)")
        story_result = correlate(_judgments(story_set, mirror), metrics=list(story_metrics), level="system",
                                 bootstrap=bootstrap,
                                 system_tests=system_tests)
        story = add_story(report, story_result, name, heading=f"1. What people say and what the metrics say ({name})")
    say("loading the COCO Karpathy test references and four real systems' captions")
    refs_path = datasets.resolve("coco-karpathy-test", mirror=mirror)
    refs = load_captions(refs_path, name="references", allow_empty=True)
    cands: dict[str, CaptionSet] = {s: load_captions(datasets.resolve(s, mirror=mirror), name=s) for s in systems}

    say(f"scoring {len(cands)} systems with {', '.join(metrics)}")
    scored = score_systems(cands, refs, list(metrics))
    table = _as_percent(scored.corpus)
    n = 2 if story_set else 1
    report.add_heading(f"{n}. Four real systems on COCO Karpathy test (5,000 images, 25,010 references)", 2)
    report.add_table(table, caption="Corpus scores (BLEU, METEOR, ROUGE-L, CIDEr-D, SPICE x 100)")
    for name, reason in scored.unavailable.items():
        report.add_text(f"{name}: unavailable: {reason}", note=True)
    report.add_list([f"`{k}`: {v}" for k, v in scored.signatures.items()])

    impact = audit_summary = None
    try:
        from capeval.audit import audit_captions, rescore_impact
        from capeval.audit.outputs import write_audit
    except ImportError as exc:
        skipped.append(f"reference audit: not available in this build ({exc})")
        say(f"skipping the reference audit: {exc}")
    else:
        say("auditing the 25,010 references (spelling, real-word errors, grammar, truncation, detail)")
        audit = audit_captions(refs)
        write_audit(audit, out / "audit")
        audit_summary = audit.summary()
        say("rescoring every system without the flagged references and with the corrected ones")
        impact = impact_table(rescore_impact(refs, cands, audit))
        report.add_heading(f"{n + 1}. What the references are worth: audit and rescoring", 2)
        report.add_table(audit_summary, caption="Findings per category in the references")
        report.add_table(impact, caption="BLEU-4 and CIDEr-D (x100) with all references, with flagged references "
                         "removed (kept) and with confident corrections applied (fixed); ranks by CIDEr-D")
        report.add_text(f"Full audit: {out / 'audit' / 'summary.html'}", note=True)

    correlations: list[object] = []
    try:
        from capeval.meta.correlate import correlate
        from capeval.report.meta import add_correlation_section
    except ImportError as exc:
        skipped.append(f"meta-evaluation: not available in this build ({exc})")
    else:
        for name in judgments:
            say(f"meta-evaluating {', '.join(meta_metrics)} against {name} ({bootstrap} bootstrap resamples)")
            result = correlate(_judgments(name, mirror), metrics=list(meta_metrics), bootstrap=bootstrap)
            add_correlation_section(report, result, title=f"{n + 2}. Agreement with people: {name}")
            correlations.append(result)
        if story_result is not None:
            add_correlation_section(report, story_result, story=False,
                                    title=f"{n + 3}. Agreement with people: "
                                          f"{SET_NAMES.get(story_set, story_set)}, the tables")

    html, md = report.write(out)
    return DemoResult(out, html, md, table, scored.signatures, scored.unavailable, impact, audit_summary,
                      correlations, skipped, story, story_result)
