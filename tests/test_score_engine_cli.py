"""score_systems and `capeval score`: shared reference preparation, exclusions, unavailable metrics, outputs,
and the CLI end to end on the real COCO data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capeval.errors import InputError
from capeval.metrics import compute_metric_many, score_systems
from capeval.metrics.engine import read_caption_ids
from capeval.records import Caption, CaptionSet


def _refs() -> CaptionSet:
    caps = []
    data = {"1": ["a dog on a mat", "a brown dog lying on a rug"], "2": ["a red bus on a street", "a bus parked"],
            "3": ["two cats asleep on a bed", "cats sleeping"], "4": ["a man rides a horse", "a person on a horse"]}
    for img, texts in data.items():
        caps += [Caption(f"r{img}-{k}", img, t, "refs") for k, t in enumerate(texts)]
    return CaptionSet(caps, name="refs")


def _system(name: str, texts: dict[str, str]) -> CaptionSet:
    return CaptionSet([Caption(f"{name}-{img}", img, t, name) for img, t in texts.items()], name=name)


SYS_A = {"1": "a dog on a rug", "2": "a bus on the street", "3": "a cat sleeping", "4": "a man on a horse"}
SYS_B = {"4": "a horse", "3": "two cats on a bed", "2": "a red bus", "1": "a dog"}


def test_score_systems_matches_compute_metric_and_has_all_columns() -> None:
    refs = _refs()
    rep = score_systems({"a": _system("a", SYS_A), "b": _system("b", SYS_B)}, refs, "bleu,cider,rouge",
                        progress=False)
    cols = ["bleu1", "bleu2", "bleu3", "bleu4", "cider", "rouge"]
    assert list(rep.per_caption.columns) == ["system", "image_id", "caption_id", *cols]
    assert list(rep.corpus.index) == ["a", "b"] and list(rep.corpus.columns) == cols
    assert len(rep.per_caption) == 8 and rep.unavailable == {}
    by_img = refs.texts_by_image()
    for name, texts in (("a", SYS_A), ("b", SYS_B)):
        imgs = list(by_img)
        direct = {r.name: r for r in compute_metric_many("bleu,cider,rouge", [texts[i] for i in imgs],
                                                         [by_img[i] for i in imgs])}
        rows = rep.per_caption[rep.per_caption.system == name].set_index("image_id").loc[imgs]
        for c in cols:
            np.testing.assert_allclose(rows[c].to_numpy(), direct[c].per_item, atol=1e-12)
            assert rep.corpus.loc[name, c] == pytest.approx(direct[c].corpus, abs=1e-12)
    assert rep.signatures["cider"].startswith("cider-d|n:4|sigma:6|df:eval-refs(n=4)|tok:ptb-py")
    assert rep.signatures["bleu4"].startswith("bleu4|n:4|ref-len:closest|smooth:none(pycoco tiny=1e-15)|tok:ptb-py|nrefs:2")


def test_references_are_prepared_once_for_all_systems(monkeypatch) -> None:
    import capeval.metrics.ngrams as ng

    calls = []
    real = ng.prepare_references
    monkeypatch.setattr(ng, "prepare_references", lambda *a, **k: calls.append(1) or real(*a, **k))
    score_systems({"a": _system("a", SYS_A), "b": _system("b", SYS_B), "c": _system("c", SYS_A)}, _refs(),
                  ["bleu", "cider", "rouge"], progress=False)
    assert len(calls) == 1


def test_unavailable_metrics_are_reported_and_the_rest_computed(monkeypatch) -> None:
    from capeval.metrics import registry

    monkeypatch.setitem(registry.METRICS, "spice", "capeval.metrics.no_such_module:Spice")
    rep = score_systems({"a": _system("a", SYS_A)}, _refs(), "bleu4,spice", progress=False)
    assert list(rep.corpus.columns) == ["bleu4"]
    assert "spice" in rep.unavailable and "no_such_module" in rep.unavailable["spice"]


def test_excluding_reference_captions_rescores_without_them() -> None:
    refs = _refs()
    rep = score_systems({"a": _system("a", SYS_A)}, refs, "bleu,rouge", exclude_caption_ids=["r1-1"], progress=False)
    manual = score_systems({"a": _system("a", SYS_A)}, refs.without(["r1-1"]), "bleu,rouge", progress=False)
    pd.testing.assert_frame_equal(rep.per_caption, manual.per_caption)
    full = score_systems({"a": _system("a", SYS_A)}, refs, "rouge", progress=False)
    assert rep.per_caption.loc[0, "rouge"] != full.per_caption.loc[0, "rouge"]


def test_image_left_without_references_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="no reference left after excluding 2 caption ids"):
        score_systems({"a": _system("a", SYS_A)}, _refs(), "bleu", exclude_caption_ids=["r2-0", "r2-1"],
                      progress=False)


def test_candidate_without_references_is_rejected() -> None:
    with pytest.raises(InputError, match="no reference captions"):
        score_systems({"a": _system("a", {**SYS_A, "99": "a thing"})}, _refs(), "bleu", progress=False)


def test_exclusion_files_text_json_and_findings_jsonl(tmp_path: Path) -> None:
    (tmp_path / "ids.txt").write_text("# flagged\nr1-1\n\n123\n")
    (tmp_path / "ids.json").write_text(json.dumps(["r1-1", 123, {"caption_id": "x"}]))
    (tmp_path / "findings.jsonl").write_text('{"caption_id": "r1-1", "kind": "typo"}\n{"caption_id": 123}\n')
    assert read_caption_ids(str(tmp_path / "ids.txt")) == ["r1-1", "123"]
    assert read_caption_ids(str(tmp_path / "ids.json")) == ["r1-1", "123", "x"]
    assert read_caption_ids(str(tmp_path / "findings.jsonl")) == ["r1-1", "123"]
    (tmp_path / "bad.jsonl").write_text('{"id": 3}\n')
    with pytest.raises(InputError, match="line 1"):
        read_caption_ids(str(tmp_path / "bad.jsonl"))


def _write_subset(shared: Path, tmp: Path, n: int = 300) -> tuple[Path, Path, list[str]]:
    data = json.loads((shared / "coco-karpathy-test" / "coco_test.json").read_text())[:n]
    refs_path = tmp / "refs.json"
    refs_path.write_text(json.dumps(data))
    ids = [str(int(e["image"].rsplit("_", 1)[-1].split(".")[0])) for e in data]
    blip = json.loads((shared / "coco-system-outputs" / "blip2_results_xe.json").read_text())
    cand_path = tmp / "blip2.json"
    cand_path.write_text(json.dumps({i: blip[i] for i in ids}))
    return refs_path, cand_path, ids


def test_cli_scores_a_real_subset_with_exclusions_idf_and_outputs(shared_datasets: Path, tmp_path: Path,
                                                                   capsys) -> None:
    from capeval.cli import main
    from capeval.metrics import build_cider_idf

    refs_path, cand_path, ids = _write_subset(shared_datasets, tmp_path)
    from capeval.io import load_captions

    refs = load_captions(refs_path)
    first = refs.by_image()[ids[0]][0].caption_id
    (tmp_path / "findings.jsonl").write_text(json.dumps({"caption_id": first}) + "\n")
    build_cider_idf(refs, tmp_path / "df.json", source="karpathy300")
    for out in ("s.parquet", "s.csv", "s.json"):
        rc = main(["score", "--refs", str(refs_path), str(cand_path), "--metrics", "bleu4,cider-d,rouge-l,spice",
                   "--exclude-captions", str(tmp_path / "findings.jsonl"), "--cider-idf", str(tmp_path / "df.json"),
                   "--out", str(tmp_path / out), "-q"])
        assert rc == 0
    text = capsys.readouterr().out
    assert "x100: bleu4, cider, rouge" in text and "blip2" in text
    assert "df:fixed(karpathy300,n=300" in text and "tok:ptb-py" in text
    df = pd.read_parquet(tmp_path / "s.parquet")
    assert list(df.columns) == ["system", "image_id", "caption_id", "bleu4", "cider", "rouge"] and len(df) == 300
    pd.testing.assert_frame_equal(df, pd.read_csv(tmp_path / "s.csv", dtype={"image_id": str, "caption_id": str}),
                                  check_exact=False, atol=1e-12)
    assert len(json.loads((tmp_path / "s.json").read_text())) == 300


def test_cli_bad_metric_and_bad_output_are_one_line_errors(shared_datasets: Path, tmp_path: Path, capsys) -> None:
    from capeval.cli import main

    refs_path, cand_path, _ = _write_subset(shared_datasets, tmp_path, n=5)
    assert main(["score", "--refs", str(refs_path), str(cand_path), "--metrics", "blue", "-q"]) == 2
    assert main(["score", "--refs", str(refs_path), str(cand_path), "--out", str(tmp_path / "x.xlsx"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "unknown metric 'blue'" in err and "unknown output extension" in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_reproduces_published_coco_figures_from_dataset_names(shared_datasets: Path, monkeypatch,
                                                                  capsys) -> None:
    from capeval.cli import main

    monkeypatch.setenv("CAPEVAL_DATA_MIRROR", str(shared_datasets))
    rc = main(["score", "--refs", "coco-karpathy-test", "m2-transformer", "blip2", "--metrics", "bleu4,cider", "-q"])
    assert rc == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}  # plain table when not a terminal
    assert "39.1" in rows["m2-transformer"] and "131.2" in rows["m2-transformer"]
    assert "43.8" in rows["blip2"] and "146.0" in rows["blip2"]
    assert "df:eval-refs(n=5000)" in out
