"""`capeval score --engine local|ray`: BLEU, CIDEr-D and ROUGE-L over image shards in two passes, giving the
ScoreReport `score_systems` gives on the whole corpus (same rows, same order, same numbers bit for bit).

Pass 1 (per shard): join references and candidates by image, check the candidates, summarise the evaluated
documents (`corpus_stats.NgramSummary`). The summaries are merged and the candidate checks raised with the messages
of the one-process run. Pass 2 (per shard): score with the merged summary. The driver keeps per-document scores
(a few numbers per image), never captions.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from capeval.engines.shards import ShardSet, Stream, default_num_shards, partition, shard_captions
from capeval.errors import InputError
from capeval.metrics.base import Signature
from capeval.metrics.corpus_stats import NgramSummary, prepare_shard_references
from capeval.metrics.engine import ScoreReport, _keep, record_results
from capeval.metrics.registry import NATIVE, parse_metric_names

_KEEP = 5  # examples kept per check (the messages show five)


@dataclass
class _Check:
    """A mergeable candidate check: how many images fail it and the first few (by input position)."""

    count: int = 0
    first: list[tuple[int, str, list[str]]] = field(default_factory=list)  # (pos, image id, caption ids)

    def add(self, pos: int, img: str, ids: list[str]) -> None:
        self.count += 1
        self.first.append((pos, img, ids))
        self.first = sorted(self.first)[:_KEEP]

    def merge(self, other: _Check) -> _Check:
        return _Check(self.count + other.count, sorted(self.first + other.first)[:_KEEP])


@dataclass
class SystemSummary:
    """Pass 1 for one system: its n-gram summary and the candidate checks of `score_systems`."""

    ngrams: NgramSummary
    cand_images: int = 0
    missing: _Check = field(default_factory=_Check)  # candidate images without references
    dups: _Check = field(default_factory=_Check)  # images with several candidates
    lost: _Check = field(default_factory=_Check)  # candidate images whose references were all excluded
    excluded_found: int = 0

    def merge(self, other: SystemSummary) -> SystemSummary:
        return SystemSummary(self.ngrams.merge(other.ngrams), self.cand_images + other.cand_images,
                             self.missing.merge(other.missing), self.dups.merge(other.dups),
                             self.lost.merge(other.lost), self.excluded_found + other.excluded_found)


@dataclass
class ScoreRun:
    """What the engine did: the report, the shards and how long each stage took."""

    report: ScoreReport
    engine: str
    shard_captions: list[int]
    summary_bytes: dict[str, int]
    timings: dict[str, float]


def _documents(table: pa.Table, role: int, excluded: frozenset[str]) -> dict[str, Any]:
    """The shard's references (after exclusions) grouped by image, and system `role`'s candidates."""
    refs, rpos = shard_captions(table, -1)
    cands, cpos = shard_captions(table, role)
    ref_by_image: dict[str, list[tuple[int, str]]] = {}
    all_ref_images: set[str] = set()
    found = 0
    for c, p in zip(refs.captions, rpos.tolist()):
        all_ref_images.add(c.image_id)
        if excluded and c.caption_id in excluded:
            found += 1
            continue
        ref_by_image.setdefault(c.image_id, []).append((p, c.text))
    cand_by_image: dict[str, list[tuple[int, Any]]] = {}
    for c, p in zip(cands.captions, cpos.tolist()):
        cand_by_image.setdefault(c.image_id, []).append((p, c))
    return {"refs": ref_by_image, "all_ref_images": all_ref_images, "cands": cand_by_image, "excluded_found": found}


def _evaluated(d: dict[str, Any]) -> list[str]:
    """Evaluated images in reference order (`score_systems`: reference images that have a candidate)."""
    return [img for img in d["refs"] if img in d["cands"]]


def _tokenize(texts: Iterable[str], tokenizer: Any = None) -> list[list[str]]:
    from capeval.text.tokenize import PTBTokenizer

    tok = (tokenizer or PTBTokenizer()).tokenize
    return [tok(t) for t in texts]


def summarise_shard(table: pa.Table, shared: Any, *, roles: Sequence[int], excluded: frozenset[str],
                    with_df: bool) -> dict[int, SystemSummary]:
    """Pass 1 on one shard: per system, the n-gram summary of its evaluated documents and the candidate checks."""
    from capeval.text.tokenize import PTBTokenizer

    tokenizer = PTBTokenizer()
    out: dict[int, SystemSummary] = {}
    for role in roles:
        d = _documents(table, role, excluded)
        s = SystemSummary(NgramSummary(), len(d["cands"]), excluded_found=d["excluded_found"])
        for img, caps in d["cands"].items():
            pos = caps[0][0]
            if img in d["all_ref_images"] and img not in d["refs"]:
                s.lost.add(pos, img, [])
            elif img not in d["refs"]:
                s.missing.add(pos, img, [])
            if len(caps) > 1:
                s.dups.add(pos, img, [c.caption_id for _, c in caps])
        images = _evaluated(d)
        docs = [_tokenize((t for _, t in d["refs"][img]), tokenizer) for img in images]
        ref_pos = [[p for p, _ in d["refs"][img]] for img in images]
        s.ngrams = NgramSummary.from_documents(docs, [r[0] for r in ref_pos], ref_pos, with_df=with_df)
        out[role] = s
    return out


def score_shard(table: pa.Table, shared: dict[int, tuple[NgramSummary, Any]], *, families: Sequence[str],
                excluded: frozenset[str]) -> dict[int, dict[str, Any]]:
    """Pass 2 on one shard: per system, per-document scores (BLEU as its integer statistics) in reference order."""
    from capeval.metrics.bleu import bleu_statistics
    from capeval.metrics.cider import cider_results
    from capeval.metrics.ngrams import prepare_candidates
    from capeval.metrics.rouge import rouge_results
    from capeval.text.tokenize import TOKENIZER_SIGNATURE, PTBTokenizer

    tokenizer = PTBTokenizer()
    out: dict[int, dict[str, Any]] = {}
    for role, (summary, idf) in shared.items():
        d = _documents(table, role, excluded)
        images = _evaluated(d)
        if not images:
            continue
        refs = prepare_shard_references([_tokenize((t for _, t in d["refs"][img]), tokenizer) for img in images],
                                        summary)
        first = [d["cands"][img][0][1] for img in images]
        cands = prepare_candidates(refs, _tokenize((c.text for c in first), tokenizer))
        res: dict[str, Any] = {"pos": np.array([d["refs"][img][0][0] for img in images], dtype=np.int64),
                               "image_id": images, "caption_id": [c.caption_id for c in first]}
        for fam in families:
            if fam == "bleu":
                res["bleu"] = bleu_statistics(refs, cands)
            elif fam == "cider":
                r = cider_results(refs, cands, idf, tok=TOKENIZER_SIGNATURE)[0]
                res["cider"], res["cider_sig"] = r.per_item, r.signature
            elif fam == "rouge":
                r = rouge_results(refs, cands, tok=TOKENIZER_SIGNATURE)[0]
                res["rouge"], res["rouge_sig"] = r.per_item, r.signature
        out[role] = res
    return out


def _with(sig: Signature, **updates: str) -> Signature:
    return Signature(sig.name, tuple((k, updates.get(k, v)) for k, v in sig.info))


def _raise_checks(s: SystemSummary, sys_name: str, cand_path: str, ref_name: str, n_excluded: int) -> None:
    """The InputErrors of `score_systems` / `check_candidates`, from the merged checks."""
    from capeval.io.check import _sample

    if s.lost.count:
        lost = [img for _, img, _ in s.lost.first]
        raise InputError(f"{s.lost.count} candidate images have no reference left after excluding "
                         f"{n_excluded} caption ids: {lost[:5]}; keep at least one reference per "
                         "image or drop these images from the candidates", path=cand_path or sys_name)
    if s.missing.count:
        shown = _sample([img for _, img, _ in s.missing.first])
        more = s.missing.count - len(s.missing.first)
        if more > 0:
            shown += f" and {more} more"
        raise InputError(f"{s.missing.count} of {s.cand_images} candidate images have no reference captions in "
                         f"{ref_name}: {shown}; expected every candidate image id in the references "
                         "(ids are compared after normalisation, e.g. 'COCO_val2014_000000391895.jpg' -> '391895')",
                         path=cand_path)
    if s.dups.count:
        shown = _sample([img for _, img, _ in s.dups.first])
        more = s.dups.count - len(s.dups.first)
        if more > 0:
            shown += f" and {more} more"
        _, img0, ids0 = s.dups.first[0]
        raise InputError(f"{s.dups.count} images have more than one candidate caption: {shown} "
                         f"(image {img0!r} has {len(ids0)}: {_sample(ids0, 3)}); "
                         "expected exactly one candidate per image", path=cand_path)


def score_corpus(refs: str | Sequence[str], candidates: Sequence[str | Sequence[str]], metrics: str | Sequence[str],
                 *, engine: str = "local", ray_address: str | None = None, num_cpus: int | None = None,
                 format: str | None = None, exclude_caption_ids: Iterable[str] = (), cider_idf: object = None,
                 num_shards: int | None = None, workdir: str | None = None, names: Sequence[str] | None = None,
                 allow_empty: bool = False) -> ScoreRun:
    """Score candidate files (each a file, folder, glob or shard list) against references with BLEU, CIDEr-D and
    ROUGE-L on an engine; the report equals `score_systems` on the whole corpus. System name = file stem (made
    unique as `score_files` does)."""
    from capeval.engines import make_engine
    from capeval.io.stream import check_sources, expand_sources, source_name
    from capeval.metrics.cider import load_cider_idf

    requests = parse_metric_names(metrics)
    if not requests:
        raise InputError("no metrics requested")
    other = [r.family for r in requests if r.family not in NATIVE]
    if other:
        raise InputError(f"--engine runs {', '.join(NATIVE)} only; {', '.join(other)} need the default one-process "
                         "scorer (leave out --engine)")
    if not candidates:
        raise InputError("no candidate files given")
    sys_names: list[str] = []
    for i, c in enumerate(candidates):
        base = names[i] if names else source_name(c)
        name, k = base, 2
        while name in sys_names:
            name, k = f"{base}-{k}", k + 1
        sys_names.append(name)
    idf = None if cider_idf is None else load_cider_idf(cider_idf)
    excluded = frozenset(str(x) for x in exclude_caption_ids)
    families = list(dict.fromkeys(r.family for r in requests))
    streams = [Stream(refs, -1, allow_empty=allow_empty),
               *(Stream(c, k, format, sys_names[k], allow_empty) for k, c in enumerate(candidates))]
    for st in streams:
        check_sources(st.sources)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with make_engine(engine, ray_address=ray_address, num_cpus=num_cpus) as eng, \
            tempfile.TemporaryDirectory(prefix="capeval-shards-", dir=workdir) as tmp:
        timings["engine_start"] = time.perf_counter() - t0
        t = time.perf_counter()
        n = num_shards or default_num_shards(streams, at_least=2 * max(1, eng.workers))
        shards: ShardSet = partition(streams, tmp, n)
        timings["partition"] = time.perf_counter() - t
        roles = list(range(len(candidates)))

        t = time.perf_counter()
        merged: dict[int, SystemSummary] = {}
        for _, part in eng.map(summarise_shard, shards, None, roles=roles, excluded=excluded, with_df=idf is None):
            for role, s in part.items():
                merged[role] = merged[role].merge(s) if role in merged else s
        timings["pass1"] = time.perf_counter() - t
        ref_files = expand_sources(refs)
        ref_name = ref_files[0] if len(ref_files) == 1 else str(refs)
        if excluded and not any(merged[r].excluded_found for r in roles):
            warnings.warn(f"none of the {len(excluded)} excluded caption ids is in the references "
                          f"(e.g. {sorted(excluded)[:3]})", stacklevel=2)
        for role in roles:
            files = shards.inputs[role]
            _raise_checks(merged[role], sys_names[role], files[0] if len(files) == 1 else str(candidates[role]),
                          ref_name, len(excluded))

        t = time.perf_counter()
        shared = {r: (merged[r].ngrams, idf if idf is not None else merged[r].ngrams.cider_idf()) for r in roles
                  if merged[r].ngrams.num_docs}
        parts: dict[int, list[dict[str, Any]]] = {r: [] for r in roles}
        for _, part in eng.map(score_shard, shards, shared, families=families, excluded=excluded):
            for role, res in part.items():
                parts[role].append(res)
        timings["pass2"] = time.perf_counter() - t
        engine_name = eng.describe()
    t = time.perf_counter()
    report = _assemble(parts, merged, sys_names, requests, idf)
    timings["assemble"] = time.perf_counter() - t
    sizes = {sys_names[r]: merged[r].ngrams.size_bytes() for r in roles}
    return ScoreRun(report, engine_name, shards.captions, sizes, timings)


def _assemble(parts: dict[int, list[dict[str, Any]]], merged: dict[int, SystemSummary], sys_names: list[str],
              requests: list, idf: object) -> ScoreReport:
    """Per-document results of every shard -> the ScoreReport of `score_systems` (rows in reference order)."""
    from capeval.metrics.base import MetricResult
    from capeval.metrics.bleu import _nrefs_str, bleu_from_stats, bleu_signature
    from capeval.text.tokenize import TOKENIZER_SIGNATURE

    frames: list[pd.DataFrame] = []
    corpus: dict[str, dict[str, float]] = {}
    signatures: dict[str, str] = {}
    for role, sys_name in enumerate(sys_names):
        ps = parts[role]
        if not ps:
            raise InputError("no candidate image has references", path=sys_name)
        pos = np.concatenate([p["pos"] for p in ps])
        order = np.argsort(pos, kind="stable")
        images = [img for p in ps for img in p["image_id"]]
        cids = [c for p in ps for c in p["caption_id"]]
        frame = pd.DataFrame({"system": sys_name, "image_id": [images[i] for i in order],
                              "caption_id": [cids[i] for i in order]})
        ng = merged[role].ngrams
        nrefs = _nrefs_str(ng.nrefs())
        results: list[MetricResult] = []
        for req in requests:
            fam = req.family
            if fam == "bleu":
                stats = {k: (np.concatenate([p["bleu"][k] for p in ps], axis=-1)[..., order])
                         for k in ("testlen", "reflen", "guess", "correct")}
                corp, per = bleu_from_stats(stats, 4)
                res = [MetricResult(f"bleu{k + 1}", float(corp[k]), per[k],
                                    bleu_signature(k + 1, ng.nrefs(), TOKENIZER_SIGNATURE)) for k in range(4)]
            else:
                scores = np.concatenate([p[fam] for p in ps])[order]
                sig = ps[0][f"{fam}_sig"]
                if fam == "cider" and idf is None:
                    sig = _with(sig, df=f"eval-refs(n={ng.num_docs})", nrefs=nrefs)
                else:
                    sig = _with(sig, nrefs=nrefs)
                res = [MetricResult(fam, float(np.mean(scores)) if len(scores) else float("nan"), scores, sig)]
            results += _keep(res, req)
        corpus[sys_name] = {}
        record_results(results, sys_name, frame, corpus[sys_name], signatures)
        frames.append(frame)
    per_caption = pd.concat(frames, ignore_index=True)
    corpus_df = pd.DataFrame.from_dict(corpus, orient="index")
    corpus_df.index.name = "system"
    return ScoreReport(per_caption, corpus_df, signatures, {})


def score_files_engine(refs: str, candidates: Sequence[str], metrics: str | Sequence[str], *, engine: str | None,
                       ray_address: str | None = None, format: str | None = None, exclude_captions: str | None = None,
                       cider_idf: str | None = None, out: str | None = None, num_cpus: int | None = None,
                       allow_empty: bool = False, exclude_categories: str | None = None) -> ScoreReport:
    """`capeval score --engine ...`: `score_corpus` plus the exclusions file and the per-caption output file of
    `score_files`."""
    from capeval.metrics.engine import read_caption_ids, write_scores

    if engine is None:
        raise InputError("--ray-address applies to --engine ray only")
    if out:
        ext = os.path.splitext(out)[1].lower()
        if ext not in (".parquet", ".csv", ".json", ".jsonl"):
            raise InputError("unknown output extension; expected .parquet, .csv, .json or .jsonl", path=out)
    excluded = read_caption_ids(exclude_captions, exclude_categories) if exclude_captions else []
    run = score_corpus(refs, candidates, metrics, engine=engine, ray_address=ray_address, num_cpus=num_cpus,
                       format=format, exclude_caption_ids=excluded, cider_idf=cider_idf, allow_empty=allow_empty)
    if out:
        write_scores(run.report, out)
    return run.report
