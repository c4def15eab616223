"""Memory planner: InternVL2 parameter counts from configs vs published sizes, and the 80 GB full/LoRA finding."""

from __future__ import annotations

import pytest

from finetune.plan import FAMILY_ORDER, family_arch, markdown_table, plan, plan_family


@pytest.mark.parametrize("key", FAMILY_ORDER)
def test_parameter_counts_match_published_sizes(key):
    arch = family_arch(key)
    billions = arch.total_params() / 1e9
    if key == "internvl2-1b":
        # published as "0.9B" (rounded to 0.1B); the checkpoint holds 0.94B with an untied LM head
        assert round(billions, 1) == arch.published_b
    else:
        assert abs(billions - arch.published_b) / arch.published_b <= 0.02, billions


@pytest.mark.parametrize("key", ["internvl2-1b", "internvl2-2b", "internvl2-26b"])
def test_analytic_counts_equal_native_model_on_meta_device(key):
    torch = pytest.importorskip("torch")
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, LlamaConfig, Qwen2Config

    a = family_arch(key)
    vision = InternVLVisionConfig(hidden_size=a.v_hidden, num_hidden_layers=a.v_layers, num_attention_heads=16,
                                  intermediate_size=a.v_intermediate, image_size=a.image_size, patch_size=a.patch,
                                  attention_bias=a.v_qkv_bias, use_qk_norm=a.v_qk_norm, norm_type=a.v_norm,
                                  use_mean_pooling=True) if a.v_hidden == 1024 else \
        InternVLVisionConfig(hidden_size=a.v_hidden, num_hidden_layers=a.v_layers, num_attention_heads=25,
                             intermediate_size=a.v_intermediate, image_size=a.image_size, patch_size=a.patch,
                             attention_bias=a.v_qkv_bias, use_qk_norm=a.v_qk_norm, norm_type=a.v_norm, use_mean_pooling=True)
    cls = Qwen2Config if a.qkv_bias else LlamaConfig
    text = cls(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
               num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, tie_word_embeddings=a.tie_embeddings)
    with torch.device("meta"):
        m = InternVLForConditionalGeneration(InternVLConfig(vision_config=vision, text_config=text,
                                                            tie_word_embeddings=a.tie_embeddings))
    assert sum(p.numel() for p in m.parameters()) == a.total_params()
    assert sum(p.numel() for p in m.model.vision_tower.parameters()) == a.vision_params()


def test_lora_count_matches_official_coco_tutorial():
    # InternVL docs, coco_caption_finetune.md: InternVL2-2B LoRA r=128 -> 125,829,120 trainable parameters, with
    # InternLM2's fused wqkv as one LoRA target; the native model's separate q/k/v projections add 2*h*r per layer
    arch = family_arch("2b")
    assert arch.lora_params(128, fused_qkv=True) == 125_829_120
    assert arch.lora_params(128) == 125_829_120 + 24 * 2 * 2048 * 128


def test_80gb_full_sft_fits_up_to_2b_and_lora_up_to_8b():
    plans = {(p.model, p.method): p for p in plan_family(gpu_mem=80)}
    fits_full = [k for k in FAMILY_ORDER if plans[(k, "full")].fits]
    fits_lora = [k for k in FAMILY_ORDER if plans[(k, "lora")].fits]
    assert fits_full == ["internvl2-1b", "internvl2-2b"]
    assert fits_lora == ["internvl2-1b", "internvl2-2b", "internvl2-4b", "internvl2-8b"]


def test_plan_terms_follow_the_documented_arithmetic():
    p = plan("internvl2-2b", "full", batch=1, seq=1000, tiles=1)
    a = family_arch("2b")
    trainable = a.projector_params() + a.llm_params()
    assert p.params_trainable == trainable
    assert p.optimizer_gib == pytest.approx(8 * trainable / 1024**3)
    assert p.gradients_gib == pytest.approx(4 * trainable / 1024**3)
    assert p.activation_parts["logits"] == pytest.approx(1000 * a.vocab * 10 / 1024**3)
    lora = plan("internvl2-2b", "lora", lora_r=16, train_projector=True)
    assert lora.params_trainable == a.lora_params(16) + a.projector_params()
    assert plan("internvl2-2b", "lora", batch=8).total_gib > plan("internvl2-2b", "lora", batch=4).total_gib


def test_plan_accepts_a_config_folder(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "internvl", "downsample_ratio": 0.5,
        "vision_config": {"hidden_size": 1024, "num_hidden_layers": 24, "intermediate_size": 4096, "image_size": [448, 448],
                          "patch_size": [14, 14], "attention_bias": True, "use_qk_norm": False, "norm_type": "layer_norm"},
        "text_config": {"model_type": "llama", "vocab_size": 92553, "hidden_size": 2048, "intermediate_size": 8192,
                        "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 8},
    }))
    assert plan(str(tmp_path), "full").params_total == family_arch("2b").total_params()


def test_unknown_model_is_a_clear_error():
    from capeval.errors import InputError

    with pytest.raises(InputError, match="unknown model 'internvl2-3b'"):
        plan("internvl2-3b")
    assert "| internvl2-8b | 8.08B | lora |" in markdown_table(plan_family())
