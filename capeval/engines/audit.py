"""`capeval audit-references --engine local|ray`: the reference audit over image shards in two passes, with memory
bounded by the corpus summary and one shard, not by the corpus.

Pass 1 (per shard): `CorpusSummary.from_captions`; the summaries are merged. Pass 2 (per shard):
`audit.audit_images(shard, merged)`. Concatenated in input order, the findings equal `audit_captions` on the whole
corpus, finding for finding. Written to the output folder: findings/part-*.parquet and captions/part-*.parquet (one
file per shard, each row with its `caption_index` in the input), findings.jsonl (all findings in input order),
summary.csv (findings, captions and images per category), summary.md and run.json (engine, shard sizes, summary
sizes, timings).
"""

from __future__ import annotations

import heapq
import json
import os
import pickle
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from capeval.audit.finding import DEFAULT_MIN_CONFIDENCE
from capeval.engines.shards import Stream, default_num_shards, partition, shard_captions
from capeval.errors import InputError

_SUM_COLUMNS = ("findings", "captions", "images")


@dataclass
class ShardAudit:
    """Pass 2 of one shard: its findings and per-caption rows (with input positions) and its category counts."""

    findings: pd.DataFrame
    per_caption: pd.DataFrame
    summary: pd.DataFrame
    n_captions: int
    n_images: int
    notes: list[str]
    timings: dict[str, float]


@dataclass
class AuditEngineRun:
    """What an engine audit did and where it wrote it."""

    out_dir: str
    engine: str
    n_captions: int
    n_images: int
    n_findings: int
    summary: pd.DataFrame  # per category: findings, captions, caption_rate, images, image_rate
    shard_captions: list[int]
    shard_summary_bytes: list[int]
    summary_bytes: int
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def summarise_shard(table: pa.Table, shared: Any, *, name: str, measure: bool = False,
                    cider: bool = True) -> tuple[Any, int]:
    """Pass 1 on one shard: its CorpusSummary (with the CIDEr-D statistics when `cider`) and (with `measure`) that
    summary's pickled size in bytes."""
    from capeval.audit import CorpusSummary

    captions, _ = shard_captions(table, -1, name)
    s = CorpusSummary.from_captions(captions, cider=cider)
    return s, len(pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL)) if measure else 0


class SummaryMerger:
    """Merges shard summaries as they arrive: equal to folding `CorpusSummary.merge`, but in place (one copy of the
    merged counts instead of one per shard). Fields it does not know (a future CorpusSummary field) and shards that
    share an image fall back to `merge`, so its result and errors stay those of `merge`."""

    def __init__(self) -> None:
        self.merged: Any = None
        self._owned = False

    def add(self, s: Any) -> None:
        import dataclasses
        from collections import Counter

        if self.merged is None:
            self.merged, self._owned = s, False
            return
        m = self.merged
        kinds = {f.name: type(getattr(m, f.name)) for f in dataclasses.fields(m)}
        fast = all(k in (Counter, int, frozenset, type(None)) for k in kinds.values()) and all(
            type(getattr(s, n)) is k for n, k in kinds.items())  # None (a statistic not counted) stays None
        sets = [n for n, k in kinds.items() if k is frozenset]
        if not fast or any(not getattr(m, n).isdisjoint(getattr(s, n)) for n in sets):
            self.merged, self._owned = m.merge(s), True
            return
        if not self._owned:  # never change a summary we were given
            m = dataclasses.replace(m, **{n: Counter(getattr(m, n)) for n, k in kinds.items() if k is Counter})
            self._owned = True
        updates: dict[str, Any] = {}
        for n, k in kinds.items():
            if k is Counter:
                getattr(m, n).update(getattr(s, n))
            elif k is int:
                updates[n] = getattr(m, n) + getattr(s, n)
            elif k is frozenset:
                updates[n] = getattr(m, n) | getattr(s, n)
        self.merged = dataclasses.replace(m, **updates)


def audit_shard(table: pa.Table, summary: Any, *, name: str, path: str | None, format: str | None,
                backend: str, min_confidence: float, lt_url: str | None) -> ShardAudit:
    """Pass 2 on one shard: `audit_images` with the merged summary; rows keep their input positions."""
    from capeval.audit import audit_images

    captions, pos = shard_captions(table, -1, name, path, format)
    result = audit_images(captions, summary, backend=backend, min_confidence=min_confidence, lt_url=lt_url,
                          progress=False)
    index = dict(zip((c.caption_id for c in captions.captions), pos.tolist()))
    findings = result.findings_frame()
    findings.insert(0, "caption_index", [index[c] for c in findings["caption_id"]])
    per_caption = result.per_caption()
    per_caption.insert(0, "caption_index", pos)
    return ShardAudit(findings, per_caption, result.summary(), len(captions), len(captions.by_image()),
                      list(result.notes), dict(result.timings))


def merge_summaries(parts: Sequence[pd.DataFrame], n_captions: int, n_images: int) -> pd.DataFrame:
    """Category counts of disjoint shards added up (every caption and image lives in one shard), rates recomputed."""
    total = parts[0][["category", *_SUM_COLUMNS]].copy()
    for p in parts[1:]:
        for c in _SUM_COLUMNS:
            total[c] = total[c].to_numpy() + p[c].to_numpy()
    total.insert(3, "caption_rate", total["captions"] / max(1, n_captions))
    total["image_rate"] = total["images"] / max(1, n_images)
    return total


def _prepare_out(out: str) -> Path:
    """The output folder, checked before any work: created if missing, never a file."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise InputError("exists and is not a folder; expected an output folder", path=out)
    if not p.parent.exists():
        raise InputError(f"parent folder {str(p.parent)!r} does not exist; expected an output folder in an "
                         "existing folder", path=out)
    for sub in ("findings", "captions"):
        d = p / sub
        if d.is_dir():
            for old in d.glob("part-*.parquet"):
                old.unlink()
        d.mkdir(parents=True, exist_ok=True)
    return p


def audit_corpus(sources: str | Sequence[str], out: str, *, engine: str = "local", ray_address: str | None = None,
                 num_cpus: int | None = None, format: str | None = None, name: str | None = None,
                 backend: str = "builtin", min_confidence: float = DEFAULT_MIN_CONFIDENCE, lt_url: str | None = None,
                 num_shards: int | None = None, workdir: str | None = None, measure_summaries: bool = False
                 ) -> AuditEngineRun:
    """Audit one corpus (a file, folder, glob or shard list; read streaming) on an engine and write its outputs to
    `out`. Findings equal `audit_captions` on the whole corpus. `measure_summaries` records the pickled size of
    every shard's summary and of the merged one (costs a pickling of each)."""
    from capeval.audit.run import _check_options, needs_loo_cider
    from capeval.engines import make_engine
    from capeval.io.stream import check_sources, source_name

    _check_options(backend, min_confidence)
    files = check_sources(sources)
    out_dir = _prepare_out(out)
    name = name if name is not None else source_name(sources)
    stream = Stream(sources, -1, format, name, allow_empty=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with make_engine(engine, ray_address=ray_address, num_cpus=num_cpus) as eng, \
            tempfile.TemporaryDirectory(prefix="capeval-shards-", dir=workdir) as tmp:
        timings["engine_start"] = time.perf_counter() - t0
        t, c = time.perf_counter(), time.process_time()
        n = num_shards or default_num_shards([stream], at_least=2 * max(1, eng.workers))
        shards = partition([stream], tmp, n)
        timings["partition"] = time.perf_counter() - t
        timings["partition_cpu"] = time.process_time() - c
        if not shards.num_captions:
            raise InputError("no captions to audit", path=files[0])

        t, c = time.perf_counter(), time.process_time()
        merger = SummaryMerger()
        sizes = [0] * len(shards.paths)
        cider = needs_loo_cider(min_confidence)  # only the detail checks read them: left out when none is shown
        for i, (s, nbytes) in eng.map(summarise_shard, shards, None, name=name, measure=measure_summaries,
                                      cider=cider):
            sizes[i] = nbytes
            merger.add(s)
        merged = merger.merged
        timings["pass1"] = time.perf_counter() - t
        timings["pass1_cpu"] = time.process_time() - c
        merged_bytes = len(pickle.dumps(merged, protocol=pickle.HIGHEST_PROTOCOL)) if measure_summaries else 0

        t, c = time.perf_counter(), time.process_time()
        parts: list[pd.DataFrame] = []
        n_caps = n_imgs = n_find = 0
        notes: list[str] = []
        fmt = shards.formats.get(-1)
        for i, res in eng.map(audit_shard, shards, merged, name=name, path=files[0] if len(files) == 1 else None,
                              format=fmt, backend=backend, min_confidence=min_confidence, lt_url=lt_url):
            res.findings.to_parquet(out_dir / "findings" / f"part-{i:05d}.parquet", index=False)
            res.per_caption.to_parquet(out_dir / "captions" / f"part-{i:05d}.parquet", index=False)
            parts.append(res.summary)
            n_caps += res.n_captions
            n_imgs += res.n_images
            n_find += len(res.findings)
            notes += [x for x in res.notes if x not in notes]
        timings["pass2"] = time.perf_counter() - t
        timings["pass2_cpu"] = time.process_time() - c
        engine_name = eng.describe()

    t, c = time.perf_counter(), time.process_time()
    summary = merge_summaries(parts, n_caps, n_imgs)
    _write_findings_jsonl(out_dir)
    summary.to_csv(out_dir / "summary.csv", index=False)
    (out_dir / "summary.md").write_text(_summary_md(name, n_caps, n_imgs, summary), encoding="utf-8")
    timings["write"] = time.perf_counter() - t
    timings["write_cpu"] = time.process_time() - c
    run = AuditEngineRun(str(out_dir), engine_name, n_caps, n_imgs, n_find, summary, shards.captions, sizes,
                         merged_bytes, timings, notes)
    (out_dir / "run.json").write_text(json.dumps({
        "name": name, "inputs": files, "engine": engine_name, "captions": n_caps, "images": n_imgs,
        "findings": n_find, "shards": len(shards.paths), "shard_captions": shards.captions,
        "shard_summary_bytes": sizes if measure_summaries else None,
        "summary_bytes": merged_bytes if measure_summaries else None, "backend": backend,
        "min_confidence": min_confidence, "timings": timings, "notes": notes}, indent=1), encoding="utf-8")
    return run


def _part_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    df = pd.read_parquet(path)
    for row in df.to_dict("records"):
        yield row.pop("caption_index"), row


def _write_findings_jsonl(out_dir: Path) -> None:
    """All findings in input order: a streaming merge of the per-shard files (each sorted by caption position)."""
    parts = sorted((out_dir / "findings").glob("part-*.parquet"))
    with open(out_dir / "findings.jsonl", "w", encoding="utf-8") as fh:
        for _, row in heapq.merge(*(_part_rows(p) for p in parts), key=lambda r: r[0]):
            if row.get("suggestion") is not None and not isinstance(row["suggestion"], str):
                row["suggestion"] = None  # NaN from an all-None parquet column
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_findings(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The findings an engine audit wrote, in input order, as dicts like `Finding.to_dict()`."""
    rows = []
    with open(Path(out_dir) / "findings.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
    return rows


def _summary_md(name: str, n_caps: int, n_imgs: int, summary: pd.DataFrame) -> str:
    lines = [f"# Reference audit: {name}", "", f"{n_caps} captions, {n_imgs} images.", "",
             "| category | findings | captions | % captions | images | % images |", "|---|---:|---:|---:|---:|---:|"]
    for r in summary.itertuples(index=False):
        lines.append(f"| {r.category} | {r.findings} | {r.captions} | {r.caption_rate * 100:.2f} | {r.images} | "
                     f"{r.image_rate * 100:.2f} |")
    return "\n".join(lines) + "\n"


def audit_files_engine(sources: Sequence[str], out: str, *, engine: str | None, ray_address: str | None = None,
                       format: str | None = None, backend: str = "builtin", lt_url: str | None = None,
                       min_confidence: float = DEFAULT_MIN_CONFIDENCE, compare: bool = False, impact: Sequence[str] = (),
                       num_cpus: int | None = None) -> AuditEngineRun:
    """`capeval audit-references --engine ...`: the inputs are the shards of ONE corpus (files, folders or globs),
    audited streaming into `out`. --compare and --impact need the whole corpus in memory: not with an engine."""
    if engine is None:
        raise InputError("--ray-address applies to --engine ray only")
    if compare or impact:
        raise InputError("--compare and --impact are not available with --engine (they hold every corpus in "
                         "memory); run them without --engine")
    if not sources:
        raise InputError("give at least one caption file to audit")
    return audit_corpus(list(sources), out, engine=engine, ray_address=ray_address, num_cpus=num_cpus,
                        format=format, backend=backend, min_confidence=min_confidence, lt_url=lt_url)
