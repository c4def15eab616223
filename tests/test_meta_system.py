"""System level: every default statistic for 2, 3 and 5 systems (the `KeyError: ['tau_c', 'acc_23']` crash),
bootstrap resamples that recompute each system's corpus score, the pair table, and the annotation-app export
through `capeval correlate --level system` exactly as the README shows it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capeval.cli import main
from capeval.meta.correlate import DEFAULT_STATISTICS, correlate
from capeval.meta.judgments import judgments_from_records
from capeval.meta.protocols import AdditiveStats, finalise, score_by_system
from capeval.records import CaptionSet

REFS = {
    "1": ["a dog runs on the grass", "a brown dog running in a field", "a dog playing outside"],
    "2": ["a man rides a bike down the street", "a cyclist on a city road", "a person riding a bicycle"],
    "3": ["two children play in the sand", "kids building a sandcastle on the beach", "children at the beach"],
    "4": ["a plate of food on a table", "a meal with rice and vegetables", "dinner served on a white plate"],
    "5": ["a cat sleeping on a sofa", "a grey cat curled up on a couch", "a cat asleep on cushions"],
    "6": ["a red bus on a city street", "a double decker bus driving down a road", "a bus in traffic"],
}
#: five systems from good to bad: each later one swaps more of its captions for another image's
CAPTIONS = {
    "s1": {"1": "a dog running in the grass", "2": "a man riding a bike on the street", "3": "children playing in "
           "the sand at the beach", "4": "a plate of rice and vegetables", "5": "a cat asleep on a couch",
           "6": "a red bus driving down a street"},
}
for k, shift in ((2, 1), (3, 2), (4, 3), (5, 4)):
    imgs = list(REFS)
    CAPTIONS[f"s{k}"] = {img: (CAPTIONS["s1"][imgs[(i + 1) % 6]] if i < shift + 1 else CAPTIONS["s1"][img] + " here")
                         for i, img in enumerate(imgs)}


def _rows(systems: list[str]) -> list[dict[str, object]]:
    rows = []
    for rank, s in enumerate(systems):
        for img in REFS:
            for r, bump in (("r1", 0), ("r2", 1)):
                rows.append({"image_id": img, "system": s, "caption": CAPTIONS[s][img], "rater": r,
                             "rating": max(1, min(4, 4 - rank + (bump if img in "135" else 0) - (1 if img == "6"
                                                                                                 and rank else 0))),
                             "scale": "1-4"})
    return rows


@pytest.fixture()
def refs_file(tmp_path: Path) -> Path:
    p = tmp_path / "refs.json"
    p.write_text(json.dumps(REFS))
    return p


@pytest.mark.parametrize("n", [2, 3, 5])
def test_default_statistics_at_system_level_for_n_systems(n: int, refs_file: Path) -> None:
    systems = [f"s{k}" for k in range(1, n + 1)]
    r = correlate(judgments_from_records(_rows(systems)), refs=str(refs_file), metrics=["bleu4", "cider"],
                  level="system", bootstrap=100, system_tests=500)
    wide = r.wide()  # crashed with KeyError: "['tau_c', 'acc_23'] not in index"
    assert list(wide.columns) == list(DEFAULT_STATISTICS) and len(wide) == 2
    sc = r.system_correlation
    assert set(sc.statistic) == set(DEFAULT_STATISTICS) and (sc.n == n).all()
    for _, row in sc.iterrows():
        if n == 2 and row.statistic in ("spearman", "pearson"):
            assert np.isnan(row.value) and "needs at least 3 systems" in row.note
            assert wide.loc["CIDEr-D", row.statistic] == "n/a"
        else:
            assert not np.isnan(row.value) and row.note == "", (row.statistic, row.value)
    assert len(r.verdicts) == 2 * n * (n - 1) // 2
    assert r.systems["n_images"].tolist() == [6] * n


@pytest.mark.parametrize("n", [2, 3, 5])
def test_cli_level_system_with_default_statistics(n: int, tmp_path: Path, refs_file: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "j.csv"
    pd.DataFrame(_rows([f"s{k}" for k in range(1, n + 1)])).to_csv(p, index=False)
    code = main(["correlate", "--human", str(p), "--refs", str(refs_file), "--level", "system", "--bootstrap", "50",
                 "--out", str(tmp_path / "r.json")])
    out = capsys.readouterr()
    assert code == 0, out.err
    text = " ".join(out.out.split())
    assert f"people rank s1 first of {n} systems" in text and "pairs of systems" in text
    assert any(line.split()[:3] == ["CIDEr-D", "s1", "s2"] for line in out.out.splitlines())
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["unit"] == "per-system" and len(data["verdicts"]) == 4 * n * (n - 1) // 2


def test_resampled_corpus_bleu_equals_scoring_the_resampled_corpus() -> None:
    """A bootstrap resample's corpus BLEU from per-image statistics equals `score_systems` run on that resample
    (drawn images duplicated under new ids); ROUGE-L too (a mean)."""
    from capeval.metrics.engine import score_systems

    rows = pd.DataFrame([{"system": s, "image_id": img, "caption": CAPTIONS[s][img], "caption_id": None}
                         for s in ("s1", "s3") for img in REFS])
    refs = CaptionSet.from_mapping(REFS)
    sc = score_by_system(rows, refs, ["bleu4", "bleu1", "rouge"])
    draw = ["1", "1", "4", "5", "5", "5"]
    w = np.array([draw.count(i) for i in REFS], dtype=float)
    dup_refs = CaptionSet.from_mapping({f"{img}x{k}": REFS[img] for k, img in enumerate(draw)})
    for s in ("s1", "s3"):
        cands = CaptionSet.from_mapping({f"{img}x{k}": CAPTIONS[s][img] for k, img in enumerate(draw)}, name=s)
        truth = score_systems({s: cands}, dup_refs, ["bleu", "rouge"], progress=False).corpus.loc[s]
        for m, col in (("bleu4", "bleu4"), ("bleu1", "bleu1"), ("rouge", "rouge")):
            st: AdditiveStats = sc.stats[m][s]
            ww = w[[list(REFS).index(i) for i in st.images]]
            assert float(finalise(st, ww @ st.values)) == pytest.approx(truth[col], abs=1e-12), (s, m)
            assert float(finalise(st, st.values.sum(axis=0))) == pytest.approx(sc.corpus[m][s], abs=1e-12)


def test_pair_table_p_values_separate_real_and_null_differences(refs_file: Path) -> None:
    rows = _rows(["s1", "s5"])
    twin = [dict(r, system="s1copy") for r in rows if r["system"] == "s1"]
    r = correlate(judgments_from_records(rows + twin), refs=str(refs_file), metrics=["rouge"], level="system",
                  bootstrap=200, system_tests=2000)
    v = r.verdicts.set_index(["system_x", "system_y"])
    same = v.loc[("s1", "s1copy")]
    assert same.metric_delta == 0 and same.metric_p == 1.0 and same.human_p == 1.0
    diff = v.loc[("s1", "s5")]
    assert diff.metric_delta > 0 and diff.human_delta > 0 and diff.agree and diff.human_p < 0.05
    assert diff.metric_ci_low < diff.metric_delta < diff.metric_ci_high


def test_pooled_unit_is_kept_for_flickr_style_sets_and_named(refs_file: Path) -> None:
    j = judgments_from_records(_rows(["s1", "s2", "s3"]))
    r = correlate(j, refs=str(refs_file), metrics=["cider"], level="system", unit="pooled", bootstrap=50,
                  system_tests=200)
    assert r.unit == "pooled" and r.signatures["cider"].endswith("|unit:pooled")
    assert any("mean of its per-caption scores" in p for p in r.protocol)
    per = correlate(j, refs=str(refs_file), metrics=["cider"], level="system", bootstrap=50, system_tests=200)
    assert per.unit == "per-system"
    # per system, CIDEr-D's document frequencies come from each system's own 6 images
    assert not np.allclose(per.systems["cider"], r.systems["cider"])


# ------------------------------------------------------------------ the annotation app's export


def _readme_correlate_line() -> list[str]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("### `capeval annotate`", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    line = next(x for x in block.splitlines() if x.startswith("capeval correlate"))
    return shlex.split(line.split("#", 1)[0])[1:]


@pytest.mark.slow
def test_annotation_export_through_the_readme_correlate_command(shared_datasets: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("annotation.service")
    from annotation.example import make_campaign
    from annotation.service import export_campaign, open_campaign

    from capeval import datasets

    refs = datasets.load("coco-karpathy-test").texts_by_image()
    systems = {s: datasets.load(name).texts_by_image() for s, name in (("baseline", "m2-transformer"),
                                                                       ("tuned", "blip2"))}
    imgs = list(refs)[:8]
    ex = make_campaign(tmp_path / "study", n_images=8, systems=("baseline", "tuned"), rubric="thumb",
                       annotators=("ann1", "ann2"), raters_per_item=2,
                       real_captions=[(img, [systems["baseline"][img][0], systems["tuned"][img][0]]) for img in imgs])
    prep = open_campaign(ex.path)
    svc = prep.service
    try:
        for a in ("ann1", "ann2"):
            while not (s := svc.current(a)).done:
                blip = s.captions[0] == systems["tuned"][imgs[0]][0] or s.captions[0] in {systems["tuned"][i][0]
                                                                                          for i in imgs}
                svc.submit(a, s.public_id, {"precision": "5" if blip else "3", "recall": "4" if blip else "2"})
    finally:
        svc.close()
    export_campaign(ex.path, tmp_path / "ratings.csv")  # what `capeval annotate export ... --out ratings.csv` writes
    for s in ("baseline", "tuned"):
        (tmp_path / f"{s}.json").write_text(json.dumps({img: systems[s][img][0] for img in imgs}))
    monkeypatch.chdir(tmp_path)
    args = _readme_correlate_line()
    assert "--criterion" in args, "an annotation export holds several criteria: the README line must pick one"
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    text = " ".join(out.out.split())
    assert "people rank tuned first of 2 systems" in text and "unit:per-system" in text
    pair = next(line.split() for line in out.out.splitlines() if line.split()[:3] == ["CIDEr-D", "baseline", "tuned"])
    assert pair[3].startswith("-") and pair[-1] == "yes"  # BLIP-2 above M2-Transformer for CIDEr-D and for people


def test_cli_default_metrics_are_the_library_defaults_and_fast() -> None:
    from capeval.cli.meta import DEFAULT_METRICS as CLI_DEFAULT
    from capeval.meta.correlate import DEFAULT_METRICS as LIB_DEFAULT
    from capeval.metrics.registry import NATIVE, parse_metric_names

    assert CLI_DEFAULT.split(",") == list(LIB_DEFAULT)
    assert {r.family for r in parse_metric_names(CLI_DEFAULT)} <= set(NATIVE)  # no Java, no model download


def test_systems_judged_on_different_images_are_compared_on_the_shared_ones(refs_file: Path) -> None:
    rows = [r for r in _rows(["s1", "s2", "s3"]) if not (r["system"] == "s3" and r["image_id"] in "1234")]
    rows = [r for r in rows if not (r["system"] == "s2" and r["image_id"] == "6")]
    r = correlate(judgments_from_records(rows), refs=str(refs_file), metrics=["rouge"], level="system",
                  bootstrap=50, system_tests=200)
    assert r.systems.set_index("system")["n_images"].to_dict() == {"s1": 6, "s2": 5, "s3": 2}
    v = r.verdicts.set_index(["system_x", "system_y"])
    assert v.loc[("s1", "s3"), "n_images"] == 2 and ("s2", "s3") not in v.index  # s2/s3 share only image 5
    assert any("s2 and s3 share 1 judged image(s)" in w for w in r.warnings)
    assert any("p-values use the 2 images both were judged on" in w for w in r.warnings)
