"""sacreBLEU: identical to direct sacrebleu calls (corpus and sentence), variable reference counts, signature."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sacrebleu

import capeval

from capeval.errors import InputError
from capeval.metrics.sacrebleu_bleu import SacreBLEU, reference_streams


def _karpathy(root, n):
    refs = json.loads((root / "coco-karpathy-test" / "coco_test.json").read_text())[:n]
    system = json.loads((root / "coco-system-outputs" / "blip2_results_xe.json").read_text())
    ids = [str(int(e["image"].rsplit("_", 1)[1].split(".")[0])) for e in refs]
    return [system[i] for i in ids], [list(e["caption"]) for e in refs]


def test_sacrebleu_equals_direct_sacrebleu_on_karpathy(shared_datasets) -> None:
    cands, refs = _karpathy(shared_datasets, 500)
    assert len({len(r) for r in refs}) > 1  # Karpathy has 5 to 7 references per image
    (res,) = SacreBLEU().score(cands, refs)
    width = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    direct = sacrebleu.corpus_bleu(cands, streams)
    assert res.corpus == direct.score
    assert 10 < res.corpus < 60
    expected = [sacrebleu.sentence_bleu(c, r).score for c, r in zip(cands, refs)]
    assert np.array_equal(res.per_item, np.array(expected))
    assert res.details["sacrebleu"] == str(direct)


def test_sacrebleu_signature_embeds_sacrebleus_own() -> None:
    (res,) = SacreBLEU().score(["a cat sits on the mat", "a dog"], [["a cat is on the mat", "cat on mat"], ["the dog"]])
    own = f"nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:{sacrebleu.__version__}"
    assert res.signature.format() == f"sacrebleu|{own}|sent:exp+eff|scale:100|capeval:{capeval.__version__}"
    (res,) = SacreBLEU(lowercase=True, tokenize="intl").score(["A cat"], [["a cat"]])
    assert "|nrefs:1|case:lc|eff:no|tok:intl|" in res.signature.format()
    assert res.corpus == sacrebleu.corpus_bleu(["A cat"], [["a cat"]], lowercase=True, tokenize="intl").score


def test_variable_reference_counts_are_padded_with_none() -> None:
    assert reference_streams([["a", "b", "c"], ["d"]]) == [["a", "d"], ["b", None], ["c", None]]


def test_sacrebleu_empty_candidate_scores_zero_and_counts_in_corpus() -> None:
    cands = ["a man riding a horse on a beach", ""]
    refs = [["a man rides a horse on the beach"], ["a bowl of fruit"]]
    (res,) = SacreBLEU().score(cands, refs)
    assert res.per_item[1] == 0.0
    assert res.corpus == sacrebleu.corpus_bleu(cands, [[r[0] for r in refs]]).score


def test_sacrebleu_rejects_mismatched_inputs() -> None:
    with pytest.raises(InputError, match="sacreBLEU: expected one reference list per candidate; got 2 candidates and 1 reference lists"):
        SacreBLEU().score(["a", "b"], [["a"]])
    with pytest.raises(InputError, match="sacreBLEU: candidate 0 has no reference list"):
        SacreBLEU().score(["a"], [[]])
