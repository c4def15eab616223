"""Engines in one process: image shards, mergeable summaries (associative, commutative, exact) and the local
engine's score and audit, compared field by field with the one-process functions on Karpathy references."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capeval.engines.shards import Stream, partition, read_shard, shard_captions
from capeval.io import load_captions
from capeval.records import CaptionSet

N_IMAGES = 120


def karpathy_slice(root: Path | None, tmp: Path, n_images: int = N_IMAGES) -> tuple[Path, Path, CaptionSet]:
    """The first `n_images` Karpathy-test images as JSONL, captions interleaved across images (so an image's
    captions are not contiguous), plus the M2 Transformer candidates of those images (COCO results)."""
    if root is None or not (root / "coco-karpathy-test" / "coco_test.json").is_file():
        if os.environ.get("CAPEVAL_REQUIRE_DATA") == "1":
            pytest.fail(f"real test data required (CAPEVAL_REQUIRE_DATA=1) but not found at {root}")
        pytest.skip("real test data not found (set CAPEVAL_DATA_MIRROR)")
    refs = load_captions(root / "coco-karpathy-test" / "coco_test.json")
    by_image = refs.by_image()
    images = list(by_image)[:n_images]
    rows = []
    for k in range(max(len(by_image[i]) for i in images)):
        rows += [by_image[i][k] for i in images if k < len(by_image[i])]
    ref_path = tmp / "refs.jsonl"
    with open(ref_path, "w", encoding="utf-8") as fh:
        for c in rows:
            fh.write(json.dumps({"image_id": c.image_id, "caption": c.text, "caption_id": c.caption_id}) + "\n")
    cands = load_captions(root / "coco-system-outputs" / "m2_transformer.json").by_image()
    cand_path = tmp / "m2.json"  # COCO results
    cand_path.write_text(json.dumps([{"image_id": int(i), "caption": cands[i][0].text} for i in images]),
                         encoding="utf-8")
    return ref_path, cand_path, load_captions(ref_path)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, CaptionSet]:
    root = os.environ.get("CAPEVAL_DATA_MIRROR")
    default = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    return karpathy_slice(Path(root) if root else default, tmp_path_factory.mktemp("engines-local"))


def test_partition_keeps_images_whole_and_input_order(data, tmp_path: Path) -> None:
    ref_path, _, refs = data
    shards = partition([Stream(str(ref_path))], tmp_path, 3, chunk_size=97)
    seen: dict[str, int] = {}
    got = []
    for i, p in enumerate(shards.paths):
        cs, pos = shard_captions(read_shard(p))
        assert list(pos) == sorted(pos)
        for c in cs:
            assert seen.setdefault(c.image_id, i) == i  # every caption of an image in one shard
        got += list(zip(pos.tolist(), cs.captions))
    assert [(c.caption_id, c.image_id, c.text) for _, c in sorted(got)] == [
        (c.caption_id, c.image_id, c.text) for c in refs]
    assert sum(shards.captions) == len(refs) and all(shards.captions)


def _ngram_summary(refs: CaptionSet, images: list[str], tok):
    from capeval.metrics.corpus_stats import NgramSummary

    by = refs.by_image()
    pos = {c.caption_id: k for k, c in enumerate(refs)}
    docs = [[tok(c.text) for c in by[i]] for i in images]
    rpos = [[pos[c.caption_id] for c in by[i]] for i in images]
    return NgramSummary.from_documents(docs, [r[0] for r in rpos], rpos)


def test_ngram_summary_merge_is_exact_associative_and_commutative(data) -> None:
    from capeval.metrics.cider import build_cider_idf
    from capeval.text.tokenize import PTBTokenizer

    _, _, refs = data
    tok = PTBTokenizer().tokenize
    images = refs.image_ids()
    a, b, c = (_ngram_summary(refs, images[k::3], tok) for k in range(3))
    whole = _ngram_summary(refs, images, tok)
    for merged in (a.merge(b).merge(c), a.merge(b.merge(c)), c.merge(a).merge(b)):
        assert merged.df == whole.df and merged.tokens == whole.tokens
        assert (merged.num_docs, merged.nrefs_min, merged.nrefs_max) == (whole.num_docs, whole.nrefs_min, whole.nrefs_max)
    assert whole.df == dict(build_cider_idf(refs).df)  # CIDEr-D's own document frequencies
    assert whole.vocab().tokens[:5] == list(dict.fromkeys(tok(refs[0].text)))[:5]  # first-seen order


def test_audit_summary_merge_associative_and_merged_category_counts(data) -> None:
    from capeval.audit import CorpusSummary, audit_captions
    from capeval.engines.audit import SummaryMerger, merge_summaries
    from capeval.errors import CapevalError

    _, _, refs = data
    images = refs.image_ids()
    parts = [refs.subset_images(images[k::3]) for k in range(3)]
    a, b, c = (CorpusSummary.from_captions(p) for p in parts)
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    assert left == right == c.merge(b).merge(a)
    merger = SummaryMerger()
    for s in (a, b, c):
        merger.add(s)
    assert merger.merged == left and a == CorpusSummary.from_captions(parts[0])  # in place, inputs unchanged
    with pytest.raises(CapevalError, match="share"):
        merger.add(a)
    results = [audit_captions(p, progress=False) for p in parts]  # only the category counts are compared here
    merged = merge_summaries([r.summary() for r in results], len(refs), len(images))
    assert merged["findings"].tolist() == [sum(r.summary()["findings"][i] for r in results) for i in range(len(merged))]
    assert merged["caption_rate"].tolist() == (merged["captions"] / len(refs)).tolist()


def test_local_engine_score_equals_score_files(data, tmp_path: Path) -> None:
    from capeval.engines.score import score_corpus
    from capeval.metrics.engine import score_files

    ref_path, cand_path, _ = data
    whole = score_files(str(ref_path), [str(cand_path)], "bleu,cider,rouge", progress=False)
    run = score_corpus(str(ref_path), [str(cand_path)], "bleu,cider,rouge", engine="local", num_shards=3)
    pd.testing.assert_frame_equal(run.report.per_caption, whole.per_caption, check_exact=True)
    pd.testing.assert_frame_equal(run.report.corpus, whole.corpus, check_exact=True)
    assert run.report.signatures == whole.signatures
    assert sum(run.shard_captions) == len(load_captions(ref_path)) + N_IMAGES  # references + one candidate each


def test_local_engine_score_errors_match(data, tmp_path: Path) -> None:
    from capeval.engines.score import score_corpus
    from capeval.errors import InputError
    from capeval.metrics.engine import score_files

    ref_path, cand_path, _ = data
    bad = tmp_path / "bad.json"
    cands = json.loads(cand_path.read_text())
    bad.write_text(json.dumps(cands + [{"image_id": 999999999, "caption": "x"}, cands[0]]))
    with pytest.raises(InputError) as whole:
        score_files(str(ref_path), [str(bad)], "bleu", progress=False)
    with pytest.raises(InputError) as eng:
        score_corpus(str(ref_path), [str(bad)], "bleu", engine="local", num_shards=2)
    assert str(eng.value) == str(whole.value)
    with pytest.raises(InputError, match="--engine runs bleu, cider, rouge only; meteor"):
        score_corpus(str(ref_path), [str(cand_path)], "bleu,meteor", engine="local")


def test_local_engine_audit_equals_audit_captions(data, tmp_path: Path) -> None:
    from capeval.audit import audit_captions
    from capeval.engines.audit import audit_corpus, read_findings

    ref_path, _, refs = data
    whole = audit_captions(load_captions(ref_path, allow_empty=True), progress=False)
    run = audit_corpus(str(ref_path), str(tmp_path / "out"), engine="local", num_shards=3, measure_summaries=True)
    assert read_findings(run.out_dir) == [f.to_dict() for f in whole.findings]
    pd.testing.assert_frame_equal(run.summary, whole.summary(), check_exact=True)
    parts = sorted((tmp_path / "out" / "findings").glob("part-*.parquet"))
    assert len(parts) == 3 and sum(len(pd.read_parquet(p)) for p in parts) == len(whole.findings)
    per_caption = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "out" / "captions").glob("*.parquet"))])
    per_caption = per_caption.sort_values("caption_index").drop(columns="caption_index").reset_index(drop=True)
    pd.testing.assert_frame_equal(per_caption, whole.per_caption(), check_exact=True)
    assert np.all(np.array(run.shard_summary_bytes) > 0)


def test_local_engine_score_with_exclusions_and_fixed_idf(data, tmp_path: Path) -> None:
    from capeval.engines.score import score_corpus
    from capeval.metrics.cider import build_cider_idf
    from capeval.metrics.engine import score_files

    ref_path, cand_path, refs = data
    excluded = [c.caption_id for c in refs.captions[::7]]
    (tmp_path / "drop.txt").write_text("\n".join(excluded), encoding="utf-8")
    idf = build_cider_idf(refs, tmp_path / "idf.json")
    for kw in ({"exclude_captions": str(tmp_path / "drop.txt")}, {"cider_idf": str(tmp_path / "idf.json")}):
        whole = score_files(str(ref_path), [str(cand_path)], "bleu4,cider", progress=False, **kw)
        run = score_corpus(str(ref_path), [str(cand_path)], "bleu4,cider", engine="local", num_shards=3,
                           exclude_caption_ids=excluded if "exclude_captions" in kw else (),
                           cider_idf=idf if "cider_idf" in kw else None)
        pd.testing.assert_frame_equal(run.report.per_caption, whole.per_caption, check_exact=True)
        pd.testing.assert_frame_equal(run.report.corpus, whole.corpus, check_exact=True)
        assert run.report.signatures == whole.signatures
