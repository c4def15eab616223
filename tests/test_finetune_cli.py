"""`capeval finetune` commands: plan table, check-format, clear one-line errors; the divergence guard."""

from __future__ import annotations

import json
import math

import pytest

from capeval.cli import main


def test_plan_prints_the_family_table(capsys):
    assert main(["finetune", "plan", "--markdown", "--gpu-mem", "80"]) == 0
    out = capsys.readouterr().out
    assert "| internvl2-2b | 2.21B | full |" in out and out.count("| yes |") == 6


def test_plan_single_model_shows_terms(capsys):
    assert main(["finetune", "plan", "--model", "internvl2-8b", "--method", "full", "--gpu-mem", "80"]) == 0
    out = capsys.readouterr().out
    assert "8.08B" in out and "no" in out


def test_check_format_strict_exit_code(tmp_path, shared_datasets):
    from finetune.data import conversation

    refs = shared_datasets / "coco-karpathy-test" / "coco_test.json"
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps(conversation("a.jpg", "Describe the image in detail.", "there is a dog", "0")) + "\n")
    assert main(["finetune", "check-format", str(data), "--eval-prompt",
                 "Provide a one-sentence caption for the provided image.", "--eval-refs", str(refs), "--strict"]) == 2


def test_non_internvl_model_is_one_line_error(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "llava"}))
    (tmp_path / "d.jsonl").write_text("")
    rc = main(["finetune", "caption", "--model", str(tmp_path / "m"), "--images", str(tmp_path), "--out", str(tmp_path / "c.json")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "not an InternVL model" in err and "Traceback" not in err


def test_empty_data_file_is_one_line_error(tmp_path, capsys):
    pytest.importorskip("transformers")
    from finetune.tiny import build_tiny_internvl

    model = build_tiny_internvl(tmp_path / "tiny", ["a cat"])
    (tmp_path / "d.jsonl").write_text("\n")
    rc = main(["finetune", "train", "--model", str(model), "--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "o")])
    err = " ".join(capsys.readouterr().err.split())
    assert rc == 2 and "training data file is empty" in err


@pytest.mark.parametrize("logs, match", [
    ({"loss": float("nan")}, "loss is nan"),
    ({"loss": 1.0, "grad_norm": float("inf")}, "grad_norm is inf"),
    ({"loss": 50.0}, "exploded to more than 10x the lowest loss 2.0000"),
])
def test_divergence_guard_stops_with_a_clear_message(logs, match):
    pytest.importorskip("transformers")
    from types import SimpleNamespace

    from finetune.train import TrainingDiverged, _make_guard

    guard = _make_guard(10.0)
    state = SimpleNamespace(global_step=3)
    guard.on_log(None, state, None, logs={"loss": 2.0})
    state.global_step = 7
    with pytest.raises(TrainingDiverged, match=match):
        guard.on_log(None, state, None, logs=logs)
    assert math.isfinite(guard.best)


def test_shipped_distributed_configs_parse():
    from importlib import resources

    import yaml

    root = resources.files("finetune").joinpath("configs")
    for name, stage in (("zero2.json", 2), ("zero3.json", 3)):
        cfg = json.loads(root.joinpath(name).read_text())
        assert cfg["zero_optimization"]["stage"] == stage and cfg["bf16"]["enabled"] == "auto"
    for name, kind in (("accelerate_ddp.yaml", "MULTI_GPU"), ("accelerate_zero2.yaml", "DEEPSPEED"),
                       ("accelerate_zero3.yaml", "DEEPSPEED"), ("accelerate_fsdp.yaml", "FSDP")):
        cfg = yaml.safe_load(root.joinpath(name).read_text())
        assert cfg["distributed_type"] == kind and cfg["mixed_precision" if kind != "DEEPSPEED" else "distributed_type"]


@pytest.mark.slow
def test_gpu_memory_check_tiny_smoke_runs_on_cpu(capsys, monkeypatch):
    pytest.importorskip("peft")
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_memory_check.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--tiny", "--steps", "2"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert out.count("ok (loss") == 2 and "planner" in out


def test_plan_piped_at_80_columns_keeps_every_name_and_number():
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "capeval.cli", "finetune", "plan"], capture_output=True, text=True,
                         env=env, check=True).stdout
    for text in ("internvl2-26b", "internvl2-76b", "19,977.7M", "70,725.9M", "1273.0", "393.7", "usable"):
        assert text in out, text
    assert "…" not in out


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_plan_formats_carry_raw_numbers(capsys, fmt):
    import csv
    import io

    assert main(["finetune", "plan", "--model", "internvl2-2b", "--method", "full", "--format", fmt]) == 0
    text = capsys.readouterr().out
    rows = json.loads(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1 and int(rows[0]["params"]) == 2205754368 and rows[0]["fits"] == "yes"
    assert float(rows[0]["total"]) == pytest.approx(52.1, abs=0.05)


def test_eval_captions_is_refused_with_sharded_weights(monkeypatch):
    """Generation on process 0 cannot run when ZeRO-3/FSDP shard the weights: detected from the shipped configs."""
    from importlib import resources

    from finetune.train import TrainConfig, _sharded_weights

    root = resources.files("finetune").joinpath("configs")
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    cfg = lambda ds: TrainConfig(model="m", data="d", out="o", deepspeed=str(root.joinpath(ds)))  # noqa: E731
    assert _sharded_weights(cfg("zero3.json")) and not _sharded_weights(cfg("zero2.json"))
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert _sharded_weights(TrainConfig(model="m", data="d", out="o"))
