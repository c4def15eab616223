"""The caption language model (capeval.audit.lm) and the real-word candidates scored with it
(capeval.audit.candidates).

Every error and look-alike below is a real caption of the training data (Flickr8k, PASCAL-50S, or a Karpathy-test
image outside the labelled sets); the fixture checks that it occurs there, then builds a model without those
images, so no example is judged by a model that has read it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from capeval.audit import build_lm
from capeval.audit.candidates import (PRIOR, CandidateIndex, real_word_hits, real_word_hits_batch, sound_key,
                                      topic_evidence)
from capeval.audit.lm import CaptionLM, default_path


def _mirror_or_skip() -> Path:
    root = build_lm._mirror(None)
    needed = ["flickr8k/Flickr8k.token.txt", "pascal50s/cidermatlab_pascal50S.mat",
              "coco-karpathy-test/coco_test.json", "coco-val2017/captions_val2017.json"]
    missing = [p for p in needed if not (root / p).is_file()]
    if missing:
        msg = f"data mirror {root} lacks {', '.join(missing)} (set CAPEVAL_DATA_MIRROR)"
        if os.environ.get("CAPEVAL_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="module")
def shipped() -> CaptionLM:
    return CaptionLM.load()


# ---------------------------------------------------------------- the model itself


@pytest.mark.parametrize("history", [[], ["a"], ["a", "man", "riding"], ["two", "dogs", "play", "in"],
                                     ["zzzq", "of"], ["a", "plate", "of"]])
def test_distribution_over_the_vocabulary_sums_to_one(shipped: CaptionLM, history: list[str]) -> None:
    p = shipped.distribution(history)
    assert p[shipped.bos] == 0.0
    assert abs(p.sum() - 1.0) < 1e-5


def test_logprob_is_the_sum_of_token_logprobs_and_the_end(shipped: CaptionLM) -> None:
    toks = "a man riding a horse on the beach".split()
    lp = shipped.token_logprobs(toks, eos=True)
    assert len(lp) == len(toks) + 1
    assert shipped.logprob(toks) == pytest.approx(sum(lp))
    assert shipped.token_logprobs(toks) == pytest.approx(lp[:-1])
    # a fluent caption is far likelier than its words shuffled
    assert shipped.logprob(toks) > shipped.logprob("beach the a on horse riding man a".split()) + 10


def test_context_logprobs_differ_as_whole_caption_probabilities(shipped: CaptionLM) -> None:
    """Predictions after the window have histories no correction touches, so the window's differences between
    corrections are the differences of the whole captions' ln P (words outside the vocabulary add their ln q)."""
    from capeval.audit.candidates import _Table, context_logprobs

    words = "a dog catching a frisbe in the park".split()
    reps = ["frisbee", "fries", "fris be"]
    got = context_logprobs(shipped, words, 4, reps)
    full = [shipped.logprob(words[:4] + r.split() + words[5:]) for r in reps]
    table = _Table.for_lm(shipped)
    q = [sum(table.oov_logprob(x) for x in r.split() if x not in shipped.index) for r in reps]
    for k in range(1, len(reps)):
        assert got[k] - got[0] == pytest.approx((full[k] + q[k]) - (full[0] + q[0]), abs=1e-9)


def test_hash_lookup_agrees_with_binary_search(shipped: CaptionLM) -> None:
    from capeval.audit.lm import _find

    rng = np.random.default_rng(0)
    for k, keys in shipped.keys.items():
        query = np.concatenate([rng.choice(keys, 500), rng.choice(keys, 500) + np.uint64(1)])
        idx, hit = shipped._hash[k].find(query)
        ref_idx, ref_hit = _find(keys, query)
        assert np.array_equal(hit, ref_hit) and np.array_equal(idx[hit], ref_idx[ref_hit])


def _backoff_logprob(lm: CaptionLM, row: list[int]) -> float:
    """ln P(row[-1] | row[:-1]) one row at a time, straight from the backoff definition (binary search, Python ints):
    the reference the vectorised `logprob_rows` is checked against."""
    n, acc = lm.order, 0.0
    for k in range(n, 1, -1):
        gram = row[n - k:]
        if gram[0] < 0:
            continue  # the history is shorter than k - 1 ids
        key = 0
        for x in gram:
            key = (key << 16) | x
        pos = int(np.searchsorted(lm.keys[k], np.uint64(key)))
        if pos < len(lm.keys[k]) and int(lm.keys[k][pos]) == key:
            return acc + float(lm.logp[k][pos])
        if k == 2:
            acc += float(lm.bow[1][gram[0]])
        else:
            hist = key >> 16
            pos = int(np.searchsorted(lm.keys[k - 1], np.uint64(hist)))
            if pos < len(lm.keys[k - 1]) and int(lm.keys[k - 1][pos]) == hist:
                acc += float(lm.bow[k - 1][pos])
    return acc + float(lm.logp1[row[-1]])


def test_vectorised_scores_equal_the_backoff_definition(shipped: CaptionLM) -> None:
    """Rows of seen and unseen n-grams, short histories (-1 pads after <s>) and <unk>: every score as the definition."""
    rng = np.random.default_rng(1)
    captions = ["a man riding a horse on the beach", "two dogs play in the snow near a fence",
                "a plate of food with broccoli and rice", "zzzq of the kitchen counter"]
    rows = []
    for c in captions:
        ids = [shipped.bos, *shipped.ids(c.split()), shipped.eos]
        rows.extend(shipped.history_rows(ids).tolist())
    rows.extend(([-1] * (shipped.order - 1) + [shipped.bos] + rng.integers(3, len(shipped.vocab), 4).tolist())
                [-shipped.order:] for _ in range(200))
    rows.extend(rng.integers(3, len(shipped.vocab), shipped.order).tolist() for _ in range(200))
    got, order = shipped.logprob_rows(np.array(rows), with_order=True)
    assert got.tolist() == pytest.approx([_backoff_logprob(shipped, r) for r in rows], abs=1e-12)
    assert set(order.tolist()) >= {1, 2, 3}  # the rows exercise several orders


def test_max_logprob_bounds_every_history(shipped: CaptionLM) -> None:
    """`max_logprob[w]` is at least ln P(w | h) for any history: stored n-grams at every order (where it is reached),
    unseen histories that back off (ln backoff weights above 0 included) and short ones after <s>; the candidate
    scorer drops jobs on this bound, so a violation would lose real-word findings."""
    bound = shipped.max_logprob
    rng = np.random.default_rng(3)
    rows = [np.concatenate([rng.integers(3, len(shipped.vocab), shipped.order - 1), [w]]).tolist()
            for w in rng.integers(3, len(shipped.vocab), 300)]
    rows += [[-1] * (shipped.order - 2) + [shipped.bos, int(w)] for w in rng.integers(3, len(shipped.vocab), 100)]
    for k in range(2, shipped.order + 1):  # every stored n-gram of order k, as a row (pads before it)
        keys = shipped.keys[k][rng.integers(0, len(shipped.keys[k]), 100)]
        ids = [[int(key >> np.uint64(16 * j)) & 0xFFFF for j in range(k - 1, -1, -1)] for key in keys]
        rows += [[-1] * (shipped.order - k) + g for g in ids if 0xFFFF not in g]
    got = shipped.logprob_rows(np.array(rows))
    words = np.array([r[-1] for r in rows])
    assert (bound[words] >= got - 1e-12).all()
    assert np.isclose(bound[words], got).any()  # reached for some: a bound, not a constant
    assert bound.shape == shipped.logp1.shape and (bound >= shipped.logp1).all()


def test_a_substituted_key_scores_as_the_substituted_row(shipped: CaptionLM) -> None:
    """`with_id_at` makes the key of a row with one id replaced (the word itself or one of its history), pads kept;
    scored as keys, such rows equal the definition."""
    from capeval.audit.lm import pack_rows, with_id_at

    ids = [shipped.bos, *shipped.ids("a man riding a horse on the beach".split()), shipped.eos]
    rows = shipped.history_rows(ids)
    rng = np.random.default_rng(2)
    # row p predicts ids[p + 1] from the min(p + 1, order - 1) ids before it: any of those, or the word, is replaced
    back = np.array([rng.integers(0, min(p + 1, shipped.order - 1) + 1) for p in range(len(rows))])
    new = rng.integers(3, len(shipped.vocab), len(rows))
    changed = rows.copy()
    changed[np.arange(len(rows)), shipped.order - 1 - back] = new
    keys = with_id_at(pack_rows(rows), back, new)
    assert (rows[np.arange(len(rows)), shipped.order - 1 - back] >= 0).all()
    assert np.array_equal(keys, pack_rows(changed))
    assert shipped.logprob_keys(keys).tolist() == pytest.approx(
        [_backoff_logprob(shipped, r) for r in changed.tolist()], abs=1e-12)


def test_words_outside_the_vocabulary_are_unk(shipped: CaptionLM) -> None:
    assert "zzzq" not in shipped
    assert shipped.ids(["zzzq", "man"]) == [shipped.unk, shipped.index["man"]]


@pytest.fixture(scope="module")
def corpus() -> build_lm.Corpus:
    _mirror_or_skip()
    return build_lm.load_corpus()


def test_rebuild_equals_the_shipped_artefact(corpus: build_lm.Corpus, tmp_path: Path) -> None:
    arrays = build_lm.build(corpus=corpus)
    with np.load(default_path(), allow_pickle=False) as z:
        assert sorted(z.files) == sorted(arrays)
        for name in z.files:
            assert np.array_equal(z[name], arrays[name]), f"{name} differs: rebuild with " \
                "`python -m capeval.audit.build_lm --out capeval/audit/data/lm.npz`"
    build_lm.save(arrays, tmp_path / "lm.npz")
    assert (tmp_path / "lm.npz").read_bytes() == default_path().read_bytes()


def test_training_text_excludes_val2017_and_labelled_images(corpus: build_lm.Corpus) -> None:
    import json

    root = build_lm._mirror(None)
    coco = {int(g[2:]) for g in corpus.groups if g.startswith("c:")}
    val2017 = {im["id"] for im in json.loads((root / "coco-val2017/captions_val2017.json").read_text())["images"]}
    assert coco and not coco & val2017
    assert not coco & build_lm.labelled_image_ids()


# ---------------------------------------------------------------- candidates and scoring

# (caption, original word, expected suggestion, mechanism); None = a correct look-alike: nothing may be flagged
CASES = [
    ("a dog lies on it's back on a bed", "it's", "its", "apostrophe"),  # PASCAL-50S 2008_005798
    ("it's a picture of an airport", "it's", None, None),  # PASCAL-50S 2008_008043
    ("a plane that s about to land", "that s", "that's", "apostrophe"),  # PASCAL-50S 2008_007504 (merge)
    ("a young woman hugs a young man who's wearing a pink costume", "who's", None, None),  # Flickr8k 1142283988
    ("a dog shakes its head near the shore a red ball next to it", "its", None, None),  # Flickr8k 1012212859
    ("a man and a woman walk their dogs on leashes", "their", None, None),  # Flickr8k 181157221
    ("a young boy in a stripped shirt running down a sand dune", "stripped", "striped", "keyboard"),  # Flickr8k
    ("a man stands between to large sculptures on a field", "to", "two", "edit1"),  # Flickr8k 2245916742
    ("a dog runs through a creek next to large rocks", "to", None, None),  # Flickr8k 2307451605
    ("a man is posing if front of a train", "if", "in", "edit1"),  # PASCAL-50S 2008_008641
    ("an asian girl is smiling whilst standing in font of some green bushes", "font", "front", "edit1"),  # Flickr8k
    ("a big tan dog running threw the shallow water with a stick in his mouth", "threw", "through", "sound"),
    ("the man threw his paddle in the air and fell out of the boat and into the water", "threw", None, None),
    # Flickr8k 3594566537
    ("a clear chain in front of a bookcase", "chain", "chair", "edit1"),  # PASCAL-50S 2008_008589
    ("a dog walking across the desert", "desert", None, None),  # Flickr8k 2090997177
    ("a boy holds a goat in his arms", "goat", None, None),  # Flickr8k 2369840118
]
GOOSE = "a good stands in the grass next to the water"  # Karpathy test 458560; its siblings say goose, duck, bird


@pytest.fixture(scope="module")
def held_out(corpus: build_lm.Corpus) -> tuple[CaptionLM, dict[str, list[list[str]]]]:
    """A model built without the images of CASES, and each case's sibling captions (checks each case is real)."""
    group_of = {" ".join(s): g for s, g in zip(corpus.sentences, corpus.groups)}
    captions = [c for c, *_ in CASES] + [GOOSE]
    missing = [c for c in captions if c not in group_of]
    assert not missing, f"examples not found in the training captions: {missing}"
    groups = {group_of[c] for c in captions}
    siblings = {c: [s for s, g in zip(corpus.sentences, corpus.groups) if g == group_of[c] and " ".join(s) != c][:4]
                for c in captions}
    return CaptionLM(build_lm.build(corpus=corpus, exclude_images=groups)), siblings


@pytest.mark.parametrize(("caption", "original", "suggestion", "mechanism"), CASES, ids=[c[0][:40] for c in CASES])
def test_real_word_error_or_correct_look_alike(held_out, caption, original, suggestion, mechanism) -> None:
    lm, siblings = held_out
    hits = real_word_hits(caption.split(), siblings[caption], lm, threshold=0.0)
    at = [h for h in hits if h.original == original]
    if suggestion is None:
        assert not at, f"false alarm: {at}"
    else:
        assert [(h.suggestion, h.mechanism) for h in at] == [(suggestion, mechanism)], hits
        hit = at[0]
        assert hit.log_ratio == pytest.approx(hit.lm_log_ratio + hit.sibling_log_ratio + hit.topic_log_ratio
                                              + PRIOR[mechanism])


def test_topic_evidence_from_the_rest_of_the_caption(shipped: CaptionLM) -> None:
    """Words beyond the n-gram window favour the word that goes with them (the shipped model never saw these
    labelled dev captions): "streamers flying in a clear blue sky" favour "kite" over "kit", "kitchen" and
    "dishwasher" favour "stove" over "dove"; in "a dog walking across the desert" nothing favours "dessert"; an
    apostrophe slip gets none (the same word either way)."""
    kit = "a blue and pink kit with streamers flying in a clear blue sky".split()  # Karpathy test 82293#1 (dev2)
    assert topic_evidence(shipped, kit, 4, 5, "kite", "edit1") > 1
    dove = "a kitchen area with dove microwave and dishwasher".split()  # Karpathy test 539423#1 (dev2)
    assert topic_evidence(shipped, dove, 4, 5, "stove", "edit2") > 1
    desert = "a dog walking across the desert".split()  # Flickr8k 2090997177
    assert topic_evidence(shipped, desert, 5, 6, "dessert", "edit1") < 0
    assert topic_evidence(shipped, kit, 4, 5, "kit's", "apostrophe") == 0


def test_sibling_evidence_for_and_against(held_out) -> None:
    """The siblings of "a good stands ..." say goose: they raise the odds of the change; a sibling using the
    written word lowers them."""
    lm, siblings = held_out

    def goose(sibs: list[list[str]]) -> float:
        hits = real_word_hits(GOOSE.split(), sibs, lm, threshold=-100)
        return max((h.log_ratio for h in hits if h.suggestion == "goose"), default=-100)

    alone, with_siblings = goose([]), goose(siblings[GOOSE])
    assert with_siblings > alone + 3
    assert goose([*siblings[GOOSE], "a good bird".split()]) < with_siblings - 1


def test_sound_key_merges_spellings_of_one_sound() -> None:
    assert sound_key("threw") == sound_key("through")
    assert sound_key("their") == sound_key("there")
    assert sound_key("whose") == sound_key("who's")
    assert sound_key("baby") != sound_key("boy")


def test_inflections_are_no_candidates(shipped: CaptionLM) -> None:
    """dog/dogs, woman/women, sit/sat are grammar (agreement), not real-word slips; driver/driver's is."""
    index = CandidateIndex.for_lm(shipped)
    assert "dogs" not in dict(index.candidates("dog"))
    assert "women" not in dict(index.candidates("woman"))
    assert "an" not in dict(index.candidates("a"))
    assert dict(index.candidates("it's")).get("its") == "apostrophe"


def test_a_contraction_is_judged_in_its_full_form(held_out) -> None:
    """"it's" is compared as "it is": the possessive reading wins in "lies on it's back", the contraction in "it's a
    picture" (the model's own estimate of "it's" is not used, since captions often misuse it)."""
    lm, _ = held_out
    bad = real_word_hits("a dog lies on it's back on a bed".split(), [], lm, threshold=-100)
    assert [h.suggestion for h in bad if h.original == "it's"] == ["its"]
    assert max(h.log_ratio for h in bad if h.original == "it's") > 0
    good = real_word_hits("it's a picture of an airport".split(), [], lm, threshold=-100)
    assert all(h.log_ratio < -5 for h in good if h.original == "it's")


def test_batch_equals_one_caption_at_a_time(shipped: CaptionLM) -> None:
    """The result for a caption does not depend on the other captions of the batch (audits are sharded)."""
    captions = [
        "a young boy in a stripped shirt running down a sand dune".split(),
        [],
        "a man is posing if front of a train".split(),
        "2 dogs zzzq in the park".split(),
        "an asian girl is smiling whilst standing in font of some green bushes".split(),
    ]
    siblings = [[["a", "boy", "in", "a", "striped", "shirt"]], [], [], [["two", "dogs"]], []]
    batch = real_word_hits_batch(captions, siblings, shipped, threshold=-5.0)
    single = [real_word_hits(c, s, shipped, threshold=-5.0) for c, s in zip(captions, siblings)]
    assert batch == single
    assert batch[1] == () and real_word_hits_batch([], [], shipped) == []
    assert any(h.suggestion == "front" for h in batch[4])


def test_mismatched_siblings_are_an_error(shipped: CaptionLM) -> None:
    with pytest.raises(ValueError, match="sibling"):
        real_word_hits_batch([["a", "dog"]], [], shipped)


def test_preload_builds_the_caches(shipped: CaptionLM) -> None:
    from capeval.audit.candidates import _Table, preload

    preload(shipped)
    table = _Table.for_lm(shipped)
    assert table._oov_index is not None and _Table.for_lm(shipped) is table
