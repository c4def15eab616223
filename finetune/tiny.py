"""A tiny randomly initialised native InternVL (Qwen2 text model, word-level tokenizer) for smoke tests.

Used by the test-suite and `benchmarks/gpu_memory_check.py --tiny`: every code path (tiling, templates,
training, LoRA, generation) runs for real, only the sizes are small. Tiles are 28-56 px instead of 448.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

from finetune.models import DEFAULT_PROMPT, IM_END, IM_START, IMG_CONTEXT, IMG_END, IMG_START, RUN_META, TEMPLATES

SPECIALS = ["<|endoftext|>", "<unk>", IM_START, IM_END, IMG_START, IMG_END, IMG_CONTEXT, "<video>"]
_WORD = re.compile(r"\w+|[^\w\s]+")


def build_tokenizer(texts: Iterable[str]):
    """A word-level fast tokenizer over the words of `texts` plus the InternVL/ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for text in list(texts) + [DEFAULT_PROMPT, "user assistant system"]:
        for w in _WORD.findall(text):
            vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        eos_token=IM_END,
        extra_special_tokens={
            "start_image_token": IMG_START,
            "end_image_token": IMG_END,
            "context_image_token": IMG_CONTEXT,
            "video_token": "<video>",
        },
        chat_template=TEMPLATES["chatml"].jinja(),
    )
    tok.add_special_tokens({"additional_special_tokens": [IM_START, IMG_START, IMG_END, IMG_CONTEXT, "<video>"]})
    return tok


def build_tiny_internvl(
    out_dir: str | Path,
    texts: Iterable[str],
    *,
    tile: int = 28,
    hidden: int = 48,
    layers: int = 2,
    vision_hidden: int = 32,
    max_num: int = 2,
    seed: int = 0,
    text_init: float = 0.15,
) -> Path:
    """Save a tiny random InternVL (model, tokenizer, capeval sidecar) to `out_dir` and return the folder.

    `text_init` is larger than the usual 0.02 so a frozen random LM head can express peaked distributions
    (with RMSNorm fixing |h|, logit gaps are bounded by |h|*|w|); otherwise LoRA could not overfit at all."""
    import torch
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, Qwen2Config

    torch.manual_seed(seed)
    tok = build_tokenizer(texts)
    patch = 14
    side = tile // patch
    if side % 2:
        raise ValueError("tile / patch must be even for pixel shuffle 0.5")
    seq = side * side // 4
    vision = InternVLVisionConfig(
        hidden_size=vision_hidden, num_hidden_layers=1, num_attention_heads=2, intermediate_size=2 * vision_hidden,
        image_size=tile, patch_size=patch, attention_bias=True, use_qk_norm=False, norm_type="layer_norm",
        use_mean_pooling=True,
    )
    text = Qwen2Config(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=tok.convert_tokens_to_ids(IM_END), pad_token_id=tok.pad_token_id,
        initializer_range=text_init,
    )
    config = InternVLConfig(
        vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids(IMG_CONTEXT),
        image_seq_length=seq, downsample_ratio=0.5, projector_hidden_act="gelu", vision_feature_layer=-1,
        vision_feature_select_strategy="default", tie_word_embeddings=False,
    )
    model = InternVLForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.convert_tokens_to_ids(IM_END)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    (out / RUN_META).write_text(json.dumps({"template": "chatml", "max_num": max_num, "prompt": DEFAULT_PROMPT}, indent=2))
    return out
