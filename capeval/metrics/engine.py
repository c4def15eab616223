"""Scoring engine: many systems x many metrics against one reference set.

References are tokenized once and their n-gram statistics (BLEU max counts, CIDEr-D document frequencies and
vectors, ROUGE-L ids) are cached and reused for every system; metrics that cannot run here are reported, not fatal.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from capeval.errors import DegenerateInputWarning, InputError, MetricUnavailable
from capeval.metrics.base import Metric, MetricResult, check_inputs
from capeval.metrics.registry import NATIVE, MetricRequest, create_metric, parse_metric_names
from capeval.records import CaptionSet
from capeval.text.tokenize import TOKENIZER_SIGNATURE, PTBTokenizer


@dataclass
class ScoreReport:
    """Scores of several systems: per caption, per system (corpus level), with signatures and what could not run."""

    per_caption: pd.DataFrame  # system, image_id, caption_id, one column per score name
    corpus: pd.DataFrame  # index: system; one column per score name
    signatures: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def score_names(self) -> list[str]:
        return list(self.corpus.columns)


class _NativeScorer:
    """BLEU/CIDEr-D/ROUGE-L on shared tokens; reference statistics cached per document set."""

    def __init__(self, cider_idf: object = None) -> None:
        from capeval.metrics.cider import load_cider_idf

        self.tokenizer = PTBTokenizer()
        self.idf = None if cider_idf is None else load_cider_idf(cider_idf)
        self._refs: dict[object, object] = {}

    def prepare(self, key: object, references: Sequence[Sequence[str]]) -> object:
        from capeval.metrics.ngrams import prepare_references

        hit = self._refs.get(key)
        if hit is None:
            tok = self.tokenizer.tokenize
            hit = self._refs[key] = prepare_references([[tok(r) for r in rs] for rs in references])
        return hit

    def score(self, families: Sequence[str], refs: object, candidates: Sequence[str]) -> list[MetricResult]:
        from capeval.metrics.bleu import bleu_results
        from capeval.metrics.cider import cider_results
        from capeval.metrics.ngrams import prepare_candidates
        from capeval.metrics.rouge import rouge_results

        tok = self.tokenizer.tokenize
        cands = prepare_candidates(refs, [tok(c) for c in candidates])  # type: ignore[arg-type]
        out: list[MetricResult] = []
        for fam in families:
            if fam == "bleu":
                out += bleu_results(refs, cands, tok=TOKENIZER_SIGNATURE)  # type: ignore[arg-type]
            elif fam == "cider":
                out += cider_results(refs, cands, self.idf, tok=TOKENIZER_SIGNATURE)  # type: ignore[arg-type]
            elif fam == "rouge":
                out += rouge_results(refs, cands, tok=TOKENIZER_SIGNATURE)  # type: ignore[arg-type]
        return out


def warn_degenerate(families: Iterable[str], n_images: int, cider_idf: object = None, who: str = "") -> None:
    """Warn where a score is what the formula gives but carries no information (the CLI prints one line)."""
    if "cider" in set(families) and cider_idf is None and n_images == 1:
        warnings.warn(f"{who + ': ' if who else ''}CIDEr-D over a single image is 0 by construction: its document "
                      "frequencies come from the evaluated references, so every n-gram occurs in 1 of 1 images and "
                      "gets idf log(1/1) = 0; score more images together or pass a fixed idf (--cider-idf / "
                      "cider_idf=, see capeval.metrics.build_cider_idf)", DegenerateInputWarning, stacklevel=3)


def _keep(results: list[MetricResult], req: MetricRequest) -> list[MetricResult]:
    return [r for r in results if req.keep is None or r.name in req.keep]


def compute_metric_many(names: str | Iterable[str], candidates: Sequence[str], references: Sequence[Sequence[str]],
                        *, cider_idf: object = None, bertscore_model: object = None, **options: object
                        ) -> list[MetricResult]:
    """Several metrics on raw text (each candidate with its own reference list), sharing tokenization and n-grams.
    Raises MetricUnavailable for the first metric that cannot run here."""
    check_inputs(candidates, references)
    requests = parse_metric_names(names)
    out: list[MetricResult] = []
    native = [r for r in requests if r.family in NATIVE]
    if native:
        warn_degenerate([r.family for r in native], len(references), cider_idf)
        scorer = _NativeScorer(cider_idf)
        refs = scorer.prepare(None, references)
        results = scorer.score([r.family for r in native], refs, candidates)
        for req in native:
            fam_results = [r for r in results if _family_of(r.name) == req.family]
            out += _keep(fam_results, req)
    for req in requests:
        if req.family in NATIVE:
            continue
        metric = create_metric(req.family, bertscore_model=bertscore_model, **options)
        try:
            reason = metric.unavailable_reason()
            if reason:
                raise MetricUnavailable(reason)
            out += _keep(metric.score(list(candidates), [list(r) for r in references]), req)
        finally:
            metric.close()
    return out


def compute_metric(name: str, candidates: Sequence[str], references: Sequence[Sequence[str]], **options: object
                   ) -> list[MetricResult]:
    """One metric (family or alias, e.g. "bleu", "bleu4", "cider-d") on raw text; each candidate is a document
    with its own reference list (CIDEr-D's idf is computed over these lists unless `cider_idf` is given)."""
    return compute_metric_many([name], candidates, references, **options)


def _family_of(score_name: str) -> str:
    return "bleu" if score_name.startswith("bleu") else score_name


def _read_exclusions(exclude_caption_ids: Iterable[str]) -> set[str]:
    return {str(x) for x in exclude_caption_ids}


def record_results(results: Sequence[MetricResult], system: str, frame: dict[str, object],
                   corpus_row: dict[str, float], signatures: dict[str, str]) -> None:
    """File one system's metric results into the per-caption columns, its corpus row and the signature map; a
    signature that differs from another system's is kept under `name@system` (shared by every engine)."""
    for r in results:
        frame[r.name] = np.asarray(r.per_item, dtype=np.float64)
        corpus_row[r.name] = float(r.corpus)
        sig = str(r.signature)
        if signatures.setdefault(r.name, sig) != sig:
            signatures[f"{r.name}@{system}"] = sig


def score_systems(systems: Mapping[str, CaptionSet], references: CaptionSet, metrics: str | Sequence[str], *,
                  exclude_caption_ids: Iterable[str] = (), cider_idf: object = None, bertscore_model: object = None,
                  progress: bool = True, **metric_options: object) -> ScoreReport:
    """Score every system against `references` with every metric.

    `exclude_caption_ids` removes reference captions first (e.g. those the audit flagged); a candidate image left with
    no reference at all is an InputError naming the images (scoring it would silently change the image set).
    `metric_options` go to the constructors that accept them (e.g. bertscore_layers=5, spice_lib=FOLDER).
    """
    from capeval.io import check_candidates

    if not systems:
        raise InputError("no systems to score")
    requests = parse_metric_names(metrics)
    if not requests:
        raise InputError("no metrics requested")
    excluded = _read_exclusions(exclude_caption_ids)
    refs_set = references.without(excluded) if excluded else references
    if excluded:
        unknown = excluded - set(references.by_id())
        if unknown and len(unknown) == len(excluded):
            warnings.warn(f"none of the {len(excluded)} excluded caption ids is in the references "
                          f"(e.g. {sorted(unknown)[:3]})", stacklevel=2)
    ref_by_image = refs_set.texts_by_image()
    emptied = [img for img in references.image_ids() if img not in ref_by_image]

    native_fams = [r.family for r in requests if r.family in NATIVE]
    native = _NativeScorer(cider_idf) if native_fams else None
    others: dict[str, Metric] = {}
    unavailable: dict[str, str] = {}
    for req in requests:
        if req.family in NATIVE:
            continue
        try:
            m = create_metric(req.family, bertscore_model=bertscore_model, **metric_options)
            reason = m.unavailable_reason()
        except MetricUnavailable as exc:
            reason, m = str(exc), None  # type: ignore[assignment]
        if reason:
            unavailable[req.family] = reason
            if m is not None:
                m.close()
        else:
            others[req.family] = m

    rows: list[pd.DataFrame] = []
    corpus: dict[str, dict[str, float]] = {}
    signatures: dict[str, str] = {}
    try:
        with _progress(progress, len(systems) * len(requests)) as advance:
            for sys_name, cands in systems.items():
                if emptied:
                    lost = [img for img in cands.by_image() if img in set(emptied)]
                    if lost:
                        raise InputError(f"{len(lost)} candidate images have no reference left after excluding "
                                         f"{len(excluded)} caption ids: {lost[:5]}; keep at least one reference per "
                                         "image or drop these images from the candidates", path=cands.path or sys_name)
                check_candidates(cands, refs_set)
                by_image = cands.by_image()
                images = [img for img in ref_by_image if img in by_image]
                cand_caps = [by_image[img][0] for img in images]
                cand_texts = [c.text for c in cand_caps]
                ref_lists = [ref_by_image[img] for img in images]
                frame = pd.DataFrame({"system": sys_name, "image_id": images,
                                      "caption_id": [c.caption_id for c in cand_caps]})
                corpus[sys_name] = {}
                results: list[MetricResult] = []
                if native is not None:
                    warn_degenerate(native_fams, len(images), cider_idf, who=sys_name)
                    prepared = native.prepare(tuple(images), ref_lists)
                    for req in requests:
                        if req.family in NATIVE:
                            res = native.score([req.family], prepared, cand_texts)
                            results += _keep(res, req)
                            advance(f"{sys_name}: {req.family}")
                for req in requests:
                    if req.family in NATIVE:
                        continue
                    if req.family in others:
                        try:
                            results += _keep(others[req.family].score(cand_texts, ref_lists), req)
                        except MetricUnavailable as exc:
                            unavailable[req.family] = str(exc)
                            others.pop(req.family).close()
                    advance(f"{sys_name}: {req.family}")
                record_results(results, sys_name, frame, corpus[sys_name], signatures)
                rows.append(frame)
    finally:
        for m in others.values():
            m.close()
    per_caption = pd.concat(rows, ignore_index=True)
    corpus_df = pd.DataFrame.from_dict(corpus, orient="index")
    corpus_df.index.name = "system"
    return ScoreReport(per_caption, corpus_df, signatures, unavailable)


class _progress:
    """A rich progress bar on stderr (or nothing); yields `advance(description)`."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self._p = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        if not self.enabled:
            return lambda desc="": None
        from rich.console import Console
        from rich.progress import Progress

        self._p = Progress(console=Console(stderr=True), transient=True)
        self._p.start()
        task = self._p.add_task("scoring", total=self.total)
        return lambda desc="": self._p.update(task, advance=1, description=desc)  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.stop()


def read_caption_ids(path: str, categories: str | Sequence[str] | None = None) -> list[str]:
    """Caption ids from a text file (one per line, `#` comments), a JSON list (of ids or of objects with
    `caption_id`), or JSONL such as the audit's findings.jsonl (objects with `caption_id`). Objects with a
    `category` (audit findings) count only when it is one of `categories`: by default the language errors
    (spelling, real_word, grammar, truncated, non_caption), not formatting or the advisory low_detail,
    off_consensus and duplicate; a comma-separated string or "all" asks for others."""
    import json
    from pathlib import Path

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file of caption ids to exclude not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ({exc})", path=str(path)) from None

    from capeval.audit.finding import CAPTION_LEVEL, CATEGORIES

    if categories is None:
        wanted = set(CAPTION_LEVEL)
    else:
        names = [c.strip() for c in (categories.split(",") if isinstance(categories, str) else categories) if c.strip()]
        wanted = set(CATEGORIES) if names == ["all"] else set(names)
        unknown = sorted(wanted - set(CATEGORIES))
        if unknown:
            raise InputError(f"unknown audit categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
                             f"expected 'all' or some of: {', '.join(CATEGORIES)}")

    def keep(value: object) -> bool:
        return not (isinstance(value, dict) and "category" in value and value["category"] not in wanted)

    def one(value: object, where: str) -> str:
        if isinstance(value, dict):
            if "caption_id" not in value:
                raise InputError("expected an object with a 'caption_id' field", path=str(path), where=where)
            value = value["caption_id"]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InputError(f"expected a caption id (string or integer), got {type(value).__name__}",
                             path=str(path), where=where)
        return str(value).strip()

    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise InputError(f"invalid JSON ({exc}); expected a list of caption ids", path=str(path)) from None
        return [one(v, f"[{i}]") for i, v in enumerate(items) if keep(v)]
    ids: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s[0] in "{\"":
            try:
                value = json.loads(s)
                if keep(value):
                    ids.append(one(value, f"line {lineno}"))
            except ValueError as exc:
                raise InputError(f"invalid JSON line ({exc})", path=str(path), where=f"line {lineno}") from None
        else:
            ids.append(s)
    return ids


def write_scores(report: ScoreReport, path: str) -> str:
    """Per-caption scores (one row per system x image) to .parquet, .csv, .json or .jsonl, by extension."""
    from pathlib import Path

    p = Path(path)
    ext = p.suffix.lower()
    df = report.per_caption
    if ext == ".parquet":
        df.to_parquet(p, index=False)
    elif ext == ".csv":
        df.to_csv(p, index=False)
    elif ext == ".json":
        df.to_json(p, orient="records", indent=1)
    elif ext == ".jsonl":
        df.to_json(p, orient="records", lines=True)
    else:
        raise InputError("unknown output extension; expected .parquet, .csv, .json or .jsonl", path=str(path))
    return str(p)


def score_files(refs: object, candidates: Sequence[object], metrics: str | Sequence[str], *, format: str | None = None,
                exclude_captions: str | None = None, cider_idf: str | None = None,
                bertscore_model: str | None = None, out: str | None = None, progress: bool = True,
                allow_empty: bool = False, exclude_categories: str | None = None,
                **metric_options: object) -> ScoreReport:
    """`capeval score`: load references and candidates (paths, dataset names, URLs; see `capeval.io.load`), score,
    optionally write per-caption scores. System name = `capeval.io.system_name` (dataset names kept whole), made
    unique if two share one. `allow_empty` reads empty captions (an empty candidate scores as the empty string)."""
    from capeval.io import load

    if not candidates:
        raise InputError("no candidate files given")
    if out is not None:
        from pathlib import Path

        if Path(out).suffix.lower() not in (".parquet", ".csv", ".json", ".jsonl"):
            raise InputError("unknown output extension; expected .parquet, .csv, .json or .jsonl", path=str(out))
    references = load(refs, allow_empty=allow_empty)
    systems: dict[str, CaptionSet] = {}
    for c in candidates:
        cs = load(c, format=format, allow_empty=allow_empty)
        name = cs.name or "system"
        base, k = name, 2
        while name in systems:
            name, k = f"{base}-{k}", k + 1
        systems[name] = cs
        empty = sum(1 for cap in cs.captions if not cap.text.strip())
        if empty:
            warnings.warn(f"{name}: {empty} empty candidate caption(s) scored as the empty string (--allow-empty)",
                          DegenerateInputWarning, stacklevel=2)
    excluded = read_caption_ids(exclude_captions, exclude_categories) if exclude_captions else []
    report = score_systems(systems, references, metrics, exclude_caption_ids=excluded, cider_idf=cider_idf,
                           bertscore_model=bertscore_model, progress=progress, **metric_options)
    if out:
        write_scores(report, out)
    return report
