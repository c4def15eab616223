"""Acceptance: the published Flickr8k correlations (CLIPScore protocol, PAC-S README; ../shared/datasets/README.md)
reproduced through capeval's own metric engine, within 0.1 of each published figure."""

from __future__ import annotations

import shutil
import warnings

import pytest

from capeval.meta.correlate import correlate
from capeval.meta.judgments import load_flickr8k_crowdflower, load_flickr8k_expert

EXPERT_TAU_C = {"bleu1": 32.3, "bleu4": 30.8, "rouge": 32.3, "cider": 43.9, "meteor": 41.8}
CROWDFLOWER_TAU_B = {"bleu1": 17.9, "bleu4": 16.9, "rouge": 19.9, "cider": 24.6, "meteor": 22.3}
NATIVE = ["bleu1", "bleu4", "rouge", "cider"]


def _tokens(root):
    from capeval.io import load_captions

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_captions(root / "flickr8k" / "Flickr8k.token.txt", format="flickr8k-token")


@pytest.fixture(scope="module")
def expert(shared_datasets):
    return load_flickr8k_expert(shared_datasets / "flickr8k" / "ExpertAnnotations.txt", _tokens(shared_datasets))


def _value(result, metric, stat):
    t = result.table
    return 100 * float(t[(t.metric == metric) & (t.statistic == stat)]["value"].iloc[0])


@pytest.mark.slow
def test_flickr8k_expert_tau_c_matches_published(expert) -> None:
    r = correlate(expert, metrics=NATIVE, statistics=["tau_c"], bootstrap=0)
    assert r.n_rows == 16992 and r.n_images == 1000
    assert any("dropped 158 judged caption(s) (474 rows)" in p for p in r.protocol)
    for m in NATIVE:
        assert _value(r, m, "tau_c") == pytest.approx(EXPERT_TAU_C[m], abs=0.1), m


@pytest.mark.slow
@pytest.mark.java
@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs a Java runtime")
def test_flickr8k_expert_meteor_tau_c_matches_published(expert) -> None:
    r = correlate(expert, metrics=["meteor"], statistics=["tau_c"], bootstrap=0)
    assert _value(r, "meteor", "tau_c") == pytest.approx(EXPERT_TAU_C["meteor"], abs=0.1)


@pytest.mark.slow
def test_flickr8k_crowdflower_tau_b_matches_published(shared_datasets) -> None:
    j = load_flickr8k_crowdflower(shared_datasets / "flickr8k" / "CrowdFlowerAnnotations.txt", _tokens(shared_datasets))
    r = correlate(j, metrics=list(NATIVE), statistics=["tau_b"], bootstrap=0)
    assert r.n_rows == 47830
    assert any("721 judged caption(s)" in p for p in r.protocol)
    for m in NATIVE:
        assert _value(r, m, "tau_b") == pytest.approx(CROWDFLOWER_TAU_B[m], abs=0.1), m


@pytest.mark.slow
@pytest.mark.java
def test_flickr8k_crowdflower_meteor_tau_b_matches_published(shared_datasets) -> None:
    if not shutil.which("java"):
        pytest.skip("METEOR needs a Java runtime")
    j = load_flickr8k_crowdflower(shared_datasets / "flickr8k" / "CrowdFlowerAnnotations.txt", _tokens(shared_datasets))
    r = correlate(j, metrics=["meteor"], statistics=["tau_b"], bootstrap=0)
    assert _value(r, "meteor", "tau_b") == pytest.approx(CROWDFLOWER_TAU_B["meteor"], abs=0.1)


def test_expert_loader_expands_three_rows_per_pair(expert) -> None:
    assert len(expert) == 5822 * 3
    assert set(expert.frame["rater"]) == {"expert1", "expert2", "expert3"}
    assert str(expert.scale) == "1-4" and expert.reference_policy == "drop"
