"""Full SFT, LoRA, resume, merge and captioning on a tiny random InternVL with real COCO captions (CPU, 1 thread)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from PIL import Image, ImageDraw  # noqa: E402

N_IMAGES = 6
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"]


def _mean(xs):
    return sum(xs) / len(xs)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, shared_datasets):
    """Generated images (a colour + a shape each, varied sizes for 1- and multi-tile grids), real captions,
    an InternVL conversation JSONL and a tiny random InternVL saved to disk."""
    torch.set_num_threads(1)
    from finetune.data import conversation
    from finetune.models import DEFAULT_PROMPT
    from finetune.tiny import build_tiny_internvl

    data = json.loads((shared_datasets / "coco-karpathy-test" / "coco_test.json").read_text())[:N_IMAGES]
    root = tmp_path_factory.mktemp("ft")
    img_dir = root / "images"
    img_dir.mkdir()
    lines, refs = [], {}
    for i, item in enumerate(data):
        name = Path(item["image"]).name
        w, h = (56, 28) if i % 2 else (30, 30)
        im = Image.new("RGB", (w, h), COLOURS[i])
        d = ImageDraw.Draw(im)
        d.ellipse((2 + i, 2, w // 2 + i, h - 2), fill=COLOURS[-1 - i])
        im.save(img_dir / name)
        cap = item["caption"][0].strip()
        refs[name] = [c.strip() for c in item["caption"]]
        lines.append(json.dumps(conversation(name, DEFAULT_PROMPT, cap, f"{i}")))
    (img_dir / "train.jsonl").write_text("\n".join(lines) + "\n")
    model_dir = build_tiny_internvl(root / "base", [c for caps in refs.values() for c in caps], tile=28, hidden=48, max_num=2)
    return {"root": root, "images": img_dir, "data": img_dir / "train.jsonl", "base": model_dir, "refs": refs}


def _cfg(ws, method, out, **kw):
    from finetune.train import TrainConfig

    base = dict(model=str(ws["base"]), data=str(ws["data"]), out=str(out), method=method, max_steps=30, lr=3e-3,
                batch_size=5, eval_fraction=0.2, eval_steps=15, save_steps=15, logging_steps=1, warmup_ratio=0.1,
                precision="fp32", seed=0)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def full_run(workspace):
    from finetune.train import train

    return train(_cfg(workspace, "full", workspace["root"] / "full"))


@pytest.fixture(scope="module")
def lora_run(workspace):
    from finetune.train import train

    return train(_cfg(workspace, "lora", workspace["root"] / "lora", lr=2e-2, lora_r=8, merge=True))


def _state(path):
    from finetune.models import load_model

    return {k: v.clone() for k, v in load_model(path).state_dict().items()}


@pytest.mark.slow
def test_full_sft_overfits_and_keeps_vision_tower_bit_identical(workspace, full_run):
    losses = [l for _, l in full_run.train_losses]
    assert _mean(losses[-3:]) <= 0.5 * _mean(losses[:3]), losses
    assert full_run.eval_losses and all(math.isfinite(l) for _, l in full_run.eval_losses)
    before, after = _state(workspace["base"]), _state(full_run.model_dir)
    vision = [k for k in before if ".vision_tower." in k]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)
    trained = [k for k in before if ".language_model." in k or "multi_modal_projector" in k]
    assert all(not torch.equal(before[k], after[k]) for k in trained if k.endswith("weight") and "norm" not in k)
    assert full_run.trainable_params == sum(v.numel() for k, v in before.items() if ".vision_tower." not in k)


@pytest.mark.slow
def test_lora_overfits_and_changes_only_adapter_weights(workspace, lora_run):
    from finetune.train import load_for_inference

    losses = [l for _, l in lora_run.train_losses]
    assert _mean(losses[-3:]) <= 0.5 * _mean(losses[:3]), losses
    before = _state(workspace["base"])
    peft_model = load_for_inference(str(workspace["base"]), str(lora_run.adapter_dir))
    lora_names = []
    for name, p in peft_model.named_parameters():
        if "lora_" in name:
            lora_names.append(name)
            assert "vision_tower" not in name
            continue
        key = name.replace("base_model.model.", "", 1).replace(".base_layer", "")
        assert torch.equal(p, before[key]), f"{key} changed under LoRA"
    assert lora_names and any(float(p.abs().sum()) > 0 for n, p in peft_model.named_parameters() if "lora_B" in n)
    assert lora_run.trainable_params == sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)


@pytest.mark.slow
def test_adapter_reload_and_merge_give_identical_logits(workspace, lora_run):
    from finetune.models import load_model, load_processor
    from finetune.tiling import load_image
    from finetune.train import load_for_inference, merge_adapter

    proc = load_processor(lora_run.adapter_dir.parent / "merged")
    img = load_image(next(workspace["images"].glob("*.jpg")))
    batch = proc.collate([proc.encode(img, "Provide a one-sentence caption for the provided image.", "A man")])
    batch.pop("labels")
    with torch.no_grad():
        unmerged = load_for_inference(str(workspace["base"]), str(lora_run.adapter_dir))(**batch).logits
        merged_at_train = load_model(lora_run.merged_dir)(**batch).logits
        merged_later = load_model(merge_adapter(str(workspace["base"]), str(lora_run.adapter_dir), str(workspace["root"] / "m2")))(**batch).logits
        base = load_model(workspace["base"])(**batch).logits
    assert torch.allclose(unmerged, merged_at_train, atol=1e-5)
    assert torch.allclose(unmerged, merged_later, atol=1e-5)
    assert not torch.allclose(unmerged, base, atol=1e-3)


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint(workspace, full_run):
    from finetune.train import train

    out = workspace["root"] / "full"
    assert (out / "checkpoint-30").is_dir()
    res = train(_cfg(workspace, "full", out, max_steps=36, resume=True))
    assert res.resumed_from.endswith("checkpoint-30")
    assert res.global_step == 36
    new_steps = [s for s, _ in res.train_losses if s > 30]
    assert new_steps[0] == 31 and new_steps[-1] == 36
    # the resumed run starts from the trained weights, not from scratch
    assert res.train_losses[-1][1] < 0.5 * full_run.train_losses[0][1]


@pytest.mark.slow
def test_caption_writes_coco_results_and_run_card(workspace, full_run):
    from finetune.caption import caption

    out = workspace["root"] / "caps" / "tuned.json"
    run = caption(str(full_run.model_dir), out, images=workspace["images"], batch_size=4, max_new_tokens=20, progress=False)
    rows = json.loads(out.read_text())
    assert len(rows) == N_IMAGES
    assert all(isinstance(r["image_id"], int) and isinstance(r["caption"], str) and r["caption"] for r in rows)
    card = json.loads(run.card.read_text())
    assert card["prompt"] == "Provide a one-sentence caption for the provided image."
    assert card["decoding"]["greedy"] and card["decoding"]["max_new_tokens"] == 20
    assert {"torch", "transformers"} <= set(card["versions"])
    # an overfit model reproduces its training captions on training images (tokenizer decode adds spaces)
    train_caps = {Path(json.loads(l)["image"]).name: json.loads(l)["conversations"][1]["value"]
                  for l in workspace["data"].read_text().splitlines()}
    from capeval.records import normalize_image_id

    by_id = {normalize_image_id(k): v for k, v in train_caps.items()}
    exact = sum(by_id[str(r["image_id"])].replace(" ", "") == r["caption"].replace(" ", "") for r in rows)
    assert exact >= N_IMAGES - 2, rows


@pytest.mark.slow
def test_caption_output_is_accepted_by_capeval_score(workspace, full_run):
    io = pytest.importorskip("capeval.io")
    metrics = pytest.importorskip("capeval.metrics")
    if not hasattr(io, "load_captions") or not hasattr(metrics, "score_systems"):
        pytest.skip("capeval.io.load_captions / capeval.metrics.score_systems not built yet")
    from capeval.records import CaptionSet
    from finetune.caption import caption

    out = workspace["root"] / "caps" / "scored.json"
    caption(str(full_run.model_dir), out, images=workspace["images"], batch_size=6, max_new_tokens=20, progress=False)
    cands = io.load_captions(out)
    assert len(cands.image_ids()) == N_IMAGES
    refs = CaptionSet.from_mapping(workspace["refs"])
    report = metrics.score_systems({"tuned": cands}, refs, ["bleu"], progress=False)
    assert 0 <= float(report.corpus.iloc[0]["bleu4"]) <= 1


@pytest.mark.slow
def test_lora_resume_continues_from_adapter_checkpoint(workspace, lora_run):
    from finetune.train import train

    out = workspace["root"] / "lora"
    res = train(_cfg(workspace, "lora", out, lr=2e-2, lora_r=8, max_steps=33, resume=True))
    assert res.resumed_from.endswith("checkpoint-30") and res.global_step == 33
    assert res.train_losses[-1][1] < 0.5 * lora_run.train_losses[0][1]


@pytest.mark.slow
def test_lora_with_trainable_projector_changes_only_adapters_and_projector(workspace):
    from finetune.train import load_for_inference, train

    res = train(_cfg(workspace, "lora", workspace["root"] / "lora_proj", lora_r=4, max_steps=4, lr=1e-2,
                     train_projector=True, eval_fraction=0.0, save_steps=100))
    before = _state(workspace["base"])
    model = load_for_inference(str(workspace["base"]), str(res.adapter_dir))
    changed = set()
    for name, p in model.named_parameters():
        if "lora_" in name:
            continue
        key = name.replace("base_model.model.", "", 1).replace(".base_layer", "")
        key = key.replace(".modules_to_save.default", "").replace(".original_module", "")
        if not torch.equal(p, before[key]):
            changed.add(key)
    assert changed and all(k.startswith("model.multi_modal_projector.") for k in changed), changed
    n_proj = sum(v.numel() for k, v in before.items() if "multi_modal_projector" in k)
    n_lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert res.trainable_params == n_proj + n_lora


@pytest.mark.slow
def test_caption_ids_file_selects_images_and_unknown_id_is_clear_error(workspace, full_run):
    from capeval.errors import InputError
    from finetune.caption import caption

    ids = workspace["root"] / "ids.txt"
    ids.write_text("391895\nCOCO_val2014_000000060623.jpg\n")
    run = caption(str(full_run.model_dir), workspace["root"] / "two.json", images=workspace["images"], ids=ids,
                  max_new_tokens=5, progress=False)
    assert sorted(run.captions) == ["391895", "60623"]
    ids.write_text("391895\n999999\n")
    with pytest.raises(InputError, match=r"ids.txt, line 2: image '999999' not found"):
        caption(str(full_run.model_dir), workspace["root"] / "x.json", images=workspace["images"], ids=ids, progress=False)


@pytest.mark.slow
def test_exploding_loss_stops_a_real_run_with_a_clear_message(workspace):
    from finetune.train import TrainingDiverged, train

    with pytest.raises(TrainingDiverged, match=r"training stopped at step \d+: loss .* exploded to more than 10x"):
        train(_cfg(workspace, "full", workspace["root"] / "diverge", lr=5.0, max_steps=10, warmup_ratio=0.0,
                   eval_fraction=0.0, save_steps=100))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "lora"])
def test_train_eval_captions_writes_metric_and_audit_curves(workspace, method, capsys):
    """`train --eval-captions`: held-out captions scored (BLEU-4, CIDEr-D) and audited before training and at
    every evaluation step, into caption_eval.jsonl/.csv/.png and train_log.json."""
    import csv

    from capeval.cli import main
    from finetune.caption_eval import ERROR_CATEGORIES

    out = workspace["root"] / f"evalcap-{method}"
    rc = main(["finetune", "train", "--model", str(workspace["base"]), "--data", str(workspace["data"]),
               "--out", str(out), "--method", method, "--max-steps", "4", "--eval-steps", "2", "--save-steps", "100",
               "--eval-fraction", "0.34", "--eval-captions", "2", "--batch-size", "4", "--lr", "3e-3",
               "--precision", "fp32", "--lora-r", "4"])
    assert rc == 0
    assert "held-out captions (2 images), step 0 -> 4: BLEU-4" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "caption_eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4] and all(r["n_images"] == 2 for r in rows)
    for r in rows:
        assert 0 <= r["bleu4"] <= 100 and r["cider_d"] >= 0
        errs = [r[f"errors_{c}"] for c in ERROR_CATEGORIES]
        assert all(e in (0, 50, 100) for e in errs) and r["errors_total"] == sum(errs)
    with (out / "caption_eval.csv").open() as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [0, 2, 4]
    assert (out / "caption_eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    caps = [json.loads(line) for line in (out / "caption_eval_captions.jsonl").read_text().splitlines()]
    assert len(caps) == 6 and {c["step"] for c in caps} == {0, 2, 4}
    log = json.loads((out / "train_log.json").read_text())
    assert [p["step"] for p in log["caption_eval"]] == [0, 2, 4]


def test_score_and_audit_are_capeval_metrics_and_audit():
    """The curve values are capeval's BLEU-4/CIDEr-D (x 100) and the audit's caption-level categories per 100."""
    from pathlib import Path as P

    from capeval.metrics import compute_metric_many
    from finetune.caption_eval import EvalImage, score_and_audit

    images = [EvalImage("1", P("a.jpg"), ("a man riding a bicycle down the street", "a man on a bike")),
              EvalImage("2", P("b.jpg"), ("two dogs playing in the grass", "dogs on a lawn"))]
    caps = ["a man riding a bicyle down the street", "two dogs playing in the grass"]
    point = score_and_audit(7, images, caps)
    ref = {r.name: r.corpus for r in compute_metric_many(["bleu", "cider"], caps, [list(i.references) for i in images])}
    assert point.step == 7 and point.bleu4 == pytest.approx(100 * ref["bleu4"])
    assert point.cider_d == pytest.approx(100 * ref["cider"])
    assert point.errors_per_100["spelling"] == 50 and point.total_errors_per_100 == 50


@pytest.mark.slow
def test_format_guard_stops_training_before_it_starts(workspace, tmp_path, capsys):
    from capeval.cli import main
    from finetune.data import conversation

    lines = [json.loads(l) for l in workspace["data"].read_text().splitlines()]
    drifted = tmp_path / "drift.jsonl"
    drifted.write_text("".join(json.dumps(conversation(str(workspace["images"] / l["image"]), "Describe the image in detail.",
                                                        l["conversations"][1]["value"], l["id"])) + "\n" for l in lines))
    args = ["finetune", "train", "--model", str(workspace["base"]), "--data", str(drifted), "--out", str(tmp_path / "o"),
            "--method", "full", "--max-steps", "1", "--eval-fraction", "0", "--save-steps", "100", "--precision", "fp32"]
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "drifts from the evaluation format" in err and "--allow-format-drift" in err
    assert not (tmp_path / "o").exists()
    assert main(args + ["--allow-format-drift"]) == 0
    assert "format warning (allowed): evaluation prompt differs" in capsys.readouterr().err
