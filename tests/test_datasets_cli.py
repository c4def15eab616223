"""`capeval data ...` through the real entry point: output, exit codes and one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from capeval.cli import main


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CAPEVAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CAPEVAL_DATA_MIRROR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "home"


def test_data_get_prints_the_cached_path(shared_datasets: Path, _own_home: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "get", "blip2", "--mirror", str(shared_datasets)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(_own_home / "datasets" / "coco-system-outputs" / "blip2_results_xe.json")
    assert Path(out).is_file()


def test_data_list_shows_names_sizes_and_cache_state(shared_datasets: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "get", "m2-transformer", "--mirror", str(shared_datasets)]) == 0
    capsys.readouterr()
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}  # plain table when not a terminal
    assert "coco-captions-2017" in rows and "pascal50s" in rows
    assert "306.2 KB" in rows["m2-transformer"] and rows["m2-transformer"].rstrip(" │").endswith("yes")
    assert rows["blip2"].rstrip(" │").endswith("no")


def test_data_info_shows_urls_checksums_and_citation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "coco-karpathy-test"]) == 0
    out = capsys.readouterr().out
    assert "sha256 1fe6c79866696bd1f97a7d03603fcf1ef0d9ce45d415bcb53b85d1100dd0b7ae" in out
    assert "https://raw.githubusercontent.com/kanadn/diht/060dec7d/coco_test.json" in out
    assert "Lin et al. 2014" in out and "CC BY 4.0" in out


def test_data_get_unknown_name_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "get", "cocoo"]) == 2
    err = capsys.readouterr().err
    assert "error: unknown dataset 'cocoo'" in err and "Traceback" not in err


def test_data_get_corrupt_mirror_fails_with_checksum_message(shared_datasets: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rel = Path("flickr8k") / "ExpertAnnotations.txt"
    (tmp_path / "m" / "flickr8k").mkdir(parents=True)
    shutil.copyfile(shared_datasets / rel, tmp_path / "m" / rel)
    with (tmp_path / "m" / rel).open("ab") as f:
        f.write(b"extra\n")
    assert main(["data", "get", "flickr8k-expert", "--mirror", str(tmp_path / "m")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "checksum mismatch for flickr8k/ExpertAnnotations.txt" in err and "expected sha256 56c2b1a9" in err


def test_data_inspect_detects_and_counts(shared_datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_datasets / "coco-system-outputs" / "llava-1.5-7b_briefly.json"
    assert main(["data", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "format dict, 5000 captions, 5000 images" in out and "391895#0" in out


def test_data_inspect_by_dataset_name(shared_datasets: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CAPEVAL_DATA_MIRROR", str(shared_datasets))
    assert main(["data", "inspect", "coco-karpathy-test"]) == 0
    assert "format albef, 25010 captions, 5000 images" in capsys.readouterr().out


def test_data_inspect_bad_file_reports_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "caps.csv"
    p.write_text("image_id,caption\n1,a cat\n2,\n", encoding="utf-8")
    assert main(["data", "inspect", str(p), "--input-format", "csv"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{p}, line 3: empty caption" in err
