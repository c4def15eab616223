"""Exactness against pycocoevalcap on the real COCO Karpathy test set with four real systems' captions.

pycocoevalcap runs as its users run it (Java PTBTokenizer, then Bleu(4), Cider(), Rouge()); capeval runs end to end on
raw text with its Java-free tokenizer. Java is started once for the whole session (all references and candidates in
one PTBTokenizer call).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from capeval.metrics import compute_metric_many

SYSTEMS = {
    "m2_transformer": "m2_transformer.json",
    "blip2": "blip2_results_xe.json",
    "llava_briefly": "llava-1.5-7b_briefly.json",
    "llava_default": "llava-1.5-7b_default.json",
}

pytestmark = [
    pytest.mark.java,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None, reason="needs Java for pycocoevalcap's PTBTokenizer"),
]


@pytest.fixture(scope="session")
def coco_eval(shared_datasets: Path) -> dict[str, object]:
    """Raw captions, pycocoevalcap's tokens (one JVM for everything) and pycocoevalcap's scores per system."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs: dict[str, list[str]] = {}
    for e in json.loads((shared_datasets / "coco-karpathy-test" / "coco_test.json").read_text()):
        refs[str(int(e["image"].rsplit("_", 1)[-1].split(".")[0]))] = list(e["caption"])
    cands: dict[str, dict[str, str]] = {}
    for name, fname in SYSTEMS.items():
        d = json.loads((shared_datasets / "coco-system-outputs" / fname).read_text())
        if isinstance(d, list):
            d = {k: v for e in d for k, v in e.items()}
        cands[name] = {k: d[k] for k in refs}
    everything = {f"ref|{k}": [{"caption": c} for c in v] for k, v in refs.items()}
    for name, d in cands.items():
        everything.update({f"{name}|{k}": [{"caption": v}] for k, v in d.items()})
    with contextlib.redirect_stdout(io.StringIO()):
        tokens = PTBTokenizer().tokenize(everything)
    gts = {k: tokens[f"ref|{k}"] for k in refs}
    pycoco: dict[str, dict[str, object]] = {}
    for name in SYSTEMS:
        res = {k: tokens[f"{name}|{k}"] for k in refs}
        with contextlib.redirect_stdout(io.StringIO()):
            b, b_per = Bleu(4).compute_score(gts, res)
            c, c_per = Cider().compute_score(gts, res)
            r, r_per = Rouge().compute_score(gts, res)
        pycoco[name] = {"bleu": (b, [np.asarray(x) for x in b_per]), "cider": (c, np.asarray(c_per)),
                        "rouge": (r, np.asarray(r_per))}
    return {"refs": refs, "cands": cands, "pycoco": pycoco, "ids": list(gts)}


@pytest.fixture(scope="session")
def native_scores(coco_eval: dict[str, object]) -> dict[str, dict[str, object]]:
    ids = coco_eval["ids"]
    refs = coco_eval["refs"]
    out = {}
    for name, d in coco_eval["cands"].items():  # type: ignore[union-attr]
        results = compute_metric_many("bleu,cider,rouge", [d[i] for i in ids], [refs[i] for i in ids])  # type: ignore[index]
        out[name] = {r.name: r for r in results}
    return out


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_bleu_matches_pycocoevalcap_per_caption_and_corpus(system: str, coco_eval, native_scores) -> None:
    corpus, per = coco_eval["pycoco"][system]["bleu"]
    for k in range(4):
        mine = native_scores[system][f"bleu{k + 1}"]
        assert abs(mine.corpus - corpus[k]) < 1e-9
        assert np.max(np.abs(mine.per_item - per[k])) < 1e-9


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_cider_d_matches_pycocoevalcap_per_caption_and_corpus(system: str, coco_eval, native_scores) -> None:
    corpus, per = coco_eval["pycoco"][system]["cider"]
    mine = native_scores[system]["cider"]
    assert abs(mine.corpus - corpus) < 1e-6
    assert np.max(np.abs(mine.per_item - per)) < 1e-6


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_rouge_l_matches_pycocoevalcap_per_caption_and_corpus(system: str, coco_eval, native_scores) -> None:
    corpus, per = coco_eval["pycoco"][system]["rouge"]
    mine = native_scores[system]["rouge"]
    assert abs(mine.corpus - corpus) < 1e-9
    assert np.max(np.abs(mine.per_item - per)) < 1e-9


@pytest.mark.parametrize(("system", "bleu4", "cider"), [("m2_transformer", 39.1, 131.2), ("blip2", 43.8, 146.0)])
def test_published_coco_figures_to_the_decimal(system: str, bleu4: float, cider: float, native_scores) -> None:
    assert round(native_scores[system]["bleu4"].corpus * 100, 1) == bleu4
    assert round(native_scores[system]["cider"].corpus * 100, 1) == cider
