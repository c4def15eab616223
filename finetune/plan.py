"""GPU memory planner for fine-tuning InternVL2 models: weights, gradients, optimizer states, activations, fits?

Parameter counts are derived from the architecture in `finetune/configs/internvl2_family.json` (or any
config.json), not typed in. The byte accounting matches what `finetune.train` does on one GPU without sharding:

full (vision frozen, projector + LLM trained, bf16 autocast over fp32 master weights, AdamW):
    trainable: 4 (fp32 weight) + 4 (fp32 grad) + 8 (Adam m, v) + 2 (bf16 autocast copy) = 18 B/param
    frozen vision tower: 4 B/param (the model is held in fp32)
lora (base held in bf16, adapters and an optional projector trained in fp32 under autocast):
    every base parameter 2 B; each trainable parameter 18 B as above
activations, gradient checkpointing per decoder layer, SDPA/flash attention (no s^2 term):
    checkpoints  L * b * s * h * r      (r = residual-stream bytes: 4 in full/fp32, 2 in LoRA/bf16)
    one layer    b * s * 34 * h         (recomputed in backward; Korthikanti et al. 2022 without the score term)
    logits       b * s * V * 10         (bf16 logits + fp32 upcast in the loss + fp32 gradient)
    vision       b * tiles * (N+1) * 34 * d_vit  (frozen ViT, no saved activations: one layer's working set)
fits: total <= gpu_mem * (1 - reserve); the reserve (10%) covers the CUDA context, NCCL buffers and allocator
fragmentation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from capeval.errors import InputError

GIB = 1024**3
LORA_LINEARS = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True)
class Arch:
    """The dimensions that determine parameter count and activation size."""

    name: str
    v_hidden: int
    v_layers: int
    v_intermediate: int
    v_qkv_bias: bool
    v_qk_norm: bool
    v_norm: str
    image_size: int
    patch: int
    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    qkv_bias: bool
    tie_embeddings: bool
    downsample: float = 0.5
    published_b: float | None = None

    def vision_params(self) -> int:
        d, i = self.v_hidden, self.v_intermediate
        n = (self.image_size // self.patch) ** 2
        norm = 2 * d if self.v_norm == "layer_norm" else d
        per = 3 * d * d + (3 * d if self.v_qkv_bias else 0) + d * d + d  # qkv + proj
        per += (2 * d if self.v_qk_norm else 0) + d * i + i + i * d + d + 2 * norm + 2 * d  # qk-norm, mlp, norms, ls
        return 3 * self.patch * self.patch * d + d + d + (n + 1) * d + self.v_layers * per

    def projector_params(self) -> int:
        din = int(self.v_hidden / (self.downsample**2))
        return 2 * din + din * self.hidden + self.hidden + self.hidden * self.hidden + self.hidden

    def llm_params(self) -> int:
        h, hd = self.hidden, self.hidden // self.heads
        q, kv = self.heads * hd, self.kv_heads * hd
        attn = h * q + 2 * h * kv + q * h + ((q + 2 * kv) if self.qkv_bias else 0)
        per = attn + 3 * h * self.intermediate + 2 * h
        emb = self.vocab * h
        return emb + (0 if self.tie_embeddings else emb) + self.layers * per + h

    def lora_params(self, r: int, fused_qkv: bool = False) -> int:
        """LoRA parameters on the 7 LLM linears (native separate q/k/v; `fused_qkv` counts InternLM2's wqkv as one)."""
        h, hd = self.hidden, self.hidden // self.heads
        q, kv, i = self.heads * hd, self.kv_heads * hd, self.intermediate
        qkv = [(h, q + 2 * kv)] if fused_qkv else [(h, q), (h, kv), (h, kv)]
        shapes = qkv + [(q, h), (h, i), (h, i), (i, h)]
        return self.layers * r * sum(a + b for a, b in shapes)

    def total_params(self) -> int:
        return self.vision_params() + self.projector_params() + self.llm_params()


@dataclass
class MemoryPlan:
    """One estimate, in GiB, with the assumptions it used."""

    model: str
    method: str
    params_total: int
    params_trainable: int
    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    total_gib: float
    gpu_gib: float
    usable_gib: float
    fits: bool
    assumptions: dict[str, Any] = field(default_factory=dict)
    activation_parts: dict[str, float] = field(default_factory=dict)


def _family() -> dict[str, Any]:
    text = resources.files("finetune").joinpath("configs/internvl2_family.json").read_text()
    return json.loads(text)


FAMILY_ORDER = ("internvl2-1b", "internvl2-2b", "internvl2-4b", "internvl2-8b", "internvl2-26b", "internvl2-40b", "internvl2-76b")


def family_arch(key: str) -> Arch:
    """Architecture of a shipped InternVL2 family member ('internvl2-2b', '2B', 'OpenGVLab/InternVL2-2B')."""
    fam = _family()
    k = key.lower().removeprefix("opengvlab/").replace("internvl2-llama3-76b", "internvl2-76b")
    if not k.startswith("internvl2-"):
        k = f"internvl2-{k}"
    if k not in fam["models"]:
        raise InputError(f"unknown model {key!r}; expected one of {', '.join(FAMILY_ORDER)} or a folder with config.json")
    m = fam["models"][k]
    v = fam["vision"][m["vision"]]
    return Arch(
        name=k, v_hidden=v["hidden"], v_layers=v["layers"], v_intermediate=v["intermediate"], v_qkv_bias=v["qkv_bias"],
        v_qk_norm=v["qk_norm"], v_norm=v["norm"], image_size=v["image_size"], patch=v["patch"], vocab=m["vocab"],
        hidden=m["hidden"], intermediate=m["intermediate"], layers=m["layers"], heads=m["heads"],
        kv_heads=m["kv_heads"], qkv_bias=m["qkv_bias"], tie_embeddings=m["tie_embeddings"], published_b=m["published_b"],
    )


def arch_from_config(path: str | Path) -> Arch:
    """Architecture from a native (`internvl`) or original (`internvl_chat`) config.json."""
    p = Path(path)
    cfg_file = p / "config.json" if p.is_dir() else p
    if not cfg_file.is_file():
        raise InputError("config.json not found", path=str(cfg_file))
    return arch_from_dict(json.loads(cfg_file.read_text()), p.name if p.is_dir() else p.parent.name, str(cfg_file))


def arch_from_dict(c: dict[str, Any], name: str, where: str = "config") -> Arch:
    """Architecture from a config dict (native InternVLConfig.to_dict() or original internvl_chat)."""
    cfg_file = where
    v = c.get("vision_config") or {}
    t = c.get("text_config") or c.get("llm_config")
    if not v or not t:
        raise InputError("not an InternVL config (needs vision_config and text_config/llm_config)", path=str(cfg_file))
    native = c.get("model_type") == "internvl"
    size = v.get("image_size", 448)
    patch = v.get("patch_size", 14)
    kind = (t.get("model_type") or "").lower()
    return Arch(
        name=name,
        v_hidden=v["hidden_size"], v_layers=v["num_hidden_layers"], v_intermediate=v["intermediate_size"],
        v_qkv_bias=v.get("attention_bias" if native else "qkv_bias", True),
        v_qk_norm=v.get("use_qk_norm" if native else "qk_normalization", False), v_norm=v.get("norm_type", "layer_norm"),
        image_size=size[0] if isinstance(size, list) else size, patch=patch[0] if isinstance(patch, list) else patch,
        vocab=t["vocab_size"], hidden=t["hidden_size"], intermediate=t["intermediate_size"],
        layers=t["num_hidden_layers"], heads=t["num_attention_heads"],
        kv_heads=t.get("num_key_value_heads") or t["num_attention_heads"], qkv_bias=kind == "qwen2" or bool(t.get("attention_bias")),
        tie_embeddings=bool(c.get("tie_word_embeddings", t.get("tie_word_embeddings", False))),
        downsample=float(c.get("downsample_ratio", 0.5)),
    )


def resolve_arch(model: str) -> Arch:
    """A family name or a path to a config.json / model folder."""
    p = Path(model).expanduser()
    if p.exists():
        return arch_from_config(p)
    return family_arch(model)


def plan(
    model: str | Arch,
    method: str = "full",
    *,
    gpu_mem: float = 80.0,
    batch: int = 4,
    seq: int = 4096,
    tiles: int = 7,
    lora_r: int = 16,
    train_projector: bool = False,
    reserve: float = 0.10,
) -> MemoryPlan:
    """Estimate peak GPU memory of one training step (see the module docstring for every term)."""
    arch = model if isinstance(model, Arch) else resolve_arch(model)
    if method not in ("full", "lora"):
        raise InputError(f"unknown method {method!r}; expected 'full' or 'lora'")
    pv, pp, pl = arch.vision_params(), arch.projector_params(), arch.llm_params()
    if method == "full":
        trainable = pp + pl
        weights = 4 * (pv + pp + pl) + 2 * trainable  # fp32 model + bf16 autocast copies of trained weights
        residual = 4
    else:
        trainable = arch.lora_params(lora_r) + (pp if train_projector else 0)
        weights = 2 * (pv + pp + pl) + 6 * trainable  # bf16 base + fp32 trainable (+ bf16 autocast copy)
        residual = 2
    grads = 4 * trainable
    optim = 8 * trainable
    n_patches = (arch.image_size // arch.patch) ** 2 + 1
    parts = {
        "checkpoints": arch.layers * batch * seq * arch.hidden * residual / GIB,
        "layer_recompute": batch * seq * 34 * arch.hidden / GIB,
        "logits": batch * seq * arch.vocab * 10 / GIB,
        "vision": batch * tiles * n_patches * 34 * arch.v_hidden / GIB,
    }
    act = sum(parts.values())
    total = (weights + grads + optim) / GIB + act
    usable = gpu_mem * (1 - reserve)
    return MemoryPlan(
        model=arch.name, method=method, params_total=arch.total_params(), params_trainable=trainable,
        weights_gib=weights / GIB, gradients_gib=grads / GIB, optimizer_gib=optim / GIB, activations_gib=act,
        total_gib=total, gpu_gib=gpu_mem, usable_gib=usable, fits=total <= usable,
        assumptions={"batch": batch, "seq": seq, "tiles": tiles, "lora_r": lora_r, "train_projector": train_projector,
                     "reserve": reserve, "precision": "bf16 autocast, fp32 master weights, AdamW",
                     "gradient_checkpointing": True},
        activation_parts=parts,
    )


def plan_family(methods: tuple[str, ...] = ("full", "lora"), **kw: Any) -> list[MemoryPlan]:
    """Plans for every shipped InternVL2 model and method."""
    return [plan(family_arch(k), m, **kw) for k in FAMILY_ORDER for m in methods]


def plan_rows(plans: list[MemoryPlan]) -> list[dict[str, object]]:
    """One plain row per plan (parameter counts as numbers, memory terms in GiB), for tables, CSV and JSON."""
    return [{"model": p.model, "params": p.params_total, "method": p.method, "trainable": p.params_trainable,
             "weights": round(p.weights_gib, 4), "grads": round(p.gradients_gib, 4),
             "optimizer": round(p.optimizer_gib, 4), "activations": round(p.activations_gib, 4),
             "total": round(p.total_gib, 4), "usable": round(p.usable_gib, 4), "fits": "yes" if p.fits else "no"}
            for p in plans]


# How `plan_rows` columns are shown in a table or Markdown (CSV/JSON keep the numbers).
PLAN_FORMATTERS = {
    "params": lambda v: f"{v / 1e9:.2f}B", "trainable": lambda v: f"{v / 1e6:,.1f}M",
    **{k: (lambda v: f"{v:.1f}") for k in ("weights", "grads", "optimizer", "activations", "total", "usable")},
}


def markdown_table(plans: list[MemoryPlan]) -> str:
    """The plans as a markdown table (for the README)."""
    head = "| model | params | method | trainable | weights | grads | optimizer | activations | total | fits |"
    rows = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for p in plans:
        rows.append(
            f"| {p.model} | {p.params_total / 1e9:.2f}B | {p.method} | {p.params_trainable / 1e6:,.1f}M | "
            f"{p.weights_gib:.1f} | {p.gradients_gib:.1f} | {p.optimizer_gib:.1f} | {p.activations_gib:.1f} | "
            f"{p.total_gib:.1f} | {'yes' if p.fits else 'no'} |"
        )
    return "\n".join(rows)
