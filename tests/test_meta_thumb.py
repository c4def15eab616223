"""Acceptance: THumB 1.0 through `capeval correlate`, against pycocoevalcap run per system in the same test (its Java
PTBTokenizer + Bleu/Cider/Rouge, each system evaluated on its own as its authors ran it), against `capeval score` on
each system's captions, and against the published figures in ../shared/datasets/README.md."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from capeval.meta.correlate import correlate

PUBLISHED_TAU_B = {"bleu4": 0.0743, "cider": 0.1531, "rouge": 0.1249}
PUBLISHED_CORPUS = {"Up-Down": (29.3, 110.7, 52.2), "Unified-VLP": (32.1, 128.5, 56.0), "VinVL-base": (33.0, 138.4, 56.4),
                    "VinVL-large": (34.0, 141.8, 56.9), "Human": (28.5, 111.5, 50.9)}


def _thumb(root: Path) -> tuple[list[dict], dict[str, list[str]]]:
    rows = [json.loads(x) for x in (root / "thumb" / "mscoco_THumB-1.0.jsonl").read_text().splitlines() if x.strip()]
    refs = {}
    for line in (root / "thumb" / "mscoco_references.json").read_text().splitlines():
        if line.strip():
            e = json.loads(line)
            refs[e["seg_id"]] = e["refs"]
    return rows, refs


@pytest.fixture(scope="module")
def result(shared_datasets: Path):
    return correlate("thumb", metrics=["bleu4", "cider", "rouge"], level="system", statistics=["tau_b", "pearson"],
                     bootstrap=200, system_tests=2000)


@pytest.mark.slow
@pytest.mark.java
def test_caption_level_tau_b_equals_pycocoevalcap_run_per_system(shared_datasets: Path, result) -> None:
    if shutil.which("java") is None:
        pytest.skip("pycocoevalcap's PTBTokenizer needs Java")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    rows, refs = _thumb(shared_datasets)
    everything = {f"ref|{k}": [{"caption": c} for c in v] for k, v in refs.items()}
    everything.update({f"{r['SYS']}|{r['seg_id']}": [{"caption": r["hyp"]}] for r in rows})
    with contextlib.redirect_stdout(io.StringIO()):
        tokens = PTBTokenizer().tokenize(everything)
    ours = result.scores.set_index(["system", "image_id"])
    theirs: dict[str, list[float]] = {"bleu4": [], "cider": [], "rouge": []}
    mine: dict[str, list[float]] = {"bleu4": [], "cider": [], "rouge": []}
    human: list[float] = []
    for system in dict.fromkeys(r["SYS"] for r in rows):
        ids = [r["seg_id"] for r in rows if r["SYS"] == system]
        gts = {k: tokens[f"ref|{k}"] for k in ids}
        res = {k: tokens[f"{system}|{k}"] for k in ids}
        with contextlib.redirect_stdout(io.StringIO()):
            _, b = Bleu(4).compute_score(gts, res)
            _, c = Cider().compute_score(gts, res)
            _, r_ = Rouge().compute_score(gts, res)
        theirs["bleu4"] += list(b[3])
        theirs["cider"] += list(c)
        theirs["rouge"] += list(r_)
        for m in mine:
            mine[m] += [float(ours.loc[(system, k), m]) for k in ids]
        human += [float(r["human_score"]) for r in rows if r["SYS"] == system]
    t = result.table[(result.table.level == "caption") & (result.table.statistic == "tau_b")].set_index("metric")
    for m, published in PUBLISHED_TAU_B.items():
        np.testing.assert_allclose(mine[m], theirs[m], rtol=0, atol=1e-6, err_msg=m)
        pycoco_tau = sps.kendalltau(theirs[m], human, variant="b").statistic
        assert t.loc[m, "value"] == pytest.approx(pycoco_tau, abs=1e-4), m
        assert t.loc[m, "value"] == pytest.approx(published, abs=1e-4), m


@pytest.mark.slow
def test_system_scores_are_capeval_score_corpus_scores(shared_datasets: Path, tmp_path: Path, result) -> None:
    from capeval.metrics.engine import score_files

    rows, refs = _thumb(shared_datasets)
    refs_file = tmp_path / "refs.json"
    refs_file.write_text(json.dumps(refs))
    systems = result.systems.set_index("system")
    for system in PUBLISHED_CORPUS:
        cand = tmp_path / f"{system}.json"
        cand.write_text(json.dumps({r["seg_id"]: r["hyp"] for r in rows if r["SYS"] == system}))
        corpus = score_files(str(refs_file), [str(cand)], ["bleu4", "cider", "rouge"], progress=False).corpus.iloc[0]
        for m in ("bleu4", "cider", "rouge"):
            assert systems.loc[system, m] == pytest.approx(corpus[m], abs=1e-9), (system, m)
        got = tuple(round(100 * systems.loc[system, m], 1) for m in ("bleu4", "cider", "rouge"))
        assert got == PUBLISHED_CORPUS[system]
    assert systems["human"].round(3).to_dict() == {"Up-Down": 3.884, "Unified-VLP": 4.058, "VinVL-base": 4.208,
                                                   "VinVL-large": 4.248, "Human": 4.564}


@pytest.mark.slow
def test_cider_verdict_human_vs_up_down_follows_the_standard_scores(result) -> None:
    v = result.verdicts
    row = v[(v.metric == "cider") & (v.system_x == "Up-Down") & (v.system_y == "Human")].iloc[0]
    assert row["metric_delta"] < 0 and row["agree"]  # Human 111.5 > Up-Down 110.7, as pycocoevalcap says
    assert row["verdict"].startswith("CIDEr-D prefers Human over Up-Down by +0.8 (95% CI [")
    assert "people prefer Human over Up-Down by 0.68 points" in row["verdict"]
    bleu = v[(v.metric == "bleu4") & (v.system_x == "Up-Down") & (v.system_y == "Human")].iloc[0]
    assert bleu["verdict"].startswith("BLEU-4 prefers Up-Down over Human by +0.8") and not bleu["agree"]
    assert bleu["human_p"] < 0.001 and bleu["metric_p"] > 0.05
    # every pair once per metric, both systems named
    assert len(v) == 10 * 3 and all(x in s and y in s for x, y, s in zip(v.system_x, v.system_y, v.verdict))


@pytest.mark.slow
def test_system_level_statistics_have_bootstrap_cis_and_the_unit_is_in_every_signature(result) -> None:
    t = result.system_correlation
    assert set(t.statistic) == {"tau_b", "pearson"} and (t.n == 5).all()
    assert t[["value", "ci_low", "ci_high"]].notna().all().all()
    assert (t.ci_low <= t.value + 1e-12).all() and (t.value <= t.ci_high + 1e-12).all()
    s = result.systems.set_index("system")
    assert (s["cider_ci_low"] < s["cider"]).all() and (s["cider"] < s["cider_ci_high"]).all()
    assert s.loc["Human", "human_rank"] == 1 and s.loc["Human", "bleu4_rank"] == 5 and s.loc["Human", "cider_rank"] == 4
    assert all(sig.endswith("|unit:per-system") for sig in result.signatures.values())
    assert result.unit == "per-system" and any("scoring unit: per-system" in p for p in result.protocol)


def test_thumb_criteria_are_selectable(shared_datasets: Path) -> None:
    from capeval.errors import InputError
    from capeval.meta.judgments import load_thumb

    j = load_thumb(shared_datasets / "thumb" / "mscoco_THumB-1.0.jsonl", criterion="R")
    assert j.name == "thumb[R]" and str(j.scale) == "1-5" and len(j) == 2500 and j.unit == "per-system"
    assert len(j.references) == 2000 and j.references[0].caption_id.endswith("#0")
    with pytest.raises(InputError, match="unknown THumB criterion 'wow'"):
        load_thumb(shared_datasets / "thumb" / "mscoco_THumB-1.0.jsonl", criterion="wow")
    assert "Up-Down 4, VinVL-base 1, VinVL-large 4, Human 39." in j.protocol  # captions echoed in the references
    frame = pd.DataFrame(j.frame)
    assert set(frame["system"]) == set(PUBLISHED_CORPUS)
