"""The audit pipeline: run every checker over a caption corpus and collect findings into plain tables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from capeval.audit.finding import CAPTION_LEVEL, CATEGORIES, DEFAULT_MIN_CONFIDENCE, KEEP_EXEMPT, Finding
from capeval.audit.summary import CorpusSummary
from capeval.errors import CapevalError, InputError
from capeval.records import Caption, CaptionSet

BACKENDS = ("builtin", "languagetool")
_LOO_CIDER_RULES = ("low_detail", "off_consensus")  # the detail checks that read leave-one-out CIDEr-D (rule = category)
FIX_CONFIDENCE = 0.6  # corrections at least this confident (calibrated) are applied in `corrected` / references.fixed.json
_FINDING_COLUMNS = ["caption_id", "image_id", "category", "start", "end", "text", "suggestion", "rule", "confidence",
                    "backend"]


@dataclass
class AuditResult:
    """Findings of one audited corpus, with the corpus itself (never modified) and notes on skipped checks."""

    captions: CaptionSet
    findings: list[Finding]
    backend: str = "builtin"
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.captions.name or (os.path.basename(self.captions.path) if self.captions.path else "captions")

    def findings_frame(self) -> pd.DataFrame:
        return pd.DataFrame([f.to_dict() for f in self.findings], columns=_FINDING_COLUMNS)

    def flagged_ids(self, categories: Sequence[str] | None = None) -> set[str]:
        """Caption ids with a finding (in `categories`; default: every category except formatting)."""
        cats = set(categories) if categories is not None else set(CATEGORIES) - KEEP_EXEMPT
        return {f.caption_id for f in self.findings if f.category in cats}

    def corrected_texts(self) -> dict[str, str]:
        """caption_id -> caption with every confident, non-overlapping correction applied (only changed ones)."""
        by_caption: dict[str, list[Finding]] = {}
        for f in self.findings:
            if f.suggestion is not None and f.confidence >= FIX_CONFIDENCE:
                by_caption.setdefault(f.caption_id, []).append(f)
        texts = self.captions.by_id()
        out = {}
        for cid, fs in by_caption.items():
            text = texts[cid].text
            fs.sort(key=lambda f: (f.start, -(f.end - f.start)))
            chosen: list[Finding] = []
            for f in fs:
                if chosen and f.start < chosen[-1].end:
                    continue
                chosen.append(f)
            for f in reversed(chosen):
                text = text[:f.start] + f.suggestion + text[f.end:]
            if text != texts[cid].text:
                out[cid] = text
        return out

    def per_caption(self) -> pd.DataFrame:
        """One row per caption: its findings summarised and the corrected caption where a confident fix exists."""
        by_caption: dict[str, list[Finding]] = {}
        for f in self.findings:
            by_caption.setdefault(f.caption_id, []).append(f)
        fixed = self.corrected_texts()
        rows = []
        for c in self.captions:
            fs = by_caption.get(c.caption_id, [])
            cats = sorted({f.category for f in fs}, key=CATEGORIES.index)
            rows.append({
                "caption_id": c.caption_id,
                "image_id": c.image_id,
                "caption": c.text,
                "n_findings": len(fs),
                "categories": ";".join(cats),
                "details": "; ".join(f"{f.category}:{f.text!r}->{f.suggestion!r}" if f.suggestion is not None
                                     else f"{f.category}:{f.text!r}" for f in fs),
                "max_confidence": round(max((f.confidence for f in fs), default=0.0), 3),
                "caption_level_error": any(f.category in CAPTION_LEVEL for f in fs),
                "corrected": fixed.get(c.caption_id, ""),
            })
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """Per category: findings, captions and images affected, and their shares of the corpus."""
        n_caps = max(1, len(self.captions))
        n_imgs = max(1, len(self.captions.by_image()))
        rows = []
        for cat in CATEGORIES:
            fs = [f for f in self.findings if f.category == cat]
            caps = {f.caption_id for f in fs}
            imgs = {f.image_id for f in fs}
            rows.append({"category": cat, "findings": len(fs), "captions": len(caps),
                         "caption_rate": len(caps) / n_caps, "images": len(imgs), "image_rate": len(imgs) / n_imgs})
        for label, cats in (("caption-level (any error)", CAPTION_LEVEL), ("any finding", set(CATEGORIES))):
            fs = [f for f in self.findings if f.category in cats]
            caps = {f.caption_id for f in fs}
            imgs = {f.image_id for f in fs}
            rows.append({"category": label, "findings": len(fs), "captions": len(caps),
                         "caption_rate": len(caps) / n_caps, "images": len(imgs), "image_rate": len(imgs) / n_imgs})
        return pd.DataFrame(rows)

    def fixed_captions(self) -> CaptionSet:
        fixed = self.corrected_texts()
        caps = [Caption(c.caption_id, c.image_id, fixed.get(c.caption_id, c.text), c.source) for c in self.captions]
        return CaptionSet(caps, name=f"{self.name} (fixed)", format=self.captions.format)

    def kept_captions(self) -> CaptionSet:
        """Captions with a language error (CAPTION_LEVEL: spelling, real_word, grammar, truncated, non_caption)
        removed, as `score --exclude-captions findings.jsonl` does, and the repeats of a caption within its image
        (the first copy stays); an image never loses all its captions."""
        flagged = {f.caption_id for f in self.findings
                   if f.category in CAPTION_LEVEL or f.rule == "duplicate.same_image"}
        drop: set[str] = set()
        for caps in self.captions.by_image().values():
            bad = [c.caption_id for c in caps if c.caption_id in flagged]
            if len(bad) == len(caps):
                n_by = {cid: sum(1 for f in self.findings if f.caption_id == cid) for cid in bad}
                bad.remove(min(bad, key=lambda cid: n_by[cid]))
            drop.update(bad)
        kept = self.captions.without(drop)
        kept.name = f"{self.name} (kept)"
        return kept


def preload() -> None:
    """Load the per-process resources of the built-in checker (dictionary, suggestion buckets, confusion sets,
    tokenizer, inflection tables, spaCy model, caption LM, calibration) now rather than inside the first audit:
    one-off costs that do not grow with the corpus."""
    from capeval.audit.annotate import load_tagger
    from capeval.audit.calibration import load_calibration
    from capeval.audit.real_word import load_confusion_sets
    from capeval.audit.rules.grammar import lemmas
    from capeval.audit.spelling import _candidate_vocab, load_lexicon
    from capeval.text.tokenize import PTBTokenizer

    load_lexicon()
    load_confusion_sets()
    _candidate_vocab(False)
    _candidate_vocab(True)
    PTBTokenizer().tokenize("A dog.")
    lemmas("dogs")
    load_calibration()
    nlp = load_tagger()
    if nlp is not None:
        nlp("A dog.")
    lm = _caption_lm([])
    if lm is not None:
        from capeval.audit import candidates

        candidates.preload(lm)


def _check_options(backend: str, min_confidence: float) -> None:
    if backend not in BACKENDS:
        raise CapevalError(f"unknown grammar backend {backend!r}; expected one of: {', '.join(BACKENDS)}")
    if not 0.0 <= min_confidence <= 1.0:
        raise CapevalError(f"min_confidence must be between 0 and 1, got {min_confidence}")


def audit_captions(captions: CaptionSet, *, backend: str = "builtin",
                   min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                   lt_url: str | None = None, progress: bool = True) -> AuditResult:
    """Audit a caption corpus with the built-in checker (or LanguageTool for spelling/grammar) plus the detail
    checks; findings below `min_confidence` are dropped. The corpus is read, never modified. Both passes in one:
    `audit_images(captions, CorpusSummary.from_captions(captions))`."""
    from capeval.audit.summary import CorpusSummary

    _check_options(backend, min_confidence)
    if len(captions) == 0:
        raise InputError("no captions to audit", path=captions.path)
    import time

    t0, c0 = time.perf_counter(), time.process_time()
    summary = CorpusSummary.from_captions(captions, cider=needs_loo_cider(min_confidence))
    pass1 = {"corpus_summary": time.perf_counter() - t0, "corpus_summary_cpu": time.process_time() - c0}
    result = audit_images(captions, summary, backend=backend, min_confidence=min_confidence, lt_url=lt_url,
                          progress=progress)
    result.timings = {**pass1, **result.timings}
    return result


def needs_loo_cider(min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> bool:
    """Whether a calibrated audit at `min_confidence` runs the leave-one-out CIDEr-D checks (low_detail,
    off_consensus), so whether its corpus summary needs their CIDEr-D statistics."""
    from capeval.audit.calibration import load_calibration

    calibration = load_calibration()
    return any(calibration.ceiling(r, r) >= min_confidence for r in _LOO_CIDER_RULES)


def audit_images(captions: CaptionSet, summary: CorpusSummary, *, backend: str = "builtin",
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE, lt_url: str | None = None, progress: bool = True,
                 calibrated: bool = True) -> AuditResult:
    """Pass 2 of the audit over whole images of a corpus: `captions` is the corpus or a shard of it (every caption of
    an image in the same shard) and `summary` the merged `CorpusSummary` of the whole corpus. Concatenating the
    results of the shards gives the findings of `audit_captions` on the whole corpus. `calibrated=False` keeps the
    rules' raw scores and every rule's own findings, also where another rule flags the same span (what
    `capeval.audit.calibration` fits the calibration on: a rule must be judged on all it finds, not on what is left
    after a rule with higher raw scores took the span)."""
    _check_options(backend, min_confidence)
    if len(captions) == 0:
        raise InputError("no captions to audit", path=captions.path)
    missing = {c.image_id for c in captions.captions} - summary.image_ids
    if missing:
        raise CapevalError(f"{len(missing)} image(s) of the captions are not in the corpus summary (e.g. "
                           f"{sorted(missing)[0]!r}): summarise every shard and merge the summaries first")
    return _audit(captions, summary, backend, min_confidence, lt_url, progress, calibrated)


def _audit(captions: CaptionSet, summary: CorpusSummary, backend: str, min_confidence: float, lt_url: str | None,
           progress: bool, calibrated: bool = True) -> AuditResult:
    import time

    from capeval.audit import detail
    from capeval.audit.annotate import AuditContext, annotate, tag
    from capeval.audit.calibration import load_calibration
    from capeval.audit.corpus import CorpusStats
    from capeval.audit.real_word import RealWordChecker
    from capeval.audit.rules import all_rules
    from capeval.audit.spelling import SpellingChecker, load_lexicon

    timings: dict[str, float] = {}
    notes: list[str] = []

    def lap(name: str, t: float, c: float) -> None:
        timings[name] = time.perf_counter() - t
        timings[f"{name}_cpu"] = time.process_time() - c

    t, c0 = time.perf_counter(), time.process_time()
    lex = load_lexicon()
    stats = CorpusStats(summary)
    lm = _caption_lm(notes)
    ctx = AuditContext(stats, lex, SpellingChecker(stats, lex), RealWordChecker(stats, lex), lm=lm)
    annotated = annotate(captions)
    lap("annotate", t, c0)

    # a rule whose calibrated confidence cannot reach `min_confidence` cannot show a finding: it is not run (its
    # raw findings, for the calibration itself, come from `calibrated=False`)
    calibration = load_calibration() if calibrated else None

    def can_show(rule: str, category: str) -> bool:
        return calibration is None or calibration.ceiling(rule, category) >= min_confidence

    rules = [r for r in all_rules() if can_show(r.name, r.category)]
    if backend != "builtin":
        # LanguageTool replaces the spelling, real-word, grammar and formatting rules; the caption notions stay
        rules = [r for r in rules if r.category in ("truncated", "non_caption")]
    findings: list[Finding] = []
    t, c0 = time.perf_counter(), time.process_time()
    tagged_rules = [r for r in rules if r.needs_tags]
    if tagged_rules:
        chosen = [a for a in annotated if any(r.trigger is None or r.trigger(a, ctx) for r in tagged_rules)]
        timings["tagged_captions"] = float(len(chosen))
        if chosen and tag(chosen) == 0:
            notes.append("spaCy model not installed: agreement rules that need a parse skipped "
                         "(python -m spacy download en_core_web_sm)")
    lap("tagging", t, c0)
    t, c0 = time.perf_counter(), time.process_time()
    for prepare in dict.fromkeys(r.prepare for r in rules if r.prepare is not None):  # each once, shared
        prepare(annotated, ctx)
    lap("language_model", t, c0)
    t, c0 = time.perf_counter(), time.process_time()
    every, untagged = [r.fn for r in rules], [r.fn for r in rules if not r.needs_tags]  # both in rule order
    with _progress(progress, len(annotated), "auditing captions") as advance:
        for k, ann in enumerate(annotated):
            for fn in (untagged if ann.tagged is None else every):
                if found := fn(ann, ctx):
                    findings.extend(found)
            if k % 2000 == 1999:
                advance(2000)
    if backend != "builtin":
        from capeval.audit.languagetool import check_with_languagetool

        findings.extend(check_with_languagetool(captions, url=lt_url, progress=progress))
    lap("text_checks", t, c0)

    t, c0 = time.perf_counter(), time.process_time()
    words = {a.caption.caption_id: a.words for a in annotated}
    if can_show("duplicate", "duplicate"):
        findings.extend(detail.duplicates(captions))
    low, off = (can_show(r, r) for r in _LOO_CIDER_RULES)
    if (low or off) and any(len(v) >= 3 for v in captions.by_image().values()):
        try:
            scores = detail.loo_cider(captions, summary)
        except (ImportError, CapevalError) as exc:
            notes.append(f"off_consensus skipped: leave-one-out CIDEr-D unavailable ({exc})")
            if low:
                findings.extend(detail.low_detail(captions, words, lex))
        else:
            if low:
                findings.extend(detail.low_detail(captions, words, lex, scores))
            if off:
                findings.extend(detail.off_consensus(captions, scores, words, lex))
    elif low or off:
        notes.append("low_detail/off_consensus skipped: fewer than 3 captions per image")
    lap("detail_checks", t, c0)
    findings = [f for f in findings if f.confidence >= min_confidence] if not calibrated else _one_per_span(
        [f for f in calibration.apply(findings) if f.confidence >= min_confidence])
    order = {c.caption_id: i for i, c in enumerate(captions.captions)}
    findings.sort(key=lambda f: (order[f.caption_id], f.start, CATEGORIES.index(f.category), f.rule))
    return AuditResult(captions, findings, backend=backend, min_confidence=min_confidence, notes=notes,
                       timings=timings)


def _one_per_span(findings: list[Finding]) -> list[Finding]:
    """Where several rules flag the same span with the same category, the most confident finding."""
    best: dict[tuple, Finding] = {}
    for f in findings:
        key = (f.caption_id, f.category, f.start, f.end)
        g = best.get(key)
        if g is None or (f.confidence, f.rule) > (g.confidence, g.rule):
            best[key] = f
    return list(best.values())


def _caption_lm(notes: list[str]):
    """The shipped caption language model, or None (with a note) when it is not available."""
    try:
        from capeval.audit.lm import CaptionLM

        return CaptionLM.load()
    except (ImportError, OSError, FileNotFoundError, KeyError) as exc:
        notes.append(f"caption language model unavailable ({exc}): LM real-word rule skipped")
        return None


class _progress:
    """A rich progress bar when asked for and attached to a terminal; a no-op otherwise."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled = enabled
        self.total, self.label = total, label
        self._bar = None

    def __enter__(self):
        import sys

        if self.enabled and sys.stderr.isatty():
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._bar.start()
            task = self._bar.add_task(self.label, total=self.total)
            return lambda n: self._bar.advance(task, n)
        return lambda n: None

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


def compare_audits(results: Sequence[AuditResult]) -> pd.DataFrame:
    """One table: rows are categories, columns the inputs, values the share of captions with a finding (%)."""
    table: dict[str, pd.Series] = {}
    names: list[str] = []
    for r in results:
        name = r.name
        while name in names:
            name += "'"
        names.append(name)
        s = r.summary().set_index("category")["caption_rate"] * 100.0
        s.loc["captions"] = len(r.captions)
        table[name] = s
    df = pd.DataFrame(table)
    df.index.name = "category"
    return df


@dataclass
class AuditRun:
    """What `audit_references` did: one result per input, where it wrote them, and the comparison table."""

    results: list[AuditResult]
    out_dirs: list[str]
    comparison: pd.DataFrame | None
    impact: pd.DataFrame | None = None


def audit_references(paths: Sequence[str], out_dir: str, *, format: str | None = None, backend: str = "builtin",
                     lt_url: str | None = None, min_confidence: float = DEFAULT_MIN_CONFIDENCE, compare: bool = False,
                     impact_systems: Sequence[str] = (), progress: bool = True) -> AuditRun:
    """Load each file, audit it, write its outputs (into `out_dir`, or `out_dir/<name>` for several inputs), and
    optionally compare the inputs and rescore systems against the audited references (the first input)."""
    from capeval.audit.outputs import write_audit
    from capeval.io import load_captions

    if not paths:
        raise CapevalError("give at least one caption file to audit")
    sets = [load_captions(p, format=format, allow_empty=True) for p in paths]
    results, dirs = [], []
    used: set[str] = set()
    for p, cs in zip(paths, sets):
        r = audit_captions(cs, backend=backend, min_confidence=min_confidence, lt_url=lt_url, progress=progress)
        if len(paths) == 1:
            d = out_dir
        else:
            stem = cs.name or "captions"  # capeval.io.system_name: dataset names whole (llava-1.5-7b-briefly)
            while stem in used:
                stem += "_"
            used.add(stem)
            d = os.path.join(out_dir, stem)
        write_audit(r, d)
        results.append(r)
        dirs.append(d)
    comparison = compare_audits(results) if (compare or len(results) > 1) else None
    if comparison is not None:
        comparison.round(3).to_csv(os.path.join(out_dir, "comparison.csv"))
    impact = None
    if impact_systems:
        from capeval.audit.impact import rescore_impact

        systems = {cs.name: cs for cs in map(load_captions, impact_systems)}  # names as capeval.io.system_name
        impact = rescore_impact(sets[0], systems, results[0], progress=progress)
        impact.to_csv(os.path.join(dirs[0], "impact.csv"), index=False)
    return AuditRun(results, dirs, comparison, impact)
