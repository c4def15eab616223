"""InternVL2 (original remote-code layout) -> native InternVL conversion on tiny checkpoints built in the test."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from capeval.errors import InputError  # noqa: E402

TEXTS = ["A man riding a red bike.", "Two dogs on the grass."]
HEADS, KV, HIDDEN, HEAD_DIM = 4, 2, 32, 8


def _native_reference(kind, tok):
    """A tiny native model: the weights the original checkpoint will be built from (by hand)."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, LlamaConfig, Qwen2Config

    torch.manual_seed(1)
    vision = InternVLVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                  image_size=28, patch_size=14, attention_bias=True, use_qk_norm=False,
                                  norm_type="layer_norm", layer_norm_eps=1e-6, use_mean_pooling=True)
    common = dict(vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=HEADS, num_key_value_heads=KV, max_position_embeddings=512, rms_norm_eps=1e-6,
                  rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.2)
    text = Qwen2Config(**common) if kind == "qwen2" else LlamaConfig(**common, attention_bias=False)
    cfg = InternVLConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
                         image_seq_length=1, downsample_ratio=0.5, vision_feature_layer=-1,
                         tie_word_embeddings=False)
    model = InternVLForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # non-trivial layer scales and norms so a wrong mapping shows in the logits
        for n, p in model.named_parameters():
            if "lambda" in n or "norm" in n:
                p.copy_(torch.rand_like(p) + 0.5)
    return model


def _to_original(model, kind):
    """Hand-written inverse mapping into InternVL2's original parameter names (InternLM2 wqkv grouped per kv head)."""
    sd = model.state_dict()
    o = {}
    V, P, L = "model.vision_tower.", "model.multi_modal_projector.", "model.language_model."
    o["vision_model.embeddings.class_embedding"] = sd[V + "embeddings.cls_token"]
    o["vision_model.embeddings.position_embedding"] = sd[V + "embeddings.position_embeddings"]
    for s in ("weight", "bias"):
        o[f"vision_model.embeddings.patch_embedding.{s}"] = sd[V + f"embeddings.patch_embeddings.projection.{s}"]
    for i in range(2):
        src, dst = V + f"encoder.layer.{i}.", f"vision_model.encoder.layers.{i}."
        for s in ("weight", "bias"):
            o[dst + f"attn.qkv.{s}"] = torch.cat([sd[src + f"attention.{x}_proj.{s}"] for x in "qkv"])
            o[dst + f"attn.proj.{s}"] = sd[src + f"attention.projection_layer.{s}"]
            o[dst + f"mlp.fc1.{s}"] = sd[src + f"mlp.fc1.{s}"]
            o[dst + f"mlp.fc2.{s}"] = sd[src + f"mlp.fc2.{s}"]
            o[dst + f"norm1.{s}"] = sd[src + f"layernorm_before.{s}"]
            o[dst + f"norm2.{s}"] = sd[src + f"layernorm_after.{s}"]
        o[dst + "ls1"], o[dst + "ls2"] = sd[src + "lambda_1"], sd[src + "lambda_2"]
    for a, b in (("0", "layer_norm"), ("1", "linear_1"), ("3", "linear_2")):
        for s in ("weight", "bias"):
            o[f"mlp1.{a}.{s}"] = sd[P + f"{b}.{s}"]
    if kind == "qwen2":
        for k, v in sd.items():
            if k.startswith(L):
                o["language_model.model." + k[len(L):]] = v
        o["language_model.lm_head.weight"] = sd["lm_head.weight"]
        return o
    o["language_model.model.tok_embeddings.weight"] = sd[L + "embed_tokens.weight"]
    o["language_model.model.norm.weight"] = sd[L + "norm.weight"]
    o["language_model.output.weight"] = sd["lm_head.weight"]
    groups = HEADS // KV
    for i in range(2):
        src, dst = L + f"layers.{i}.", f"language_model.model.layers.{i}."
        q, k, v = (sd[src + f"self_attn.{x}_proj.weight"] for x in "qkv")
        rows = []
        for g in range(KV):  # InternLM2: per kv group, its q heads then its k head then its v head
            for h in range(g * groups, (g + 1) * groups):
                rows.append(q[h * HEAD_DIM:(h + 1) * HEAD_DIM])
            rows.append(k[g * HEAD_DIM:(g + 1) * HEAD_DIM])
            rows.append(v[g * HEAD_DIM:(g + 1) * HEAD_DIM])
        o[dst + "attention.wqkv.weight"] = torch.cat(rows)
        o[dst + "attention.wo.weight"] = sd[src + "self_attn.o_proj.weight"]
        o[dst + "feed_forward.w1.weight"] = sd[src + "mlp.gate_proj.weight"]
        o[dst + "feed_forward.w3.weight"] = sd[src + "mlp.up_proj.weight"]
        o[dst + "feed_forward.w2.weight"] = sd[src + "mlp.down_proj.weight"]
        o[dst + "attention_norm.weight"] = sd[src + "input_layernorm.weight"]
        o[dst + "ffn_norm.weight"] = sd[src + "post_attention_layernorm.weight"]
        o[dst + "attention.rotary_emb.inv_freq"] = torch.ones(HEAD_DIM // 2)  # stale buffer, must be ignored
    return o


def _write_original(root, kind, mutate=None):
    from safetensors.torch import save_file

    from finetune.tiny import build_tokenizer

    tok = build_tokenizer(TEXTS)
    native = _native_reference(kind, tok)
    orig = {k: v.contiguous() for k, v in _to_original(native, kind).items()}
    if mutate:
        mutate(orig)
    root.mkdir(parents=True, exist_ok=True)
    save_file(orig, str(root / "model.safetensors"))
    tok.save_pretrained(str(root))
    llm_arch = "Qwen2ForCausalLM" if kind == "qwen2" else "InternLM2ForCausalLM"
    config = {
        "architectures": ["InternVLChatModel"], "model_type": "internvl_chat",
        "auto_map": {"AutoModel": "modeling_internvl_chat.InternVLChatModel"},
        "downsample_ratio": 0.5, "force_image_size": 28, "max_dynamic_patch": 2, "ps_version": "v2",
        "select_layer": -1, "template": "Hermes-2" if kind == "qwen2" else "internlm2-chat", "use_thumbnail": True,
        "vision_config": {"architectures": ["InternVisionModel"], "model_type": "intern_vit_6b", "hidden_size": 32,
                          "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "image_size": 28,
                          "patch_size": 14, "qkv_bias": True, "qk_normalization": False, "norm_type": "layer_norm",
                          "layer_norm_eps": 1e-6, "hidden_act": "gelu", "drop_path_rate": 0.0, "use_flash_attn": False},
        "llm_config": {"architectures": [llm_arch], "model_type": kind, "vocab_size": len(tok), "hidden_size": HIDDEN,
                       "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": HEADS,
                       "num_key_value_heads": KV, "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
                       "rope_theta": 10000.0, "tie_word_embeddings": False, "hidden_act": "silu", "bias": False},
    }
    (root / "config.json").write_text(json.dumps(config))
    return native, tok


def _logits(model, tok):
    from finetune.models import CaptionProcessor
    from finetune.tiling import TileSpec
    from PIL import Image

    proc = CaptionProcessor(tok, TileSpec(image_size=28, max_num=2), "chatml", 1)
    ex = proc.encode(Image.new("RGB", (60, 28), "red"), "Provide a caption.", "A man riding a red bike.")
    batch = proc.collate([ex])
    batch.pop("labels")
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("kind", ["qwen2", "internlm2"])
def test_converted_model_matches_hand_mapped_weights(tmp_path, kind):
    torch.set_num_threads(1)
    from finetune.convert import convert
    from finetune.models import load_model, load_processor, read_run_meta

    native, tok = _write_original(tmp_path / "orig", kind)
    res = convert(tmp_path / "orig", tmp_path / "native")
    converted = load_model(res.out)
    assert res.llm == kind
    assert type(converted.config.text_config).__name__ == ("Qwen2Config" if kind == "qwen2" else "LlamaConfig")
    a, b = _logits(native, tok), _logits(converted, tok)
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    proc = load_processor(res.out)  # tokenizer, template and tiling of the converted folder
    meta = read_run_meta(res.out)  # the checkpoint's own template; InternVL's evaluation tiling, not max_dynamic_patch
    assert proc.template == ("Hermes-2" if kind == "qwen2" else "internlm2-chat") and meta["max_num"] == 6
    assert proc.spec.max_num == 6 and meta["source_max_dynamic_patch"] == 2
    assert proc.image_seq_length == 1
    for f in ("preprocessor_config.json", "processor_config.json", "tokenizer_config.json", "generation_config.json"):
        assert (res.out / f).is_file()
    from transformers import AutoTokenizer

    text = AutoTokenizer.from_pretrained(str(res.out)).apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}],
        tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n") and "<|im_end|><|im_start|>user\n<IMG_CONTEXT>\nDescribe.<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_wrong_wqkv_grouping_would_change_logits(tmp_path):
    """Guards the test itself: a naive q|k|v row split of InternLM2's wqkv gives different logits."""
    from finetune.convert import convert

    def naive(orig):
        for k in [k for k in orig if k.endswith("wqkv.weight")]:
            w = orig[k]
            groups = HEADS // KV
            x = w.reshape(KV, groups + 2, HEAD_DIM, -1)
            q = x[:, :groups].reshape(-1, w.shape[1]); kk = x[:, -2].reshape(-1, w.shape[1]); v = x[:, -1].reshape(-1, w.shape[1])
            orig[k] = torch.cat([q, kk, v])  # contiguous [Q; K; V] instead of grouped: a different model

    native, tok = _write_original(tmp_path / "orig", "internlm2", mutate=naive)
    from finetune.models import load_model

    converted = load_model(convert(tmp_path / "orig", tmp_path / "native").out)
    assert not torch.allclose(_logits(native, tok), _logits(converted, tok), atol=1e-3)


def test_unknown_source_key_fails_with_its_name(tmp_path):
    from finetune.convert import convert

    _write_original(tmp_path / "orig", "qwen2", mutate=lambda o: o.__setitem__("vision_model.encoder.layers.0.attn.extra.weight", torch.zeros(2)))
    with pytest.raises(InputError, match=r"unknown weight name.*attn\.extra\.weight"):
        convert(tmp_path / "orig", tmp_path / "native")


def test_missing_source_key_fails_with_its_name(tmp_path):
    from finetune.convert import convert

    _write_original(tmp_path / "orig", "internlm2", mutate=lambda o: o.pop("mlp1.1.weight"))
    with pytest.raises(InputError, match=r"missing.*multi_modal_projector\.linear_1\.weight"):
        convert(tmp_path / "orig", tmp_path / "native")


def test_non_internvl_folders_get_clear_errors(tmp_path):
    from finetune.convert import convert
    from finetune.models import load_model

    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match="not an InternVL model.*'bert'"):
        load_model(tmp_path / "bert")
    with pytest.raises(InputError, match="expected an original InternVL2 checkpoint"):
        convert(tmp_path / "bert", tmp_path / "out")
    with pytest.raises(InputError, match="config.json is missing"):
        load_model(tmp_path)
    _write_original(tmp_path / "orig", "qwen2")
    with pytest.raises(InputError, match="convert it first"):
        load_model(tmp_path / "orig")


def test_tied_flag_with_a_separate_head_in_the_checkpoint_keeps_the_head(tmp_path):
    """InternVL2-1B's Qwen2 config may say tie_word_embeddings while the checkpoint stores its own LM head."""
    from finetune.convert import convert
    from finetune.models import load_model

    native, tok = _write_original(tmp_path / "orig", "qwen2")
    cfg = json.loads((tmp_path / "orig" / "config.json").read_text())
    cfg["llm_config"]["tie_word_embeddings"] = True
    (tmp_path / "orig" / "config.json").write_text(json.dumps(cfg))
    converted = load_model(convert(tmp_path / "orig", tmp_path / "native").out)
    assert torch.allclose(_logits(native, tok), _logits(converted, tok), atol=1e-5)
