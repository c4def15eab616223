"""The two-pass audit: corpus summaries of shards merge exactly, and auditing shards against the merged summary gives
the findings of one audit of the whole corpus (contract 3 of the scale-out work)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from capeval.audit import audit_captions, audit_images
from capeval.audit.summary import CorpusSummary
from capeval.errors import CapevalError
from capeval.records import CaptionSet


@pytest.fixture(scope="module")
def corpus(shared_datasets: Path) -> CaptionSet:
    """The captions of the first 1,000 Karpathy-test images (about 5,000 real references)."""
    from capeval.io import load_captions

    refs = load_captions(shared_datasets / "coco-karpathy-test" / "coco_test.json", allow_empty=True)
    keep = set(list(refs.by_image())[:1000])
    return CaptionSet([c for c in refs.captions if c.image_id in keep], name="karpathy-1000")


def _shards(captions: CaptionSet, k: int) -> list[CaptionSet]:
    """Split by image, images dealt round-robin (so shards interleave in corpus order)."""
    order = {img: i % k for i, img in enumerate(captions.by_image())}
    return [CaptionSet([c for c in captions.captions if order[c.image_id] == s], name=f"shard{s}") for s in range(k)]


def test_sharded_audit_equals_whole_audit(corpus: CaptionSet):
    whole = audit_captions(corpus, min_confidence=0.0, progress=False)
    shards = _shards(corpus, 3)
    summaries = [CorpusSummary.from_captions(s) for s in shards]
    merged = summaries[2].merge(summaries[0]).merge(summaries[1])
    found = []
    for s in shards:
        found.extend(audit_images(s, merged, min_confidence=0.0, progress=False).findings)
    order = {c.caption_id: i for i, c in enumerate(corpus.captions)}

    def key(f):
        return order[f.caption_id], f.start, f.end, f.category, f.rule

    assert sorted(found, key=key) == sorted(whole.findings, key=key)
    assert len(whole.findings) > 50  # a real corpus has findings of several kinds
    assert {f.category for f in whole.findings} >= {"spelling", "grammar", "low_detail"}


def test_merge_is_exact_associative_and_commutative(corpus: CaptionSet):
    a, b, c = (CorpusSummary.from_captions(s) for s in _shards(corpus, 3))
    whole = CorpusSummary.from_captions(corpus)
    for merged in (a.merge(b).merge(c), a.merge(b.merge(c)), c.merge(a).merge(b)):
        assert merged == whole
    assert pickle.loads(pickle.dumps(whole)) == whole
    assert whole.n_captions == len(corpus) and whole.n_images == 1000


def test_a_summary_without_cider_statistics_is_the_same_counts_without_them(corpus: CaptionSet):
    from capeval.audit import detail
    from capeval.engines.audit import SummaryMerger

    shards = _shards(corpus, 3)
    full = CorpusSummary.from_captions(corpus)
    lean = [CorpusSummary.from_captions(s, cider=False) for s in shards]
    merger = SummaryMerger()
    for s in lean:
        merger.add(s)
    for merged in (lean[0].merge(lean[1]).merge(lean[2]), merger.merged):
        assert not merged.has_cider and merged.cider_df is None and merged.cider_docs is None
        assert merged.unigrams == full.unigrams and merged.trigrams == full.trigrams
        assert merged.cooccurrence == full.cooccurrence and merged.image_ids == full.image_ids
    assert not CorpusSummary.from_captions(shards[0]).merge(lean[1]).has_cider  # mixing loses them, never half
    with pytest.raises(CapevalError, match="no CIDEr-D statistics"):
        detail.loo_cider(corpus, lean[0].merge(lean[1]).merge(lean[2]))


def test_the_default_audit_leaves_cider_statistics_out_only_when_no_shown_rule_reads_them(corpus: CaptionSet):
    from capeval.audit.calibration import load_calibration
    from capeval.audit.finding import DEFAULT_MIN_CONFIDENCE
    from capeval.audit.run import needs_loo_cider

    cal = load_calibration()
    best = max(cal.ceiling(r, r) for r in ("low_detail", "off_consensus"))
    assert needs_loo_cider(0.0) and needs_loo_cider(best) and not needs_loo_cider(min(1.0, best + 1e-9))
    assert needs_loo_cider(DEFAULT_MIN_CONFIDENCE) == (best >= DEFAULT_MIN_CONFIDENCE)
    # at the default, the audit on the lean summary equals the audit on the full one
    full = audit_images(corpus, CorpusSummary.from_captions(corpus), progress=False)
    assert audit_captions(corpus, progress=False).findings == full.findings


def test_merge_refuses_shards_that_share_an_image(corpus: CaptionSet):
    s = CorpusSummary.from_captions(_shards(corpus, 2)[0])
    with pytest.raises(CapevalError, match="share"):
        s.merge(s)


def test_audit_images_needs_the_images_in_the_summary(corpus: CaptionSet):
    a, b = _shards(corpus, 2)
    with pytest.raises(CapevalError, match="not in the corpus summary"):
        audit_images(b, CorpusSummary.from_captions(a), progress=False)


def test_the_audit_leaves_the_garbage_collector_alone(monkeypatch) -> None:
    """No process-wide state: the cyclic GC stays enabled in both passes (an audit used to pause it, which is the
    caller's business, not a library's)."""
    import gc

    import capeval.audit.rules as rules_module

    seen: list[tuple[str, bool]] = []
    summarise = CorpusSummary.from_captions.__func__

    def watched_summary(cls, captions, **options):
        seen.append(("summary", gc.isenabled()))
        return summarise(cls, captions, **options)

    def watch(ann, ctx):
        seen.append(("rule", gc.isenabled()))
        return []

    real_rules = rules_module.all_rules
    monkeypatch.setattr(CorpusSummary, "from_captions", classmethod(watched_summary))
    monkeypatch.setattr(rules_module, "all_rules",
                        lambda: [*real_rules(), rules_module.Rule("test.watch", "grammar", watch)])
    caps = CaptionSet.from_mapping({"1": ["a dog runs on the beach", "a dog on a beach", "the dog is running by the sea"]})
    assert gc.isenabled()
    audit_captions(caps, progress=False)
    assert gc.isenabled()
    assert {k for k, _ in seen} == {"summary", "rule"} and all(on for _, on in seen), seen
