"""`capeval finetune`: convert InternVL2, prepare data, train (full/LoRA), caption, plan memory, check the format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from capeval.cli.output import FormatOpt, OutputFormat, emit

ModelOpt = Annotated[str, typer.Option("--model", help="Native InternVL folder (or a cached hub id such as "
                                       "OpenGVLab/InternVL3-1B-hf); convert InternVL2 first.")]
PROMPT_HELP = "Prompt put after the image (default: 'Provide a one-sentence caption for the provided image.')."


def register(app: typer.Typer) -> None:
    ft = typer.Typer(help="InternVL fine-tuning: convert, prepare, train (full SFT / LoRA), caption, plan, check-format.",
                     no_args_is_help=True)
    app.add_typer(ft, name="finetune")

    @ft.command("convert")
    def convert_cmd(
        src: Annotated[Path, typer.Argument(help="Original InternVL2 folder (config.json with model_type internvl_chat).")],
        dst: Annotated[Path, typer.Argument(help="Output folder for the native InternVL model.")],
        dtype: Annotated[Optional[str], typer.Option(help="Save as this dtype (bfloat16, float32); default: as stored.")] = None,
    ) -> None:
        """Convert an InternVL2 checkpoint (1B Qwen2, 2B/8B/26B InternLM2, 40B/76B Llama) to the native format."""
        from finetune.convert import convert

        r = convert(src, dst, dtype=dtype)
        typer.echo(f"converted {r.n_source_tensors} tensors ({r.llm} LLM) -> {r.n_target_tensors} native tensors, "
                   f"{r.n_params / 1e9:.3f}B parameters: {r.out}")

    @ft.command("prepare")
    def prepare_cmd(
        refs: Annotated[Path, typer.Argument(help="Reference captions in any format capeval reads.")],
        images: Annotated[Path, typer.Option("--images", help="Folder with the images (searched recursively).")],
        out: Annotated[Path, typer.Option("--out", help="Output JSONL (InternVL conversation format).")],
        prompt: Annotated[Optional[str], typer.Option(help=PROMPT_HELP)] = None,
        audit: Annotated[Optional[Path], typer.Option(help="Audit output folder: train on its corrected or kept references.")] = None,
        use: Annotated[str, typer.Option(help="With --audit: 'fixed' or 'kept'.")] = "fixed",
        keep_ids: Annotated[Optional[Path], typer.Option(help="File of caption ids to keep, one per line.")] = None,
        general: Annotated[Optional[Path], typer.Option(help="General-data JSONL to mix in (limits forgetting).")] = None,
        mix_ratio: Annotated[float, typer.Option(help="General lines per caption line (e.g. 1.0 for 1:1).")] = 0.0,
        allow_missing: Annotated[bool, typer.Option(help="Skip captions whose image file is missing.")] = False,
        seed: int = 0,
    ) -> None:
        """Write one conversation line per reference caption."""
        from finetune.data import prepare
        from finetune.models import DEFAULT_PROMPT

        r = prepare(refs, images, out, prompt=prompt or DEFAULT_PROMPT, keep_ids=keep_ids, audit=audit, use=use,
                    general=general, mix_ratio=mix_ratio, allow_missing=allow_missing, seed=seed)
        typer.echo(f"wrote {r.n_captions} caption lines for {r.n_images} images"
                   + (f" + {r.n_general} general lines" if r.n_general else "")
                   + (f" ({len(r.missing_images)} images without a file skipped)" if r.missing_images else "")
                   + f": {r.out}")

    @ft.command("train")
    def train_cmd(
        model: ModelOpt,
        data: Annotated[Path, typer.Option("--data", help="Training JSONL (from `capeval finetune prepare`).")],
        out: Annotated[Path, typer.Option("--out", help="Output folder (checkpoints, model/adapter, train_log.json).")],
        method: Annotated[str, typer.Option(help="'full' (projector + LLM) or 'lora' (LLM adapters).")] = "lora",
        epochs: float = 1.0,
        max_steps: Annotated[int, typer.Option(help="Stop after this many optimizer steps (overrides epochs).")] = -1,
        lr: float = 4e-5,
        batch_size: Annotated[int, typer.Option(help="Per-device batch size.")] = 4,
        grad_accum: int = 1,
        warmup_ratio: float = 0.03,
        weight_decay: float = 0.01,
        lora_r: int = 16,
        lora_alpha: Annotated[Optional[int], typer.Option(help="Default 2 * r.")] = None,
        lora_dropout: float = 0.05,
        train_projector: Annotated[bool, typer.Option(help="LoRA: also train the MLP projector.")] = False,
        merge: Annotated[bool, typer.Option(help="LoRA: also save the adapter merged into the base model.")] = False,
        eval_fraction: Annotated[float, typer.Option(help="Share of images held out for eval loss.")] = 0.05,
        eval_steps: int = 200,
        save_steps: int = 200,
        logging_steps: int = 10,
        max_length: int = 4096,
        max_num: Annotated[Optional[int], typer.Option(help="Max tiles per image (default: the model folder's, else 6 "
                                                       "as InternVL's recipe).")] = None,
        precision: Annotated[str, typer.Option(help="auto (bf16 on GPUs that support it), bf16 or fp32.")] = "auto",
        gradient_checkpointing: bool = True,
        resume: Annotated[Optional[str], typer.Option(help="'last' or a checkpoint folder.")] = None,
        explode_factor: Annotated[float, typer.Option(help="Stop when loss exceeds this times the lowest loss.")] = 10.0,
        deepspeed: Annotated[Optional[Path], typer.Option(help="DeepSpeed JSON (finetune/configs/zero2.json ...).")] = None,
        eval_captions: Annotated[int, typer.Option(help="Caption, score (BLEU-4, CIDEr-D) and audit this many held-out "
                                                   "images before training and at each evaluation step; curves go to "
                                                   "caption_eval.jsonl/.csv/.png in --out.")] = 0,
        eval_prompt: Annotated[Optional[str], typer.Option(help="Prompt used at evaluation (default: the model's, "
                                                           "else the COCO caption prompt).")] = None,
        format_refs: Annotated[Optional[str], typer.Option(help="Evaluation references (file or dataset name) the "
                                                           "format guard compares the training answers with.")] = None,
        allow_format_drift: Annotated[bool, typer.Option(help="Train even when the format guard finds drift.")] = False,
        seed: int = 42,
    ) -> None:
        """Fine-tune with the Hugging Face Trainer (vision tower frozen; multi-GPU via accelerate/torchrun)."""
        from finetune.train import TrainConfig, train

        cfg = TrainConfig(
            model=model, data=str(data), out=str(out), method=method, epochs=epochs, max_steps=max_steps, lr=lr,
            batch_size=batch_size, grad_accum=grad_accum, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
            lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, train_projector=train_projector,
            merge=merge, eval_fraction=eval_fraction, eval_steps=eval_steps, save_steps=save_steps,
            logging_steps=logging_steps, max_length=max_length, max_num=max_num, precision=precision,
            gradient_checkpointing=gradient_checkpointing, resume=resume or False, explode_factor=explode_factor,
            deepspeed=str(deepspeed) if deepspeed else None, seed=seed, eval_captions=eval_captions,
            eval_prompt=eval_prompt, format_refs=format_refs, allow_format_drift=allow_format_drift,
        )
        r = train(cfg)
        typer.echo(f"{r.method}: {r.global_step} steps, loss {r.first_loss:.4f} -> {r.last_loss:.4f}"
                   + (f", eval loss {r.eval_losses[-1][1]:.4f}" if r.eval_losses else "")
                   + f", {r.trainable_params:,} of {r.total_params:,} parameters trained")
        for label, path in (("model", r.model_dir), ("adapter", r.adapter_dir), ("merged", r.merged_dir)):
            if path:
                typer.echo(f"{label}: {path}")
        for warning in r.extra.get("format_warnings", []):
            typer.echo(f"format warning (allowed): {warning}", err=True)
        points = r.extra.get("caption_eval") or []
        if points:
            first, last = points[0], points[-1]
            typer.echo(f"held-out captions ({last.n_images} images), step {first.step} -> {last.step}: "
                       f"BLEU-4 {first.bleu4:.1f} -> {last.bleu4:.1f}, CIDEr-D {first.cider_d:.1f} -> {last.cider_d:.1f}, "
                       f"language errors per 100 captions {first.total_errors_per_100:.0f} -> "
                       f"{last.total_errors_per_100:.0f}: {r.out / 'caption_eval.png'}")

    @ft.command("caption")
    def caption_cmd(
        model: ModelOpt,
        out: Annotated[Path, typer.Option("--out", help="COCO results JSON to write (a .card.json goes next to it).")],
        images: Annotated[Optional[Path], typer.Option("--images", help="Folder of images.")] = None,
        ids: Annotated[Optional[Path], typer.Option("--ids", help="File of image ids or paths, one per line.")] = None,
        adapter: Annotated[Optional[str], typer.Option(help="LoRA adapter folder (from `train --method lora`).")] = None,
        prompt: Annotated[Optional[str], typer.Option(help=PROMPT_HELP + " Default: the training prompt.")] = None,
        template: Annotated[Optional[str], typer.Option(help="'internlm2-chat', 'Hermes-2' or 'chatml' (default: the "
                                                        "model folder's, i.e. the checkpoint's own).")] = None,
        max_num: Annotated[Optional[int], typer.Option(help="Max tiles per image (default: the model folder's, else 6 "
                                                       "as InternVL's COCO evaluation).")] = None,
        batch_size: int = 8,
        max_new_tokens: int = 30,
        min_new_tokens: Annotated[int, typer.Option(help="8 as InternVL's COCO caption evaluation.")] = 8,
        num_beams: Annotated[int, typer.Option(help="1 = greedy.")] = 1,
        device: Optional[str] = None,
    ) -> None:
        """Caption images (batched, greedy by default) into COCO results JSON for `capeval score`."""
        from finetune.caption import caption

        r = caption(model, out, images=images, ids=ids, adapter=adapter, prompt=prompt, template=template,
                    max_num=max_num, batch_size=batch_size, max_new_tokens=max_new_tokens,
                    min_new_tokens=min_new_tokens, num_beams=num_beams, device=device)
        typer.echo(f"{len(r.captions)} captions in {r.seconds:.1f}s: {r.out} (run card {r.card})")

    @ft.command("plan")
    def plan_cmd(
        model: Annotated[str, typer.Option("--model", help="internvl2-1b|2b|4b|8b|26b|40b|76b, 'all', or a config folder.")] = "all",
        method: Annotated[str, typer.Option(help="full, lora or both.")] = "both",
        gpu_mem: Annotated[float, typer.Option("--gpu-mem", help="GPU memory in GiB.")] = 80.0,
        batch: Annotated[int, typer.Option(help="Per-device batch size.")] = 4,
        seq: Annotated[int, typer.Option(help="Sequence length (tokens, images included).")] = 4096,
        tiles: Annotated[int, typer.Option(help="Tiles per image (max_num + thumbnail).")] = 7,
        lora_r: int = 16,
        train_projector: bool = False,
        reserve: Annotated[float, typer.Option(help="Share of GPU memory kept free (CUDA context, fragmentation).")] = 0.10,
        fmt: FormatOpt = OutputFormat.table,
        markdown: Annotated[bool, typer.Option(help="Same as --format markdown.")] = False,
    ) -> None:
        """Estimate weights, gradients, optimizer states and activations, and whether training fits one GPU."""
        from finetune.plan import FAMILY_ORDER, PLAN_FORMATTERS, plan, plan_rows

        methods = ("full", "lora") if method == "both" else (method,)
        models = FAMILY_ORDER if model == "all" else (model,)
        plans = [plan(m, me, gpu_mem=gpu_mem, batch=batch, seq=seq, tiles=tiles, lora_r=lora_r,
                      train_projector=train_projector, reserve=reserve) for m in models for me in methods]
        emit(plan_rows(plans), OutputFormat.markdown if markdown else fmt, formatters=PLAN_FORMATTERS,
             title=f"GPU memory per device (GiB): batch {batch}, seq {seq}, {gpu_mem:g} GiB GPU, {reserve:.0%} reserve, "
                   "bf16 autocast + fp32 AdamW, gradient checkpointing")

    @ft.command("check-format")
    def check_format_cmd(
        data: Annotated[Path, typer.Argument(help="Training JSONL.")],
        eval_prompt: Annotated[str, typer.Option("--eval-prompt", help="The prompt used at evaluation.")],
        eval_refs: Annotated[Path, typer.Option("--eval-refs", help="Evaluation references (any format capeval reads).")],
        strict: Annotated[bool, typer.Option(help="Fail (exit code 2) when there are warnings.")] = False,
        fmt: FormatOpt = OutputFormat.table,
    ) -> None:
        """Warn when training targets drift from what evaluation expects (length, casing, punctuation, vocabulary, prompt)."""
        from finetune.format_guard import check_format

        rep = check_format(data, eval_prompt, eval_refs)
        rows = [{"check": c.name, "training": c.train, "evaluation": c.eval,
                 "status": "ok" if c.ok else f"warning: {c.message}"} for c in rep.checks]
        emit(rows, fmt, title=f"format check: {rep.n_train} training answers vs {rep.n_eval} evaluation references")
        if strict and not rep.ok:
            from capeval.errors import CapevalError

            raise CapevalError(f"{len(rep.warnings)} format warning(s): " + "; ".join(c.message for c in rep.warnings))
