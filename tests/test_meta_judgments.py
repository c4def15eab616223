"""Judgments data model, generic loaders, reference policies and bad input (clear errors, never silent numbers);
`capeval correlate` end to end on small made-up data scored by the real engine."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from capeval.cli import main
from capeval.errors import InputError
from capeval.meta.correlate import correlate, plan_scoring
from capeval.meta.judgments import (
    Judgments,
    JudgmentsWarning,
    Scale,
    judgments_from_records,
    load_judgments,
    write_judgments,
)
from capeval.records import CaptionSet

REFS = {
    "1": ["a dog runs on the grass", "a brown dog running in a field", "a dog playing outside"],
    "2": ["a man rides a bike down the street", "a cyclist on a city road", "a person riding a bicycle"],
    "3": ["two children play in the sand", "kids building a sandcastle on the beach", "children at the beach"],
    "4": ["a plate of food on a table", "a meal with rice and vegetables", "dinner served on a white plate"],
}
GOOD = {"1": "a dog running in the grass", "2": "a man riding a bike on the street",
        "3": "children playing in the sand at the beach", "4": "a plate of rice and vegetables"}
BAD = {"1": "a plate of food", "2": "two children on a beach", "3": "a man on a bicycle", "4": "a dog in a field"}


def _records(systems=("good", "bad")) -> list[dict[str, object]]:
    rows = []
    for img in REFS:
        for sysname in systems:
            text = (GOOD if sysname == "good" else BAD)[img]
            for r, bump in (("r1", 0), ("r2", 1)):
                rating = (3 if sysname == "good" else 1) + (bump if img in ("1", "3") else 0)
                rows.append({"image_id": img, "system": sysname, "caption": text, "rating": rating, "rater": r,
                             "scale": "1-4"})
    return rows


@pytest.fixture()
def refs_file(tmp_path: Path) -> Path:
    p = tmp_path / "refs.json"
    p.write_text(json.dumps(REFS))
    return p


def _write_csv(tmp_path: Path, rows: list[dict[str, object]], name: str = "judgments.csv") -> Path:
    p = tmp_path / name
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


def test_judgments_format_round_trips_csv_and_jsonl(tmp_path: Path) -> None:
    j = judgments_from_records(_records())
    for name in ("j.csv", "j.jsonl", "j.tsv"):
        p = write_judgments(j, tmp_path / name)
        back = load_judgments(p)
        assert len(back) == len(j) and back.scale == Scale(1, 4)
        assert list(back.frame["rating"]) == list(j.frame["rating"])
        assert back.systems == ["good", "bad"]


def test_scale_parsing() -> None:
    assert Scale.parse("1-4") == Scale(1.0, 4.0) and str(Scale.parse("0..1")) == "0-1"
    with pytest.raises(ValueError):
        Scale.parse("4-1")


def test_nan_rating_is_an_error_naming_the_line(tmp_path: Path) -> None:
    rows = _records()
    rows[3]["rating"] = None
    p = _write_csv(tmp_path, rows)
    with pytest.raises(InputError, match=r"judgments.csv.*NaN rating.*line 5"):
        load_judgments(p)
    with pytest.warns(JudgmentsWarning, match="dropped 1 empty/NaN"):
        j = load_judgments(p, on_nan="drop")
    assert len(j) == len(rows) - 1


def test_rating_outside_the_declared_scale_is_a_scale_mismatch(tmp_path: Path) -> None:
    rows = _records()
    rows[2]["rating"] = 5
    with pytest.raises(InputError, match=r"judgments.csv, line 4: scale mismatch: rating 5 is outside the scale 1-4"):
        load_judgments(_write_csv(tmp_path, rows))


def test_expected_scale_differs_from_the_file(tmp_path: Path) -> None:
    p = _write_csv(tmp_path, _records())
    with pytest.raises(InputError, match="scale mismatch: the file declares 1-4, expected 1-5"):
        load_judgments(p, scale="1-5")


def test_mixed_scales_are_refused(tmp_path: Path) -> None:
    rows = _records()
    rows[0]["scale"] = "1-5"
    with pytest.raises(InputError, match="several rating scales"):
        load_judgments(_write_csv(tmp_path, rows))


def test_missing_columns_and_non_numeric_ratings(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing column"):
        load_judgments(_write_csv(tmp_path, [{"image_id": "1", "caption_id": "x"}]))
    rows = _records()
    rows[1]["rating"] = "good"
    with pytest.raises(InputError, match=r"b.csv, line 3: rating .good. is not a number"):
        load_judgments(_write_csv(tmp_path, rows, "b.csv"))


def test_unknown_caption_ids_are_listed() -> None:
    refs = CaptionSet.from_mapping(REFS)
    j = judgments_from_records([{"image_id": "1", "caption_id": "nope#7", "rating": 2.0},
                                {"image_id": "2", "caption_id": "2#1", "rating": 3.0}])
    with pytest.raises(InputError, match=r"1 judged caption\(s\) not found.*nope#7"):
        plan_scoring(j, refs)


def test_unknown_image_ids_are_an_error() -> None:
    refs = CaptionSet.from_mapping(REFS)
    with pytest.warns(JudgmentsWarning, match="every rating is 2; no correlation is defined"):
        j = judgments_from_records([{"image_id": "99", "caption": "x", "system": "s", "rating": 2.0}])
    with pytest.raises(InputError, match=r"no references: \['99'\]"):
        plan_scoring(j, refs)


def test_reference_policies_choose_each_documents_references() -> None:
    refs = CaptionSet.from_mapping(REFS)
    rows = [{"image_id": "1", "caption_id": "1#0", "rating": 4.0},  # a reference of its own image
            {"image_id": "1", "system": "good", "caption": GOOD["1"], "rating": 3.0}]
    with pytest.warns(JudgmentsWarning, match="dropped 1 judged caption"):
        drop = plan_scoring(judgments_from_records(rows, reference_policy="drop"), refs)
    assert len(drop.rows) == 1 and drop.references[0] == REFS["1"]
    image = plan_scoring(judgments_from_records(rows, reference_policy="remove-from-image-refs"), refs)
    assert [len(r) for r in image.references] == [2, 2]  # removed for every candidate of the image
    loo = plan_scoring(judgments_from_records(rows), refs, leave_one_out=True)
    assert loo.references[0] == REFS["1"][1:] and loo.references[1] == REFS["1"]
    assert loo.candidates[0] == REFS["1"][0]


def test_dropping_judged_references_warns_for_user_data() -> None:
    refs = CaptionSet.from_mapping(REFS)
    j = judgments_from_records([{"image_id": "1", "caption_id": "1#0", "rating": 4.0},
                                {"image_id": "1", "system": "s", "caption": "x", "rating": 1.0}])
    with pytest.warns(JudgmentsWarning, match="dropped 1 judged caption"):
        plan_scoring(j, refs)


def test_single_system_at_system_level_is_an_error(refs_file: Path) -> None:
    j = judgments_from_records(_records(systems=("good",)))
    with pytest.raises(InputError, match="--level system needs judgments of at least 2 systems"):
        correlate(j, refs=str(refs_file), metrics=["bleu4"], level="system")


def test_correlate_caption_and_system_level_with_real_metrics(refs_file: Path) -> None:
    j = judgments_from_records(_records())
    r = correlate(j, refs=str(refs_file), metrics=["bleu1", "cider"],
                  bootstrap=200, statistics=["tau_b", "pearson"])
    t = r.table.set_index(["metric", "statistic"])["value"]
    assert t[("cider", "tau_b")] > 0.5 and t[("bleu1", "tau_b")] > 0.3
    assert r.signatures["cider"].startswith("cider-d|")
    s = correlate(j, refs=str(refs_file), metrics=["bleu1", "cider"], level="system", system_tests=2000)
    v = s.verdicts.set_index("metric")
    assert set(v.index) == {"bleu1", "cider"}
    assert bool(v.loc["cider", "agree"]) and v.loc["cider", "verdict"].startswith("CIDEr-D prefers good over bad by +")
    assert any("only 2 systems" in w for w in s.warnings)


def test_unavailable_metric_is_reported_not_fatal(refs_file: Path) -> None:
    from capeval.errors import MetricUnavailable
    from capeval.metrics import compute_metric

    def engine(name, cands, refs, **kw):
        if name == "spice":
            raise MetricUnavailable("SPICE needs Java 8+ and the Stanford CoreNLP jars")
        return compute_metric(name, cands, refs, **kw)

    r = correlate(judgments_from_records(_records()), refs=str(refs_file), metrics=["bleu4", "spice"], bootstrap=0,
                  engine=engine)
    assert "spice" in r.unavailable and "CoreNLP" in r.unavailable["spice"]
    assert set(r.table["metric"]) == {"bleu4"}


def test_cli_correlate_prints_a_table_and_writes_json(tmp_path: Path, refs_file: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    p = _write_csv(tmp_path, _records())
    out = tmp_path / "res.json"
    code = main(["correlate", "--human", str(p), "--refs", str(refs_file), "--metrics", "bleu4,cider",
                 "--bootstrap", "100", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "CIDEr" in text and "tau_c" in text
    data = json.loads(out.read_text())
    assert data["bootstrap"]["unit"] == "image" and {r["metric"] for r in data["correlations"]} == {"bleu4", "cider"}


def test_cli_bad_judgments_give_one_line_and_exit_2(tmp_path: Path, refs_file: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rows = _records()
    rows[0]["rating"] = 9
    p = _write_csv(tmp_path, rows)
    code = main(["correlate", "--human", str(p), "--refs", str(refs_file), "--metrics", "bleu4"])
    err = capsys.readouterr().err
    assert code == 2 and "scale mismatch" in err and "Traceback" not in err


def test_mean_by_caption_averages_raters() -> None:
    j = judgments_from_records(_records())
    m = j.mean_by_caption()
    assert len(m) == 8 and set(m["n_ratings"]) == {2}
    assert isinstance(j, Judgments) and np.isclose(m["rating"].mean(), j.frame["rating"].mean())


def test_no_warning_for_clean_data() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        judgments_from_records(_records())


def test_annotation_export_with_several_criteria_needs_one_picked(tmp_path: Path, refs_file: Path) -> None:
    rows = []
    for r in _records():
        rows.append({**r, "criterion": "adequacy", "timestamp": "2026-01-01", "item": "x", "comment": ""})
        rows.append({**r, "criterion": "fluency", "scale": "1-5", "rating": 5, "timestamp": "2026-01-01"})
    p = _write_csv(tmp_path, rows, "export.csv")
    with pytest.raises(InputError, match=r"several criteria \(adequacy, fluency\)"):
        load_judgments(p)
    j = load_judgments(p, criterion="adequacy")
    assert len(j) == len(_records()) and j.scale == Scale(1, 4) and "timestamp" in j.frame
    r = correlate(str(p), refs=str(refs_file), metrics=["cider"], criterion="adequacy", bootstrap=0)
    assert r.judgments == "export[adequacy]" and r.n_rows == len(_records())


def test_references_rated_as_a_system_with_leave_one_out(refs_file: Path) -> None:
    rows = _records()
    for img in REFS:
        rows.append({"image_id": img, "caption_id": f"{img}#0", "system": "reference", "rating": 4, "rater": "r1",
                     "scale": "1-4"})
    j = judgments_from_records(rows)
    with pytest.warns(JudgmentsWarning, match="dropped 4 judged caption"):
        dropped = correlate(j, refs=str(refs_file), metrics=["cider"], level="system", system_tests=500)
    assert set(dropped.systems["system"]) == {"good", "bad"}
    loo = correlate(j, refs=str(refs_file), metrics=["cider"], level="system", leave_one_out=True, system_tests=500)
    assert set(loo.systems["system"]) == {"good", "bad", "reference"}
    assert len(loo.verdicts) == 3 and any("leave-one-out" in p for p in loo.protocol)


def test_system_caption_sharing_a_reference_id_is_not_taken_for_that_reference() -> None:
    """Bug: dict-format candidate files give `<image>#0` ids, the same ids the references use; a system caption with
    such an id (as the annotation app exports) was dropped as "a reference of its own image"."""
    refs = CaptionSet.from_mapping(REFS)
    rows = [{"image_id": img, "caption_id": f"{img}#0", "system": sysname, "caption": text[img], "rating": r}
            for img in REFS for sysname, text, r in (("good", GOOD, 4.0), ("bad", BAD, 1.0))]
    with warnings.catch_warnings():
        warnings.simplefilter("error", JudgmentsWarning)
        plan = plan_scoring(judgments_from_records(rows), refs)
    assert len(plan.rows) == len(rows)
    assert plan.references[0] == REFS["1"]
