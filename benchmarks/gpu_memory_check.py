"""Measured peak GPU memory of InternVL2-shaped training steps next to `capeval finetune plan`'s estimate.

Builds random-weight InternVL2-2B- and 8B-shaped native models (meta-device init, materialised on the GPU),
runs a few full-SFT and LoRA steps exactly as `finetune.train` sets them up (full: fp32 master weights + bf16
autocast, vision tower frozen; LoRA: bf16 base, fp32 adapters), with gradient checkpointing and AdamW, and
prints torch.cuda.max_memory_allocated beside the planner. One run takes a few minutes on an 80-141 GB GPU.

    python benchmarks/gpu_memory_check.py                      # 2B and 8B, full and LoRA, batch 1, seq 2048
    python benchmarks/gpu_memory_check.py --batch 2 --seq 4096 --models 2b
    python benchmarks/gpu_memory_check.py --tiny               # CPU smoke test of the same code path (no GPU)

Configurations the planner says cannot fit the device are skipped (use --force to try them and report OOM).
"""

from __future__ import annotations

import argparse
import gc
import time

import torch

from finetune.plan import GIB, arch_from_dict, family_arch, plan
from finetune.train import LORA_TARGET


def build_config(key: str, tiny: bool):
    from transformers import InternVLConfig, InternVLVisionConfig, LlamaConfig, Qwen2Config

    if tiny:
        vision = InternVLVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                      image_size=56, patch_size=14, attention_bias=True, use_qk_norm=False,
                                      norm_type="layer_norm", use_mean_pooling=True)
        text = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
        return InternVLConfig(vision_config=vision, text_config=text, image_token_id=5, image_seq_length=4,
                              tie_word_embeddings=False)
    a = family_arch(key)
    vision = InternVLVisionConfig(hidden_size=a.v_hidden, num_hidden_layers=a.v_layers,
                                  num_attention_heads=16 if a.v_hidden == 1024 else 25, intermediate_size=a.v_intermediate,
                                  image_size=a.image_size, patch_size=a.patch, attention_bias=a.v_qkv_bias,
                                  use_qk_norm=a.v_qk_norm, norm_type=a.v_norm, use_mean_pooling=True)
    cls = Qwen2Config if a.qkv_bias else LlamaConfig
    text = cls(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
               num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, tie_word_embeddings=a.tie_embeddings,
               max_position_embeddings=32768)
    return InternVLConfig(vision_config=vision, text_config=text, image_token_id=a.vocab - 1, image_seq_length=256,
                          tie_word_embeddings=a.tie_embeddings)


def materialise(config, device: str, dtype: torch.dtype):
    """Meta-device construction, then random weights allocated directly on `device`."""
    from transformers import InternVLForConditionalGeneration

    config.text_config._attn_implementation = "sdpa"
    config.vision_config._attn_implementation = "sdpa"
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(config)
    model.to_empty(device=device)
    model.to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "lambda" in name:
                p.fill_(1.0 if "weight" in name or "lambda" in name else 0.0)
            else:
                p.normal_(0, 0.02)
        for mod in model.modules():  # rotary buffers were created on meta: rebuild them on the device
            if type(mod).__name__.endswith("RotaryEmbedding"):
                fresh = type(mod)(mod.config)
                for bname, buf in fresh.named_buffers():
                    getattr(mod, bname).copy_(buf)
    return model


def batch_for(config, batch: int, seq: int, tiles: int, device: str):
    n_img = config.image_seq_length * tiles
    if n_img + 40 > seq:
        raise SystemExit(f"seq {seq} too short for {tiles} tiles x {config.image_seq_length} image tokens")
    vocab = config.text_config.vocab_size
    ids = torch.randint(10, vocab - 10, (batch, seq), device=device)
    ids[:, 5:5 + n_img] = config.image_token_id
    labels = ids.clone()
    labels[:, : 5 + n_img + 20] = -100
    size = config.vision_config.image_size
    size = size[0] if isinstance(size, (list, tuple)) else size
    pix = torch.randn(batch * tiles, 3, size, size, device=device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels, "pixel_values": pix}


def run_one(key: str, method: str, args, device: str) -> dict:
    config = build_config(key, args.tiny)
    arch = arch_from_dict(config.to_dict(), "tiny" if args.tiny else key)
    gpu_gib = torch.cuda.get_device_properties(0).total_memory / GIB if device == "cuda" else 80.0
    est = plan(arch, method, gpu_mem=gpu_gib, batch=args.batch, seq=args.seq, tiles=args.tiles, lora_r=args.lora_r)
    row = {"model": arch.name, "method": method, "batch": args.batch, "seq": args.seq, "estimate_gib": est.total_gib,
           "measured_gib": None, "reserved_gib": None, "status": "", "step_s": None}
    if not est.fits and not args.force:
        row["status"] = f"skipped: planner predicts {est.total_gib:.0f} GiB > {est.usable_gib:.0f} usable"
        return row
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    use_cuda_bf16 = device == "cuda"
    try:
        model = materialise(config, device, torch.float32 if method == "full" or not use_cuda_bf16 else torch.bfloat16)
        if method == "full":
            for p in model.model.vision_tower.parameters():
                p.requires_grad_(False)
        else:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.05,
                                                     target_modules=LORA_TARGET, task_type="CAUSAL_LM"))
            for p in model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        batch = batch_for(config, args.batch, args.seq, args.tiles, device)
        times = []
        for _ in range(args.steps):
            t = time.time()
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_cuda_bf16):
                loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.time() - t)
        row["step_s"] = sorted(times)[len(times) // 2]
        if device == "cuda":
            row["measured_gib"] = torch.cuda.max_memory_allocated() / GIB
            row["reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
        row["status"] = f"ok (loss {loss.item():.3f})"
    except torch.OutOfMemoryError:
        row["status"] = "OOM"
    finally:
        for name in ("model", "opt", "batch", "loss"):
            locals().pop(name, None)
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="2b,8b", help="comma-separated InternVL2 sizes")
    ap.add_argument("--methods", default="full,lora")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--tiles", type=int, default=7, help="image tiles per sample (max_num 6 + thumbnail)")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="tiny model on CPU: smoke test of the code path, no GPU figures")
    ap.add_argument("--force", action="store_true", help="also run configurations the planner says will not fit")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if not args.tiny and device != "cuda":
        raise SystemExit("no CUDA GPU here; use --tiny for a CPU smoke test")
    if args.tiny:
        torch.set_num_threads(1)
        args.models, args.seq = "tiny", min(args.seq, 128)
    print(f"device: {torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"batch {args.batch}, seq {args.seq}, tiles {args.tiles}, LoRA r {args.lora_r}, {args.steps} steps")
    rows = []
    for key in args.models.split(","):
        for method in args.methods.split(","):
            t0 = time.time()
            row = run_one(key.strip(), method.strip(), args, device)
            rows.append(row)
            meas = f"{row['measured_gib']:.1f}" if row["measured_gib"] is not None else "n/a"
            ratio = f"{row['measured_gib'] / row['estimate_gib']:.2f}" if row["measured_gib"] else "-"
            step = f"{row['step_s']:.2f}s" if row["step_s"] else "-"
            print(f"{row['model']:>14} {row['method']:>5} | planner {row['estimate_gib']:7.1f} GiB | measured peak {meas:>6} GiB "
                  f"(reserved {row['reserved_gib'] or 0:.1f}) | measured/planner {ratio} | step {step} | {row['status']} "
                  f"[{time.time() - t0:.0f}s]", flush=True)


if __name__ == "__main__":
    main()
