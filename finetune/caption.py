"""Batched caption generation (greedy by default) -> COCO results JSON + a run card for reproducibility."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from capeval.errors import InputError
from capeval.records import normalize_image_id


@dataclass
class CaptionRun:
    """Where the captions and the run card went, and the captions themselves ({image_id: caption})."""

    out: Path
    card: Path
    captions: dict[str, str]
    seconds: float


def list_images(images: str | Path | None = None, ids: str | Path | None = None) -> list[tuple[str, Path]]:
    """(image_id, path) pairs: every image in a folder, or the ids/paths listed in a file (one per line)."""
    from finetune.data import index_images

    if ids is None:
        if images is None:
            raise InputError("give --images DIR or --ids FILE")
        index = index_images(images)
        if not index:
            raise InputError("no image files (.jpg/.png/...) in the images folder", path=str(images))
        return sorted(index.items(), key=lambda kv: (len(kv[0]), kv[0]))
    p = Path(ids)
    if not p.is_file():
        raise InputError("id list not found", path=str(p))
    index = index_images(images) if images is not None else {}
    pairs: list[tuple[str, Path]] = []
    for n, line in enumerate(p.read_text().splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        cand = Path(entry)
        if not cand.is_absolute():
            cand = p.parent / cand
        if cand.is_file():
            pairs.append((normalize_image_id(cand.name), cand))
            continue
        key = normalize_image_id(entry)
        if key not in index:
            raise InputError(f"image {entry!r} not found" + ("" if images else " (give --images DIR to look ids up)"), path=str(p), where=f"line {n}")
        pairs.append((key, index[key]))
    if not pairs:
        raise InputError("id list is empty", path=str(p))
    return pairs


def generate_captions(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    prompt: str,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 30,
    min_new_tokens: int = 8,
    num_beams: int = 1,
    progress: bool = True,
) -> list[str]:
    """Caption PIL images in left-padded batches with the training prompt and template."""
    import torch
    from rich.progress import Progress

    min_new_tokens = min(min_new_tokens, max_new_tokens)
    device = next(model.parameters()).device
    dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
    outs: list[str] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("captioning", total=len(images))
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            exs = []
            for im in chunk:
                pix = processor.pixels(im)
                exs.append({"input_ids": processor.prompt_ids(prompt, pix.shape[0]), "pixel_values": pix})
            batch = processor.collate(exs, padding_side="left")
            batch = {k: v.to(device) for k, v in batch.items()}
            batch["pixel_values"] = batch["pixel_values"].to(dtype)
            with torch.no_grad():
                gen = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    min_new_tokens=min_new_tokens,
                    do_sample=False,
                    num_beams=num_beams,
                    eos_token_id=processor.eos_token_id,
                    pad_token_id=processor.pad_token_id,
                )
            new = gen[:, batch["input_ids"].shape[1] :]
            outs.extend(t.strip() for t in processor.tokenizer.batch_decode(new, skip_special_tokens=True))
            bar.advance(task, len(chunk))
    return outs


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    vers = {"python": platform.python_version()}
    for pkg in ("capeval", "torch", "transformers", "peft", "accelerate", "pillow"):
        try:
            vers[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return vers


def write_results(captions: dict[str, str], out: str | Path) -> Path:
    """COCO results JSON: [{"image_id": int, "caption": str}] (numeric ids as ints, as the COCO tools expect)."""
    rows = [{"image_id": int(k) if k.isdigit() else k, "caption": v} for k, v in captions.items()]
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    return p


def caption(
    model: str,
    out: str | Path,
    *,
    images: str | Path | None = None,
    ids: str | Path | None = None,
    adapter: str | None = None,
    prompt: str | None = None,
    template: str | None = None,
    max_num: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 30,
    min_new_tokens: int = 8,
    num_beams: int = 1,
    device: str | None = None,
    progress: bool = True,
) -> CaptionRun:
    """Caption images with a base model (optionally + adapter) and write COCO results JSON and `<out>.card.json`."""
    import torch

    from finetune.models import DEFAULT_PROMPT, bf16_supported, load_processor, pick_device, read_run_meta, resolve_model
    from finetune.tiling import load_image
    from finetune.train import load_for_inference

    t0 = time.time()
    model_dir = resolve_model(model)
    meta = read_run_meta(adapter) if adapter else read_run_meta(model_dir)
    processor = load_processor(model_dir, max_num=max_num if max_num is not None else meta.get("max_num"),
                               template=template or meta.get("template"))
    prompt = prompt or meta.get("prompt") or DEFAULT_PROMPT
    pairs = list_images(images, ids)
    dev = pick_device(device)
    dtype = torch.bfloat16 if bf16_supported(dev) else torch.float32
    m = load_for_inference(str(model_dir), adapter, dtype=dtype, device=dev)
    texts = generate_captions(
        m, processor, [load_image(p) for _, p in pairs], prompt, batch_size=batch_size,
        max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, num_beams=num_beams, progress=progress,
    )
    caps = {iid: text for (iid, _), text in zip(pairs, texts)}
    out_p = write_results(caps, out)
    card = out_p.with_name(out_p.stem + ".card.json")
    seconds = time.time() - t0
    card.write_text(json.dumps({
        "model": str(model_dir), "adapter": str(adapter) if adapter else None, "prompt": prompt,
        "template": processor.template, "max_num": processor.spec.max_num, "tile_size": processor.spec.image_size,
        "decoding": {"greedy": num_beams == 1, "num_beams": num_beams, "do_sample": False,
                     "max_new_tokens": max_new_tokens, "min_new_tokens": min_new_tokens, "batch_size": batch_size},
        "device": dev, "dtype": str(dtype).replace("torch.", ""), "n_images": len(caps),
        "seconds": round(seconds, 2), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
    }, indent=2, ensure_ascii=False))
    return CaptionRun(out_p, card, caps, seconds)
