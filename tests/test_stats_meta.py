"""capeval.meta.stats: every variant shared with scipy checked on random data, the rest on hand-computed cases;
the image bootstrap is checked against explicit resampling, for clustering and for coverage."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats as st

from capeval.meta import stats as S


def _random_pairs(seed: int):
    rng = np.random.default_rng(seed)
    for trial in range(12):
        n = int(rng.integers(3, 400))
        x = rng.integers(0, int(rng.integers(2, 40)), n).astype(float) if trial % 2 else rng.random(n)
        y = rng.integers(1, 5, n).astype(float) if trial % 3 else rng.normal(size=n).round(1)
        yield x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_statistics_match_scipy_on_random_data(seed: int) -> None:
    for x, y in _random_pairs(seed):
        got = S.correlations(x, y, ["tau_b", "tau_c", "spearman", "pearson"])
        assert got["tau_b"] == pytest.approx(st.kendalltau(x, y, variant="b")[0], abs=1e-12)
        assert got["tau_c"] == pytest.approx(st.kendalltau(x, y, variant="c")[0], abs=1e-12)
        assert got["spearman"] == pytest.approx(st.spearmanr(x, y)[0], abs=1e-12)
        assert got["pearson"] == pytest.approx(st.pearsonr(x, y)[0], abs=1e-12)


def test_tau_c_normalisation_uses_fewer_distinct_values() -> None:
    # 4 concordant pairs, 2 pairs tied in y; m = min(4 distinct x, 2 distinct y) = 2
    x, y = [1, 2, 3, 4], [1, 1, 2, 2]
    c = S.pair_counts(x, y)
    assert (c.concordant, c.discordant, c.ties_x, c.ties_y, c.ties_xy) == (4, 0, 0, 2, 0)
    assert S.kendall_tau(x, y, "c") == pytest.approx(2 * 4 / (16 * (2 - 1) / 2))  # = 1.0
    assert S.kendall_tau(x, y, "b") == pytest.approx(4 / np.sqrt(6 * 4))


def test_ties_credited_variants_by_hand() -> None:
    # pairs: (a,b) tie in x only; (b,c) tie in y only; the other 4 concordant
    x, y = [1, 1, 2, 3], [1, 2, 2, 3]
    c = S.pair_counts(x, y)
    assert (c.concordant, c.discordant, c.ties_x, c.ties_y, c.ties_xy) == (4, 0, 1, 1, 0)
    assert S.kendall_tau(x, y, "23") == pytest.approx((4 + 0 - 0 - 1 - 1) / 6)
    assert S.kendall_tau(x, y, "acc23") == pytest.approx(4 / 6)
    assert S.pairwise_accuracy(x, y, ties="exclude-human") == pytest.approx(4 / 5)


def test_joint_ties_are_credited_in_acc23() -> None:
    x, y = [1, 1, 2], [5, 5, 6]  # (a,b) tied in both: a correctly predicted tie
    assert S.kendall_tau(x, y, "acc23") == pytest.approx(1.0)
    assert S.kendall_tau(x, y, "23") == pytest.approx(1.0)
    assert S.kendall_tau(x, y, "b") == pytest.approx(1.0)


def test_discordant_pairs_by_hand() -> None:
    x, y = [3, 1, 2], [1, 2, 3]  # one concordant pair, two discordant
    assert S.kendall_tau(x, y, "b") == pytest.approx(-1 / 3)
    assert S.pairwise_accuracy(x, y) == pytest.approx(1 / 3)


def test_nan_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        S.correlations([1.0, np.nan, 2.0], [1, 2, 3])


def test_grouped_statistic_averages_within_image_values() -> None:
    rng = np.random.default_rng(5)
    groups = rng.integers(0, 60, 400)
    x = rng.integers(0, 6, 400).astype(float)
    y = rng.integers(1, 5, 400).astype(float)
    per = S.per_group_values(x, y, groups, ["tau_b", "spearman"])
    codes, g = S._group_codes(groups)
    expect = []
    for k in range(g):
        m = codes == k
        v = st.kendalltau(x[m], y[m])[0] if m.sum() > 1 else np.nan
        assert np.isclose(per["tau_b"][k], v, equal_nan=True)
        expect.append(v)
    gv = S.grouped_correlation(x, y, groups, "tau_b")
    assert gv.value == pytest.approx(np.nanmean(expect))
    assert gv.n_dropped == int(np.isnan(expect).sum())


@pytest.mark.parametrize("cluster_plan", [True, False])
def test_bootstrap_equals_explicit_resampling(cluster_plan: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not cluster_plan:
        monkeypatch.setattr(S, "_MAX_CLUSTER_PLAN", 0)
    rng = np.random.default_rng(2)
    g = 40
    groups = np.repeat(np.arange(g), rng.integers(1, 8, g))
    x = rng.random(len(groups)).round(2)
    y = rng.integers(1, 5, len(groups)).astype(float)
    res = S.bootstrap_correlations({"m": x}, y, groups, statistics=list(S.STATISTICS), n_resamples=6, seed=3)
    counts = S.cluster_bootstrap_counts(g, 6, 3)
    for b in range(6):
        idx = np.concatenate([np.tile(np.flatnonzero(groups == k), int(counts[b, k])) for k in range(g)])
        want = S.correlations(x[idx], y[idx])
        assert want["tau_c"] == pytest.approx(st.kendalltau(x[idx], y[idx], variant="c")[0])
        for s, v in want.items():
            assert res.samples["m"][s][b] == pytest.approx(v, abs=1e-10), (s, b)


def test_bootstrap_resamples_images_not_rows() -> None:
    """Duplicating every rating 5x inside its image adds no information: the image bootstrap CI stays as wide as on
    the original data, while a row bootstrap (each row its own cluster) would shrink it by about sqrt(5)."""
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=n)
    y = 0.5 * x + rng.normal(size=n)
    images = np.arange(n)
    base = S.bootstrap_correlations({"m": x}, y, images, ["pearson", "tau_b"], n_resamples=800, seed=1)
    xd, yd, imd = np.repeat(x, 5), np.repeat(y, 5), np.repeat(images, 5)
    dup = S.bootstrap_correlations({"m": xd}, yd, imd, ["pearson", "tau_b"], n_resamples=800, seed=1)
    rows = S.bootstrap_correlations({"m": xd}, yd, np.arange(len(xd)), ["pearson", "tau_b"], n_resamples=800, seed=1)

    def width(r: S.BootstrapResult, s: str) -> float:
        lo, hi = r.ci("m", s)
        return hi - lo

    for s in ("pearson", "tau_b"):
        assert width(dup, s) == pytest.approx(width(base, s), rel=0.2)
        assert width(dup, s) > 1.8 * width(rows, s)


@pytest.mark.slow
def test_bootstrap_ci_covers_the_true_value() -> None:
    """Coverage sanity: for bivariate normal data (population Kendall tau = 2/pi asin(rho)) the 95% image-bootstrap
    CI of tau-b contains the truth in roughly 95% of 100 simulated studies."""
    rng = np.random.default_rng(11)
    rho = 0.5
    truth = 2 / np.pi * np.arcsin(rho)
    hits = 0
    trials = 100
    for t in range(trials):
        z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=100)
        r = S.bootstrap_correlations({"m": z[:, 0]}, z[:, 1], np.arange(100), ["tau_b"], n_resamples=300, seed=t)
        lo, hi = r.ci("m", "tau_b")
        hits += lo <= truth <= hi
    assert 0.86 <= hits / trials <= 1.0


def test_image_level_bootstrap_uses_per_image_values() -> None:
    rng = np.random.default_rng(4)
    images = np.repeat(np.arange(50), 4)
    x = rng.random(200)
    y = x + rng.normal(scale=0.3, size=200)
    r = S.bootstrap_correlations({"m": x}, y, images, ["tau_b"], n_resamples=300, seed=0, level="image")
    assert r.estimates["m"]["tau_b"] == pytest.approx(S.grouped_correlation(x, y, images, "tau_b").value)
    lo, hi = r.ci("m", "tau_b")
    assert lo < r.estimates["m"]["tau_b"] < hi


def test_permutation_test_detects_the_better_metric() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(1, 5, 300).astype(float)
    good = y + rng.normal(scale=0.5, size=300)
    bad = y + rng.normal(scale=3.0, size=300)
    c = S.permutation_test(good, bad, y, "tau_b", n_resamples=300, seed=0, names=("good", "bad"))
    assert c.delta > 0 and c.p_value < 0.01
    c2 = S.permutation_test(bad, good, y, "tau_b", n_resamples=300, seed=0)
    assert c2.p_value > 0.5


def test_williams_test_is_one_half_for_equal_correlations_and_small_for_large_gaps() -> None:
    assert S.williams_test(0.5, 0.5, 0.6, 100) == pytest.approx(0.5)
    assert S.williams_test(0.6, 0.3, 0.5, 500) < 1e-6
    assert S.williams_test(0.3, 0.6, 0.5, 500) > 0.99
    # two-sided doubles the smaller tail
    p1 = S.williams_test(0.45, 0.40, 0.7, 200)
    assert S.williams_test(0.45, 0.40, 0.7, 200, one_sided=False) == pytest.approx(2 * p1)


def test_system_level_needs_two_systems_and_warns_below_five() -> None:
    with pytest.raises(ValueError, match="at least 2 systems"):
        S.system_correlations({"a": 1.0}, {"a": 2.0})
    with pytest.warns(S.StatsWarning, match="only 2 systems"):
        out = S.system_correlations({"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 1.0})
    assert out == {"pairwise_acc": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big = S.system_correlations({k: float(i) for i, k in enumerate("abcdef")},
                                    {k: float(i) for i, k in enumerate("abcdef")})
    assert big["pairwise_acc"] == 1.0 and big["tau_b"] == pytest.approx(1.0)


def test_paired_system_test_and_verdict_sentence() -> None:
    rng = np.random.default_rng(8)
    imgs = np.arange(200)
    base_h = rng.normal(3, 0.5, 200)
    tuned_h = base_h - 0.4 + rng.normal(0, 0.3, 200)  # people prefer the baseline
    base_m = rng.normal(0.20, 0.05, 200)
    tuned_m = base_m + 0.031 + rng.normal(0, 0.02, 200)  # the metric prefers the tuned model
    mc = S.paired_system_test(tuned_m, base_m, imgs, "BLEU-4", ("tuned", "baseline"), 4000, 0)
    hc = S.paired_system_test(tuned_h, base_h, imgs, "human", ("tuned", "baseline"), 4000, 0)
    assert mc.preferred == "tuned" and mc.p_value < 0.01 and mc.ci_low > 0
    assert hc.preferred == "baseline" and hc.p_value < 0.01 and hc.ci_high < 0
    sentence = S.verdict_sentence(mc, hc)
    assert sentence.startswith("BLEU-4 prefers tuned over baseline by +3.")
    assert "people prefer baseline over tuned by 0.4 points (p<0.001)" in sentence
    same = S.paired_system_test(base_h, base_h + rng.normal(0, 0.3, 200), imgs, n_resamples=2000)
    assert same.p_value > 0.01


def test_level_counts_used_by_permutations_equal_the_general_counts() -> None:
    rng = np.random.default_rng(9)
    for t in range(20):
        n = int(rng.integers(3, 300))
        x = rng.integers(0, 8, n).astype(float) if t % 2 else rng.random(n)
        y = rng.integers(1, 6, n).astype(float)
        codes, k = S._dense_codes(y)
        ties_y = float((np.bincount(codes) * (np.bincount(codes) - 1) / 2).sum())
        fast = S._level_counts(x, codes, k, ties_y)
        for stat in S.KENDALL_STATISTICS:
            assert S._kendall_from_counts(fast, stat)[0] == pytest.approx(S.correlation(x, y, stat), nan_ok=True)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_system_statistics_per_draw_match_scipy(n: int) -> None:
    from scipy import stats as sps

    rng = np.random.default_rng(n)
    x = rng.integers(0, 4, size=(40, n)).astype(float)  # ties included
    y = rng.normal(size=(40, n)).round(1)
    vals, why = S.system_statistics(x, y, ["tau_b", "tau_c", "acc_23", "spearman", "pearson"])
    for b in range(40):
        if len(set(x[b])) > 1:
            assert vals["tau_b"][b] == pytest.approx(sps.kendalltau(x[b], y[b], variant="b").statistic)
            assert vals["tau_c"][b] == pytest.approx(sps.kendalltau(x[b], y[b], variant="c").statistic)
            if n >= 3:
                assert vals["spearman"][b] == pytest.approx(sps.spearmanr(x[b], y[b]).statistic)
                assert vals["pearson"][b] == pytest.approx(sps.pearsonr(x[b], y[b]).statistic)
        assert vals["acc_23"][b] == pytest.approx(S.correlation(x[b], y[b], "acc_23"))
    if n == 2:
        assert set(why) == {"spearman", "pearson"} and np.isnan(vals["pearson"]).all()
    else:
        assert why == {}
