"""Fine-tune a native InternVL on caption conversations with the Hugging Face Trainer: full SFT or LoRA.

full: vision tower frozen, projector + language model trained (fp32 master weights, bf16 autocast on GPUs that
support it). lora: peft adapters on the language model's linear layers only (a regex that cannot match the vision
tower), optional trainable projector, optional merge. Loss is on the caption tokens (+ <|im_end|>) only.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from capeval.errors import CapevalError, InputError

# Full-match regex over module names: the 7 linear projections of the language model, never the vision tower.
LORA_TARGET = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


class TrainingDiverged(CapevalError):
    """Training loss became NaN/inf or exploded; raised by `DivergenceGuard`."""


@dataclass
class TrainConfig:
    """Everything `train` needs; defaults follow InternVL2's official 2nd-finetune recipe where one exists."""

    model: str
    data: str
    out: str
    method: str = "lora"
    epochs: float = 1.0
    max_steps: int = -1
    lr: float = 4e-5
    batch_size: int = 4
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.01
    lora_r: int = 16
    lora_alpha: int | None = None  # default 2 * r (InternVL's wrap_llm_lora)
    lora_dropout: float = 0.05
    train_projector: bool = False
    merge: bool = False
    eval_fraction: float = 0.05
    eval_steps: int = 200
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 10
    max_length: int = 4096
    max_num: int | None = None
    template: str | None = None
    eval_captions: int = 0  # caption, score and audit this many held-out images at each evaluation step
    eval_prompt: str | None = None  # the prompt evaluation uses (default: the model's, else InternVL's COCO prompt)
    format_refs: str | None = None  # evaluation references the format guard compares the training answers with
    allow_format_drift: bool = False
    precision: str = "auto"  # auto | bf16 | fp32
    gradient_checkpointing: bool = True
    resume: bool | str = False
    explode_factor: float = 10.0
    deepspeed: str | None = None
    seed: int = 42
    device: str | None = None


@dataclass
class TrainResult:
    """What a run did: where it saved, its loss curves and parameter counts."""

    out: Path
    method: str
    global_step: int
    train_losses: list[tuple[int, float]]
    eval_losses: list[tuple[int, float]]
    trainable_params: int
    total_params: int
    model_dir: Path | None = None
    adapter_dir: Path | None = None
    merged_dir: Path | None = None
    resumed_from: str | None = None
    runtime_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def first_loss(self) -> float:
        return self.train_losses[0][1] if self.train_losses else float("nan")

    @property
    def last_loss(self) -> float:
        return self.train_losses[-1][1] if self.train_losses else float("nan")


def _make_guard(explode_factor: float):
    from transformers import TrainerCallback

    class DivergenceGuard(TrainerCallback):
        """Stops training with a clear message when the logged loss is NaN/inf or explodes above
        `explode_factor` times the lowest loss seen so far."""

        def __init__(self) -> None:
            self.best: float | None = None
            self.best_step = 0

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D401 - Trainer hook
            logs = logs or {}
            for key in ("loss", "grad_norm"):
                v = logs.get(key)
                if v is not None and not math.isfinite(float(v)):
                    raise TrainingDiverged(
                        f"training stopped at step {state.global_step}: {key} is {v}"
                        + (f" (lowest loss {self.best:.4f} at step {self.best_step})" if self.best is not None else "")
                        + "; lower --lr, check the data, or --resume from an earlier checkpoint"
                    )
            loss = logs.get("loss")
            if loss is None:
                return
            loss = float(loss)
            if self.best is not None and loss > explode_factor * self.best:
                raise TrainingDiverged(
                    f"training stopped at step {state.global_step}: loss {loss:.4f} exploded to more than "
                    f"{explode_factor:g}x the lowest loss {self.best:.4f} (step {self.best_step}); lower --lr or "
                    "raise --explode-factor"
                )
            if self.best is None or loss < self.best:
                self.best, self.best_step = loss, state.global_step

    return DivergenceGuard()


def count_params(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def prepare_model(cfg: TrainConfig, device: str, resume_dir: str | None = None) -> Any:
    """Load the base model and set what trains: frozen vision tower always; projector + LLM (full) or LoRA.

    When resuming, the weights come from the checkpoint through `from_pretrained`: transformers 5.x saves InternVL
    checkpoints under legacy key names that the Trainer's own resume loading silently fails to match."""
    import torch

    from finetune.models import bf16_supported, load_model

    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and bf16_supported(device))
    if cfg.method == "full":
        # fp32 master weights; bf16 comes from autocast
        model = load_model(resume_dir or cfg.model, dtype=torch.float32)
        for p in model.model.vision_tower.parameters():
            p.requires_grad_(False)
        return model
    if cfg.method != "lora":
        raise InputError(f"unknown method {cfg.method!r}; expected 'full' or 'lora'")
    from peft import LoraConfig, get_peft_model

    model = load_model(cfg.model, dtype=torch.bfloat16 if use_bf16 else torch.float32)
    lcfg = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha if cfg.lora_alpha is not None else 2 * cfg.lora_r,
        lora_dropout=cfg.lora_dropout,
        bias="none",
        target_modules=LORA_TARGET,
        modules_to_save=["multi_modal_projector"] if cfg.train_projector else None,
        task_type="CAUSAL_LM",
    )
    if resume_dir and (Path(resume_dir) / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, resume_dir, is_trainable=True)
    else:
        model = get_peft_model(model, lcfg)
    for _, p in model.named_parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()  # trainable copies (projector) keep fp32 optimizer states
    bad = [n for n, p in model.named_parameters() if p.requires_grad and "vision_tower" in n]
    if bad:  # the regex guarantees this; fail loudly if a future transformers renames modules
        raise CapevalError(f"LoRA reached the vision tower ({bad[:3]}); refusing to train")
    return model


def _save_sidecar(folder: Path, cfg: TrainConfig, processor: Any, **extra: Any) -> None:
    from finetune.models import RUN_META

    meta = {
        "template": processor.template,
        "system_message": processor.chat.system_message,
        "max_num": processor.spec.max_num,
        "prompt": extra.pop("prompt", None),
        "base_model": str(Path(cfg.model).resolve()) if Path(cfg.model).exists() else cfg.model,
        "method": cfg.method,
        **extra,
    }
    (folder / RUN_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False))


def _checkpointing_args(enabled: bool) -> dict[str, Any]:
    """Gradient checkpointing options under the name this transformers version uses (renamed in 5.x)."""
    import inspect

    from transformers import TrainingArguments

    params = inspect.signature(TrainingArguments).parameters
    name = "activation_checkpointing" if "activation_checkpointing" in params else "gradient_checkpointing"
    return {name: enabled, f"{name}_kwargs": {"use_reentrant": False} if enabled else None}


def _sharded_weights(cfg: TrainConfig) -> bool:
    """Whether the run shards parameters across processes (DeepSpeed ZeRO-3, or FSDP under `accelerate launch`)."""
    import os

    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true"):
        return True
    if cfg.deepspeed and Path(cfg.deepspeed).is_file():
        try:
            stage = json.loads(Path(cfg.deepspeed).read_text()).get("zero_optimization", {}).get("stage")
        except (json.JSONDecodeError, AttributeError):
            return False
        return stage == 3
    return False


def train(cfg: TrainConfig) -> TrainResult:
    """Run full SFT or LoRA on `cfg.data`, saving checkpoints, the final model/adapter and a loss log."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    from finetune import caption_eval
    from finetune.data import ConversationDataset, read_conversations, split_by_image
    from finetune.format_guard import guard_training
    from finetune.models import DEFAULT_PROMPT, bf16_supported, load_processor, pick_device, read_run_meta, resolve_model

    t0 = time.time()
    cfg.model = str(resolve_model(cfg.model))
    device = pick_device(cfg.device)
    set_seed(cfg.seed)
    processor = load_processor(cfg.model, max_num=cfg.max_num, template=cfg.template)
    samples = read_conversations(cfg.data)
    eval_prompt = cfg.eval_prompt or read_run_meta(cfg.model).get("prompt") or DEFAULT_PROMPT
    fmt = guard_training(samples, eval_prompt, cfg.format_refs, allow_drift=cfg.allow_format_drift)
    train_s, eval_s = split_by_image(samples, cfg.eval_fraction, cfg.seed)
    eval_images = caption_eval.pick_eval_images(eval_s, cfg.eval_captions)
    if eval_images and _sharded_weights(cfg):
        raise InputError("--eval-captions generates on process 0 only, which cannot work with sharded weights "
                         "(ZeRO-3 / FSDP); use ZeRO-2 or DDP, or leave --eval-captions off")
    prompts = sorted({s.prompt for s in samples if s.image is not None})
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)

    resume: bool | str | None = None
    if cfg.resume:
        if cfg.resume is True or cfg.resume == "last":
            ckpts = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
            if not ckpts:
                raise InputError("--resume: no checkpoint-* folder to resume from", path=str(out))
            resume = str(ckpts[-1])
        else:
            if not Path(str(cfg.resume)).is_dir():
                raise InputError("--resume: checkpoint folder not found", path=str(cfg.resume))
            resume = str(cfg.resume)

    model = prepare_model(cfg, device, resume if isinstance(resume, str) else None)
    trainable, total = count_params(model)
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and bf16_supported(device))
    has_eval = bool(eval_s)
    args = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="cosine",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.eval_steps if has_eval else None,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        bf16=use_bf16,
        **_checkpointing_args(cfg.gradient_checkpointing),
        remove_unused_columns=False,
        label_names=["labels"],
        prediction_loss_only=True,
        report_to="none",
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        deepspeed=cfg.deepspeed,
        seed=cfg.seed,
        disable_tqdm=False,
    )
    callbacks = [_make_guard(cfg.explode_factor)]
    captions_cb = None
    if eval_images:
        captions_cb = caption_eval.make_callback(processor, eval_images, eval_prompt, out, batch_size=cfg.batch_size)
        callbacks.append(captions_cb)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ConversationDataset(train_s, processor, cfg.max_length),
        eval_dataset=ConversationDataset(eval_s, processor, cfg.max_length) if has_eval else None,
        data_collator=processor.collate,
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=resume)
    if captions_cb is not None:  # the final model's point, when the last step was not an evaluation step
        captions_cb._run(trainer.state, model)

    history = trainer.state.log_history
    train_losses = [(int(h["step"]), float(h["loss"])) for h in history if "loss" in h]
    eval_losses = [(int(h["step"]), float(h["eval_loss"])) for h in history if "eval_loss" in h]
    result = TrainResult(
        out=out, method=cfg.method, global_step=int(trainer.state.global_step), train_losses=train_losses,
        eval_losses=eval_losses, trainable_params=trainable, total_params=total, resumed_from=resume,
    )
    result.extra["format_warnings"] = [c.message for c in fmt.warnings]
    if captions_cb is not None:
        result.extra["caption_eval"] = captions_cb.points
    prompt = prompts[0] if len(prompts) == 1 else None
    if trainer.is_world_process_zero():
        if cfg.method == "full":
            result.model_dir = out / "model"
            trainer.save_model(str(result.model_dir))
            processor.tokenizer.save_pretrained(str(result.model_dir))
            _save_sidecar(result.model_dir, cfg, processor, prompt=prompt)
        else:
            result.adapter_dir = out / "adapter"
            model.save_pretrained(str(result.adapter_dir))
            processor.tokenizer.save_pretrained(str(result.adapter_dir))
            _save_sidecar(result.adapter_dir, cfg, processor, prompt=prompt)
            if cfg.merge:
                result.merged_dir = out / "merged"
                merged = model.merge_and_unload()
                merged.save_pretrained(str(result.merged_dir))
                processor.tokenizer.save_pretrained(str(result.merged_dir))
                _save_sidecar(result.merged_dir, cfg, processor, prompt=prompt, merged_from="adapter")
        result.runtime_s = time.time() - t0
        log = {
            "config": asdict(cfg),
            "global_step": result.global_step,
            "train_losses": train_losses,
            "eval_losses": eval_losses,
            "trainable_params": trainable,
            "total_params": total,
            "resumed_from": resume,
            "runtime_s": round(result.runtime_s, 2),
            "n_train": len(train_s),
            "n_eval": len(eval_s),
            "format_warnings": result.extra["format_warnings"],
            "caption_eval": caption_eval.points_as_dicts(result.extra.get("caption_eval", [])),
            "torch": torch.__version__,
        }
        (out / "train_log.json").write_text(json.dumps(log, indent=2))
    return result


def load_for_inference(model: str, adapter: str | None = None, dtype: Any = None, device: str | None = None) -> Any:
    """A native InternVL, with a LoRA adapter applied (not merged) when given, in eval mode."""
    from finetune.models import load_model

    m = load_model(model, dtype=dtype)
    if adapter:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise InputError("not a LoRA adapter folder: adapter_config.json is missing", path=str(adapter))
        m = PeftModel.from_pretrained(m, adapter)
    if device:
        m.to(device)
    return m.eval()


def merge_adapter(model: str, adapter: str, out: str) -> Path:
    """Merge a LoRA adapter into its base model and save a plain native InternVL folder."""
    import shutil

    from finetune.models import RUN_META

    m = load_for_inference(model, adapter)
    merged = m.merge_and_unload()
    dst = Path(out)
    merged.save_pretrained(str(dst))
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(adapter if (Path(adapter) / "tokenizer_config.json").is_file() else model).save_pretrained(str(dst))
    if (Path(adapter) / RUN_META).is_file():
        shutil.copy(Path(adapter) / RUN_META, dst / RUN_META)
    return dst
