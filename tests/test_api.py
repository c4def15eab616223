"""The public Python API: capeval.score / audit / correlate / load on files, dataset names and Python data, and the
README's "Python API" example run as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import capeval
from capeval.errors import InputError

README = Path(__file__).resolve().parents[1] / "README.md"

REFS = {"1": ["a man rides a red bike down the street", "a person on a bicycle in a city"],
        "2": ["two dogs play in the green grass", "dogs running on a lawn"],
        "3": ["a plate of food with broccoli and rice", "a meal on a white plate"]}
CANDS = {"1": "a man riding a bike", "2": "two dogs on the grass", "3": "a plate of food"}


def test_import_capeval_is_light() -> None:
    code = ("import sys, capeval; heavy = [m for m in ('pandas', 'numpy', 'torch', 'spacy', 'capeval.metrics') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_score_python_data_equals_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from capeval.cli import main

    r = capeval.score(CANDS, REFS, metrics=["bleu4", "cider", "rouge"], name="mine")
    assert r.systems == ["mine"] and set(r.corpus.columns) == {"bleu4", "cider", "rouge"}
    assert len(r.to_pandas("caption")) == 3
    assert r.to_pandas(x100=True).loc["mine", "cider"] == pytest.approx(100 * r["mine"]["cider"])
    (tmp_path / "refs.json").write_text(json.dumps(REFS))
    (tmp_path / "mine.json").write_text(json.dumps(CANDS))
    assert main(["score", "--refs", str(tmp_path / "refs.json"), str(tmp_path / "mine.json"), "--metrics",
                 "bleu4,cider,rouge", "--format", "json", "-q"]) == 0
    cli = json.loads(capsys.readouterr().out)[0]
    assert cli["system"] == "mine"
    for k in ("bleu4", "cider", "rouge"):
        assert cli[k] == pytest.approx(r["mine"][k], abs=1e-12)


def test_score_several_systems_and_sources(tmp_path: Path) -> None:
    (tmp_path / "sys-1.5.json").write_text(json.dumps([{"image_id": k, "caption": v} for k, v in CANDS.items()]))
    r = capeval.score([str(tmp_path / "sys-1.5.json"), tmp_path / "sys-1.5.json"], REFS, metrics="bleu4")
    assert r.systems == ["sys-1.5", "sys-1.5-2"]
    r2 = capeval.score({"a": CANDS, "b": [{"image_id": 1, "caption": "a dog"}, {"image_id": 2, "caption": "a cat"},
                                          {"image_id": 3, "caption": "food"}]}, REFS, metrics=["rouge"])
    assert r2.systems == ["a", "b"] and r2["a"]["rouge"] > r2["b"]["rouge"]
    assert "ScoreResult(2 systems)" in repr(r2)


@pytest.mark.parametrize("bad,match", [({"1": None, "2": "x", "3": "y"}, r'\["1"\]: expected a caption string, got null'),
                                       ({"1": 3, "2": "x", "3": "y"}, r'\["1"\]: expected a caption string'),
                                       (["a dog", "a cat"], "no such file|file not found"),
                                       ([], "no candidates")])
def test_score_bad_candidates_are_errors(bad: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        capeval.score(bad, REFS)


def test_single_image_cider_warns() -> None:
    from capeval.errors import DegenerateInputWarning

    with pytest.warns(DegenerateInputWarning, match="single image is 0 by construction"):
        r = capeval.score({"1": CANDS["1"]}, {"1": REFS["1"]}, metrics=["cider"])
    assert r["system"]["cider"] == 0.0


def test_audit_is_callable_even_after_its_package_is_imported() -> None:
    import capeval.audit.run  # noqa: F401  (binds capeval.audit to the package)

    report = capeval.audit({"1": ["a dog on teh grass", "a dog lying on the grass"], "2": ["a cat", "a cat sits"]})
    df = report.to_pandas()
    assert {"caption_id", "category", "suggestion"} <= set(df.columns)
    assert "1#0" in report.flagged_ids()  # the wrapped AuditResult's method
    assert capeval.audit.audit_captions is not None  # still the package


def test_correlate_accepts_records() -> None:
    rows = [{"image_id": str(i), "caption_id": f"{i}#c", "caption": c, "rating": r}
            for i, (c, r) in enumerate([("a man riding a bike", 4), ("two dogs on the grass", 3),
                                        ("a plate of food", 2), ("a man rides a red bike", 4)], start=1)]
    refs = {**REFS, "4": ["a man rides a red bike down the street", "a person on a bicycle"]}
    corr = capeval.correlate(rows, refs, metrics=["bleu4"], bootstrap=0)
    t = corr.to_pandas()
    assert set(t["metric"]) == {"bleu4"} and "value" in t.columns
    assert corr.result.n_rows == 4 and corr.wide().shape[0] == 1


def _readme_python_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^## Python API\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README has no '## Python API' section"
    blocks = re.findall(r"```python\n(.*?)```", m.group(1), re.S)
    assert blocks, "the Python API section has no python code block"
    return blocks


@pytest.mark.slow
def test_readme_python_example_runs_as_written(shared_datasets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPEVAL_DATA_MIRROR", str(shared_datasets))
    ns: dict[str, object] = {}
    for block in _readme_python_blocks():
        exec(compile(block, "README.md (Python API)", "exec"), ns)  # noqa: S102 - the README's own example
    if "result" in ns:  # the figures the README's comments quote
        result = ns["result"]
        assert round(result.to_pandas(x100=True).loc["blip2", "cider"], 1) == 146.0  # type: ignore[attr-defined]
        assert round(result.to_pandas(x100=True).loc["blip2", "bleu4"], 1) == 43.8  # type: ignore[attr-defined]
