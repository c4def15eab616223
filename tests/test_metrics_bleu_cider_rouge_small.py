"""Hand-computed cases, pycocoevalcap parity on edge cases (no Java: pycoco scorers on capeval tokens),
robustness characters, fixed CIDEr idf and metric names."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest

from capeval.errors import InputError, MetricUnavailable
from capeval.metrics import build_cider_idf, compute_metric, compute_metric_many, parse_metric_names
from capeval.metrics.cider import load_cider_idf
from capeval.text.tokenize import tokenize_many


def _scores(name: str, cands: list[str], refs: list[list[str]], **kw: object) -> dict[str, object]:
    return {r.name: r for r in compute_metric(name, cands, refs, **kw)}


def test_bleu4_of_a_three_word_exact_match_is_pycocos_epsilon_value() -> None:
    r = _scores("bleu", ["a red bus"], [["a red bus"]])
    assert r["bleu1"].per_item[0] == pytest.approx(1.0, abs=1e-9)
    assert r["bleu4"].per_item[0] == pytest.approx((1e-15 / 1e-9) ** 0.25, rel=1e-6)  # 0.0316


def test_bleu_closest_reference_length_ties_toward_shorter() -> None:
    # candidate length 4; references of length 3 and 5 are equally close -> 3 is used -> no brevity penalty
    r = _scores("bleu1", ["a b c d"], [["a b c", "a b c d e"]])
    assert list(r) == ["bleu1"]
    assert r["bleu1"].per_item[0] == pytest.approx(1.0, abs=1e-9)
    assert r["bleu1"].corpus == pytest.approx(1.0, abs=1e-9)


def test_bleu_brevity_penalty_by_hand() -> None:
    r = _scores("bleu1", ["a b"], [["a b c d"]])
    assert r["bleu1"].per_item[0] == pytest.approx(math.exp(1 - 4 / 2), rel=1e-9)


def test_rouge_l_by_hand() -> None:
    r = _scores("rouge-l", ["a b c d"], [["a c d e f", "z"]])
    p, rc = 3 / 4, 3 / 5
    assert r["rouge"].per_item[0] == pytest.approx((1 + 1.44) * p * rc / (rc + 1.44 * p), abs=1e-12)


def test_cider_d_of_one_image_with_eval_refs_is_zero_like_pycoco() -> None:
    r = _scores("cider", ["a dog on a mat"], [["a dog on a mat", "a dog lying on a rug"]])
    assert r["cider"].per_item[0] == 0.0
    assert "df:eval-refs(n=1)" in str(r["cider"].signature)


def _pycoco(cands: list[str], refs: list[list[str]]) -> dict[str, object]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: [" ".join(t) for t in tokenize_many(rs)] for i, rs in enumerate(refs)}
    res = {i: [" ".join(tokenize_many([c])[0])] for i, c in enumerate(cands)}
    with contextlib.redirect_stdout(io.StringIO()):
        return {"bleu": Bleu(4).compute_score(gts, res), "cider": Cider().compute_score(gts, res),
                "rouge": Rouge().compute_score(gts, res)}


EDGE_CANDS = ["", "a dog", "a dog on a mat", "dog dog dog dog dog", "(a) cat's toy!!!", "a", "...", "a big red bus"]
EDGE_REFS = [["a dog sits", "the dog"], ["a dog", "a cat on a mat", ""], ["a dog on the mat", "one dog"],
             ["a dog", "dogs"], ["a cat's toy", "the (cat) toy"], ["a", "b"], ["nothing here", "x"],
             ["a red bus", "the big red bus", "a bus"]]


def test_edge_cases_match_pycoco_scorers_including_empty_candidates() -> None:
    py = _pycoco(EDGE_CANDS, EDGE_REFS)
    mine = {r.name: r for r in compute_metric_many("bleu,cider,rouge", EDGE_CANDS, EDGE_REFS)}
    (b, b_per), (_c, c_per), (_r, r_per) = py["bleu"], py["cider"], py["rouge"]
    for k in range(4):
        assert mine[f"bleu{k + 1}"].corpus == pytest.approx(b[k], abs=1e-12)
        np.testing.assert_allclose(mine[f"bleu{k + 1}"].per_item, b_per[k], atol=1e-12, rtol=0)
    np.testing.assert_allclose(mine["cider"].per_item, c_per, atol=1e-9, rtol=0)
    np.testing.assert_allclose(mine["rouge"].per_item, r_per, atol=1e-12, rtol=0)
    assert mine["rouge"].per_item[0] == 0.0 and mine["cider"].per_item[0] == 0.0 and mine["bleu1"].per_item[0] < 1e-6


WEIRD = ["a dog\ron a mat", "a dog\non a mat", "a dog\u2028on a mat", "a dog\x0con a mat", "a dog ||| on a mat",
         "a dog \U0001F436 on a mat", "   ", "\t\n", "a dog\r\n\r\non a mat\u2029"]


@pytest.mark.parametrize("metric", ["bleu", "cider", "rouge"])
def test_line_breaks_emoji_and_bars_neither_misalign_nor_crash(metric: str) -> None:
    refs = [["a dog on a mat", "a dog lying on a mat"]] * len(WEIRD) + [["a cat", "the cat"]]
    cands = WEIRD + ["a cat"]
    res = {r.name: r for r in compute_metric(metric, cands, refs)}
    plain = {r.name: r for r in compute_metric(metric, ["a dog on a mat"] * len(WEIRD) + ["a cat"], refs)}
    for name, r in res.items():
        assert r.per_item.shape == (len(cands),) and np.all(np.isfinite(r.per_item))
        for i, text in enumerate(WEIRD):
            if text.strip() and "|||" not in text:  # same words as the plain caption -> same score
                assert r.per_item[i] == pytest.approx(plain[name].per_item[i], abs=1e-12), (name, text)
        assert r.per_item[-1] == pytest.approx(plain[name].per_item[-1], abs=1e-12)


def test_whitespace_only_references_do_not_crash() -> None:
    res = compute_metric_many("bleu,cider,rouge", ["a cat", "a dog"], [["   ", "a cat"], ["\n", "\u2028"]])
    assert all(np.all(np.isfinite(r.per_item)) for r in res)


def test_fixed_idf_from_the_evaluated_refs_equals_eval_refs_mode(tmp_path) -> None:
    cands = ["a dog on a mat", "a red bus on a street", "two cats sleeping", "a man riding a horse"]
    refs = [["a dog lying on a mat", "a brown dog on a rug"], ["a red bus in the street", "a bus parked"],
            ["two cats asleep on a bed", "cats sleeping"], ["a man rides a horse", "a person on a horse"]]
    path = tmp_path / "df.json"
    idf = build_cider_idf(refs, path, source="tiny")
    assert idf.num_docs == 4 and path.is_file()
    eval_mode = compute_metric("cider", cands, refs)[0]
    fixed = compute_metric("cider", cands, refs, cider_idf=str(path))[0]
    np.testing.assert_allclose(fixed.per_item, eval_mode.per_item, atol=1e-12)
    assert "df:fixed(tiny,n=4," in str(fixed.signature)
    # per-caption scores no longer depend on which images are evaluated; a single image is meaningful
    single = compute_metric("cider", cands[:1], refs[:1], cider_idf=idf)[0]
    assert single.per_item[0] == pytest.approx(fixed.per_item[0], abs=1e-12) and single.per_item[0] > 0
    assert compute_metric("cider", cands[:2], refs[:2])[0].per_item[0] != pytest.approx(eval_mode.per_item[0])


def test_fixed_idf_handles_candidate_ngrams_unseen_in_the_references() -> None:
    idf = build_cider_idf([["zebra stripes everywhere"], ["a dog on a mat"]])
    r = compute_metric("cider", ["zebra stripes everywhere on a dog"], [["a dog on a mat"]], cider_idf=idf)[0]
    assert np.isfinite(r.per_item[0]) and r.per_item[0] > 0


def test_bad_idf_file_is_a_clear_input_error(tmp_path) -> None:
    bad = tmp_path / "df.json"
    bad.write_text('{"df": {}}')
    with pytest.raises(InputError, match="capeval-cider-df"):
        load_cider_idf(str(bad))
    with pytest.raises(InputError, match="not found"):
        load_cider_idf(str(tmp_path / "missing.json"))


def test_metric_names_and_aliases() -> None:
    reqs = parse_metric_names("bleu1, bleu4,cider-d,rouge-l,meteor")
    assert [(r.family, r.keep) for r in reqs] == [("bleu", ("bleu1", "bleu4")), ("cider", None), ("rouge", None),
                                                 ("meteor", None)]
    assert [r.keep for r in parse_metric_names("bleu4,bleu")] == [None]
    with pytest.raises(InputError, match="unknown metric 'blue'"):
        parse_metric_names("blue")
    names = [r.name for r in compute_metric_many("bleu2,bleu4,cider-d", ["a dog"], [["a dog"]])]
    assert names == ["bleu2", "bleu4", "cider"]


def test_missing_metric_module_is_unavailable_not_an_import_error(monkeypatch) -> None:
    from capeval.metrics import registry

    monkeypatch.setitem(registry.METRICS, "spice", "capeval.metrics.no_such_module:Spice")
    with pytest.raises(MetricUnavailable, match="spice"):
        compute_metric("spice", ["a dog"], [["a dog"]])


def test_mismatched_lists_are_input_errors() -> None:
    with pytest.raises(InputError):
        compute_metric("bleu", ["a", "b"], [["a"]])
    with pytest.raises(InputError, match="no reference"):
        compute_metric("cider", ["a"], [[]])
