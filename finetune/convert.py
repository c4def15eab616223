"""Convert an original remote-code InternVL2 checkpoint (`InternVLChatModel`) to transformers' native InternVL.

Maps the InternViT vision tower (fused `attn.qkv` split into q/k/v), the `mlp1` projector and the language model:
Qwen2 (InternVL2-1B) and Llama-architecture LLMs (40B, 76B) keep their names; InternLM2 (2B, 8B, 26B) becomes a
Llama text model, its grouped `wqkv` split per kv group [q heads..., k, v] as InternLM2 packs it. Every source key
must be mapped and every target key filled, or conversion stops naming the keys. Also writes the tokenizer
(InternLM2's sentencepiece model rebuilt as a fast tokenizer that gives the original's ids; InternVL's image
tokens; the checkpoint's own chat template and system message), image-processor and processor configs, and a
capeval sidecar with the original evaluation settings (6 tiles, the COCO caption prompt).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from capeval.errors import InputError
from finetune.models import (DEFAULT_MAX_NUM, DEFAULT_PROMPT, IM_END, IMG_CONTEXT, IMG_END, IMG_START, RUN_META, ChatTemplate,
                             build_prompt, get_template)

SUPPORTED_LLMS = {"Qwen2ForCausalLM": "qwen2", "InternLM2ForCausalLM": "internlm2", "LlamaForCausalLM": "llama"}
IGNORED = re.compile(r".*rotary_emb\.inv_freq$")  # non-persistent buffers some old checkpoints still carry


@dataclass
class ConvertResult:
    """What was converted: the output folder, LLM family, tensor counts and parameter total."""

    out: Path
    llm: str
    n_source_tensors: int
    n_target_tensors: int
    n_params: int


def _llm_kind(config: dict[str, Any], path: Path) -> str:
    llm = config.get("llm_config") or {}
    arch = (llm.get("architectures") or [None])[0]
    if arch not in SUPPORTED_LLMS:
        hint = " (InternVL2-4B's Phi-3 is not supported)" if arch == "Phi3ForCausalLM" else ""
        raise InputError(
            f"unsupported language model {arch!r}{hint}; expected one of {sorted(SUPPORTED_LLMS)}",
            path=str(path / "config.json"), where="llm_config.architectures",
        )
    return SUPPORTED_LLMS[arch]


def native_config(config: dict[str, Any], image_token_id: int, path: Path) -> Any:
    """InternVLConfig from an original `internvl_chat` config.json."""
    from transformers import InternVLConfig, InternVLVisionConfig, LlamaConfig, Qwen2Config

    kind = _llm_kind(config, path)
    if config.get("ps_version", "v2") != "v2":
        raise InputError("only pixel-shuffle 'v2' checkpoints can be converted (native InternVL implements v2)",
                         path=str(path / "config.json"), where="ps_version")
    v = config["vision_config"]
    image_size = int(config.get("force_image_size") or v["image_size"])
    vision = InternVLVisionConfig(
        hidden_size=v["hidden_size"], num_hidden_layers=v["num_hidden_layers"],
        num_attention_heads=v["num_attention_heads"], intermediate_size=v["intermediate_size"],
        image_size=image_size, patch_size=v["patch_size"], num_channels=v.get("num_channels", 3),
        attention_bias=v.get("qkv_bias", True), use_qk_norm=v.get("qk_normalization", False),
        norm_type=v.get("norm_type", "layer_norm"), layer_norm_eps=v.get("layer_norm_eps", 1e-6),
        hidden_act=v.get("hidden_act", "gelu"), use_mean_pooling=True, use_absolute_position_embeddings=True,
    )
    llm = dict(config["llm_config"])
    common = dict(
        vocab_size=llm["vocab_size"], hidden_size=llm["hidden_size"], intermediate_size=llm["intermediate_size"],
        num_hidden_layers=llm["num_hidden_layers"], num_attention_heads=llm["num_attention_heads"],
        num_key_value_heads=llm.get("num_key_value_heads", llm["num_attention_heads"]),
        max_position_embeddings=llm.get("max_position_embeddings", 32768), rms_norm_eps=llm.get("rms_norm_eps", 1e-6),
        rope_theta=llm.get("rope_theta", 10000.0), tie_word_embeddings=llm.get("tie_word_embeddings", False),
        bos_token_id=llm.get("bos_token_id"), eos_token_id=llm.get("eos_token_id"), pad_token_id=llm.get("pad_token_id"),
        hidden_act=llm.get("hidden_act", "silu"),
    )
    if llm.get("rope_scaling"):
        common["rope_scaling"] = llm["rope_scaling"]
    if kind == "qwen2":
        text = Qwen2Config(**common, use_sliding_window=llm.get("use_sliding_window", False))
    else:
        text = LlamaConfig(**common, attention_bias=llm.get("bias", llm.get("attention_bias", False)))
    side = image_size // v["patch_size"]
    ratio = float(config.get("downsample_ratio", 0.5))
    return InternVLConfig(
        vision_config=vision, text_config=text, image_token_id=image_token_id,
        image_seq_length=int(side * side * ratio * ratio), downsample_ratio=ratio, projector_hidden_act="gelu",
        vision_feature_layer=int(config.get("select_layer", -1)), vision_feature_select_strategy="default",
        tie_word_embeddings=common["tie_word_embeddings"],
    )


def _split_rows(n: int) -> Callable[[Any], list[Any]]:
    return lambda t: list(t.chunk(n, dim=0))


def _split_wqkv(num_heads: int, num_kv: int, head_dim: int) -> Callable[[Any], list[Any]]:
    """InternLM2 `wqkv` rows are laid out per kv group as [q_1..q_g, k, v] (g = heads / kv heads)."""
    groups = num_heads // num_kv

    def split(t: Any) -> list[Any]:
        rest = t.shape[1:]
        x = t.reshape(num_kv, groups + 2, head_dim, *rest)
        q = x[:, :groups].reshape(num_heads * head_dim, *rest)
        k = x[:, -2].reshape(num_kv * head_dim, *rest)
        v = x[:, -1].reshape(num_kv * head_dim, *rest)
        return [q.contiguous(), k.contiguous(), v.contiguous()]

    return split


_VISION_RULES = [
    (r"vision_model\.embeddings\.class_embedding", ["model.vision_tower.embeddings.cls_token"]),
    (r"vision_model\.embeddings\.position_embedding", ["model.vision_tower.embeddings.position_embeddings"]),
    (r"vision_model\.embeddings\.patch_embedding\.(weight|bias)", ["model.vision_tower.embeddings.patch_embeddings.projection.\\1"]),
    (r"vision_model\.encoder\.layers\.(\d+)\.attn\.qkv\.(weight|bias)",
     ["model.vision_tower.encoder.layer.\\1.attention.q_proj.\\2", "model.vision_tower.encoder.layer.\\1.attention.k_proj.\\2",
      "model.vision_tower.encoder.layer.\\1.attention.v_proj.\\2"]),
    (r"vision_model\.encoder\.layers\.(\d+)\.attn\.proj\.(weight|bias)", ["model.vision_tower.encoder.layer.\\1.attention.projection_layer.\\2"]),
    (r"vision_model\.encoder\.layers\.(\d+)\.attn\.(q_norm|k_norm)\.(weight|bias)", ["model.vision_tower.encoder.layer.\\1.attention.\\2.\\3"]),
    (r"vision_model\.encoder\.layers\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", ["model.vision_tower.encoder.layer.\\1.mlp.\\2.\\3"]),
    (r"vision_model\.encoder\.layers\.(\d+)\.norm1\.(weight|bias)", ["model.vision_tower.encoder.layer.\\1.layernorm_before.\\2"]),
    (r"vision_model\.encoder\.layers\.(\d+)\.norm2\.(weight|bias)", ["model.vision_tower.encoder.layer.\\1.layernorm_after.\\2"]),
    (r"vision_model\.encoder\.layers\.(\d+)\.ls1", ["model.vision_tower.encoder.layer.\\1.lambda_1"]),
    (r"vision_model\.encoder\.layers\.(\d+)\.ls2", ["model.vision_tower.encoder.layer.\\1.lambda_2"]),
    (r"mlp1\.0\.(weight|bias)", ["model.multi_modal_projector.layer_norm.\\1"]),
    (r"mlp1\.1\.(weight|bias)", ["model.multi_modal_projector.linear_1.\\1"]),
    (r"mlp1\.3\.(weight|bias)", ["model.multi_modal_projector.linear_2.\\1"]),
]
_PASSTHROUGH_LLM_RULES = [
    (r"language_model\.model\.(.+)", ["model.language_model.\\1"]),
    (r"language_model\.lm_head\.weight", ["lm_head.weight"]),
]
_INTERNLM2_RULES = [
    (r"language_model\.model\.tok_embeddings\.weight", ["model.language_model.embed_tokens.weight"]),
    (r"language_model\.model\.layers\.(\d+)\.attention\.wqkv\.(weight|bias)",
     ["model.language_model.layers.\\1.self_attn.q_proj.\\2", "model.language_model.layers.\\1.self_attn.k_proj.\\2",
      "model.language_model.layers.\\1.self_attn.v_proj.\\2"]),
    (r"language_model\.model\.layers\.(\d+)\.attention\.wo\.(weight|bias)", ["model.language_model.layers.\\1.self_attn.o_proj.\\2"]),
    (r"language_model\.model\.layers\.(\d+)\.feed_forward\.w1\.weight", ["model.language_model.layers.\\1.mlp.gate_proj.weight"]),
    (r"language_model\.model\.layers\.(\d+)\.feed_forward\.w3\.weight", ["model.language_model.layers.\\1.mlp.up_proj.weight"]),
    (r"language_model\.model\.layers\.(\d+)\.feed_forward\.w2\.weight", ["model.language_model.layers.\\1.mlp.down_proj.weight"]),
    (r"language_model\.model\.layers\.(\d+)\.attention_norm\.weight", ["model.language_model.layers.\\1.input_layernorm.weight"]),
    (r"language_model\.model\.layers\.(\d+)\.ffn_norm\.weight", ["model.language_model.layers.\\1.post_attention_layernorm.weight"]),
    (r"language_model\.model\.norm\.weight", ["model.language_model.norm.weight"]),
    (r"language_model\.output\.weight", ["lm_head.weight"]),
]


def convert_state_dict(state: dict[str, Any], config: Any, kind: str) -> tuple[dict[str, Any], list[str]]:
    """Rename and split original tensors; returns (native state dict, source keys no rule matched)."""
    text = config.text_config
    rules = _VISION_RULES + (_INTERNLM2_RULES if kind == "internlm2" else _PASSTHROUGH_LLM_RULES)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    wqkv = _split_wqkv(text.num_attention_heads, text.num_key_value_heads, head_dim)
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, tensor in state.items():
        if IGNORED.match(key):
            continue
        for pattern, targets in rules:
            m = re.fullmatch(pattern, key)
            if not m:
                continue
            names = [m.expand(t) for t in targets]
            if len(names) == 1:
                parts = [tensor]
            elif ".wqkv." in key:
                parts = wqkv(tensor)
            else:
                parts = _split_rows(3)(tensor)
            out.update(zip(names, parts))
            break
        else:
            unknown.append(key)
    return out, unknown


def read_weights(src: Path) -> dict[str, Any]:
    """All tensors of a checkpoint folder (safetensors shards preferred, else pytorch_model*.bin)."""
    import torch
    from safetensors.torch import load_file

    files = sorted(src.glob("*.safetensors"))
    if files:
        state: dict[str, Any] = {}
        for f in files:
            state.update(load_file(str(f)))
        return state
    bins = sorted(src.glob("pytorch_model*.bin"))
    if not bins:
        raise InputError("no weights found (*.safetensors or pytorch_model*.bin)", path=str(src))
    state = {}
    for f in bins:
        state.update(torch.load(str(f), map_location="cpu", weights_only=True))
    return state


def convert_tokenizer(src: Path, template: ChatTemplate, *, check_texts: Sequence[str] = ()) -> Any:
    """The source tokenizer without remote code, with InternVL's image tokens registered for the native processor
    and the checkpoint's chat template. InternLM2's sentencepiece tokenizer (remote-code class) is rebuilt from its
    `tokenizer.model` (`finetune.spm_tokenizer`) and checked against sentencepiece on `check_texts`."""
    from transformers import AutoTokenizer

    extra = {"start_image_token": IMG_START, "end_image_token": IMG_END, "context_image_token": IMG_CONTEXT}
    cfg_path = src / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    spm = src / "tokenizer.model"
    remote = str(cfg.get("tokenizer_class", "")).startswith("InternLM2") or "AutoTokenizer" in (cfg.get("auto_map") or {})
    if spm.is_file() and (remote or not (src / "tokenizer.json").is_file()):
        from finetune.spm_tokenizer import check_against_sentencepiece, spm_fast_tokenizer

        tok = spm_fast_tokenizer(spm, cfg, extra)
        check_against_sentencepiece(tok, spm, check_texts)
    else:
        try:
            tok = AutoTokenizer.from_pretrained(str(src), trust_remote_code=False, extra_special_tokens=extra)
        except Exception as exc:
            raise InputError(f"cannot load the tokenizer without remote code ({exc})", path=str(src)) from exc
    vocab = tok.get_vocab()
    missing = [t for t in (IMG_START, IMG_END, IMG_CONTEXT, IM_END) if t not in vocab]
    if missing:
        raise InputError(f"tokenizer lacks InternVL special tokens {missing}", path=str(src))
    for attr, token in extra.items():  # some tokenizer classes drop extra_special_tokens passed at load time
        if getattr(tok, attr, None) != token:
            tok.extra_special_tokens = {**(getattr(tok, "extra_special_tokens", None) or {}), **extra}
            break
    tok.chat_template = template.jinja()
    return tok


def source_template(config: dict[str, Any], path: Path) -> ChatTemplate:
    """The conversation format the checkpoint was trained with: config.json's `template` and `system_message`."""
    name = config.get("template")
    if not name:
        raise InputError("config.json has no 'template' (InternVL2 checkpoints name their conversation format)",
                         path=str(path / "config.json"), where="template")
    return get_template(str(name), config.get("system_message"), path=str(path / "config.json"))


def convert(src: str | Path, dst: str | Path, *, dtype: str | None = None) -> ConvertResult:
    """Convert `src` (original InternVL2 folder) into a native InternVL folder `dst`."""
    import torch
    from transformers import GenerationConfig, InternVLForConditionalGeneration

    src_p, dst_p = Path(src), Path(dst)
    cfg_path = src_p / "config.json"
    if not src_p.is_dir():
        raise InputError("model folder not found (give the downloaded original InternVL2 folder, e.g. "
                         "`huggingface-cli download OpenGVLab/InternVL2-2B --local-dir DIR`)", path=str(src_p))
    if not cfg_path.is_file():
        raise InputError("not a model folder: config.json is missing", path=str(src_p))
    config_json = json.loads(cfg_path.read_text())
    if config_json.get("model_type") != "internvl_chat":
        hint = " (already native: use it directly)" if config_json.get("model_type") == "internvl" else ""
        raise InputError(
            f"expected an original InternVL2 checkpoint (model_type 'internvl_chat'), found {config_json.get('model_type')!r}{hint}",
            path=str(cfg_path),
        )
    kind = _llm_kind(config_json, src_p)
    template = source_template(config_json, src_p)
    probe = [build_prompt(DEFAULT_PROMPT, 3, template) + "A man riding a red bike down the street." + IM_END,
             "Two dogs  play on the grass.\n  A cat, 3 birds: <|im_end|>!"]
    tok = convert_tokenizer(src_p, template, check_texts=probe)
    state = read_weights(src_p)
    head = state.get("language_model.lm_head.weight", state.get("language_model.output.weight"))
    emb = state.get("language_model.model.embed_tokens.weight", state.get("language_model.model.tok_embeddings.weight"))
    llm_cfg = config_json.setdefault("llm_config", {})
    if llm_cfg.get("tie_word_embeddings") and head is not None and emb is not None and not head.equal(emb):
        llm_cfg["tie_word_embeddings"] = False  # the checkpoint stores a separate LM head: keep it
    config = native_config(config_json, tok.convert_tokens_to_ids(IMG_CONTEXT), src_p)
    config.architectures = ["InternVLForConditionalGeneration"]
    new_state, unknown = convert_state_dict(state, config, kind)
    if unknown:
        raise InputError(f"{len(unknown)} unknown weight name(s) in the source checkpoint, e.g. {unknown[:5]}", path=str(src_p))
    with torch.device("meta"):
        model = InternVLForConditionalGeneration(config)
    expected = set(model.state_dict())
    if config.tie_word_embeddings:
        expected.discard("lm_head.weight")
        new_state.pop("lm_head.weight", None)
    missing = sorted(expected - set(new_state))
    extra = sorted(set(new_state) - expected)
    if missing or extra:
        raise InputError(
            (f"{len(missing)} weight(s) missing from the source checkpoint, e.g. {missing[:5]}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"{len(extra)} converted weight(s) have no place in the native model, e.g. {extra[:5]}" if extra else ""),
            path=str(src_p),
        )
    shapes = model.state_dict()
    bad = [(k, tuple(v.shape), tuple(shapes[k].shape)) for k, v in new_state.items() if tuple(v.shape) != tuple(shapes[k].shape)]
    if bad:
        raise InputError(f"weight shapes do not match the config, e.g. {bad[:3]} (source, expected)", path=str(src_p))
    target_dtype = getattr(torch, dtype) if dtype else next(iter(new_state.values())).dtype
    model.load_state_dict({k: v.to(target_dtype) for k, v in new_state.items()}, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    im_end = tok.convert_tokens_to_ids(IM_END)
    model.generation_config = GenerationConfig(eos_token_id=im_end, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else im_end)
    dst_p.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dst_p))
    tok.save_pretrained(str(dst_p))
    write_processor_files(dst_p, config)
    (dst_p / RUN_META).write_text(json.dumps({
        "template": template.name, "system_message": template.system_message, "max_num": DEFAULT_MAX_NUM,
        "prompt": DEFAULT_PROMPT, "source_max_dynamic_patch": config_json.get("max_dynamic_patch"),
        "converted_from": str(src_p.resolve()), "llm": kind,
    }, indent=2, ensure_ascii=False))
    return ConvertResult(dst_p, kind, len(state), len(new_state), sum(v.numel() for v in new_state.values()))


def write_processor_files(dst: Path, config: Any) -> None:
    """preprocessor_config.json (GotOcr2, ImageNet stats, InternVL tiling up to 6 tiles + thumbnail, which reproduces
    the original `dynamic_preprocess` pixels) and processor_config.json, as -hf repos."""
    size = config.vision_config.image_size
    size = size[0] if isinstance(size, (list, tuple)) else size
    (dst / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "GotOcr2ImageProcessor", "processor_class": "InternVLProcessor",
        "do_resize": True, "size": {"height": size, "width": size}, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
        "do_convert_rgb": True, "crop_to_patches": True, "min_patches": 1, "max_patches": DEFAULT_MAX_NUM, "resample": 3,
    }, indent=2))
    (dst / "processor_config.json").write_text(json.dumps({
        "processor_class": "InternVLProcessor", "image_seq_length": config.image_seq_length,
    }, indent=2))
