"""Conversion, tokenization and training labels against what the ORIGINAL OpenGVLab InternVL code computed.

The oracle is `../shared/fixtures/internvl2-original` (or `$CAPEVAL_INTERNVL_FIXTURES`): four tiny checkpoints saved
by the original code (2b, 2b-nodp, 26b: InternLM2; 1b: Qwen2) with the original's prompt ids, logits, greedy tokens
and training labels in `reference.pt`. Negative controls show the same comparisons fail on a wrong q/k/v order, a
tokenizer with the dummy prefix only on the first segment (`legacy=False`), and answer-alone tokenization.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

from capeval.errors import InputError  # noqa: E402

CHECKPOINTS = ["2b", "2b-nodp", "26b", "1b"]
PROMPT = "Provide a one-sentence caption for the provided image."
ATOL = 1e-4


def _fixtures_root() -> Path:
    env = os.environ.get("CAPEVAL_INTERNVL_FIXTURES")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "internvl2-original"
    if not all((root / name / "reference.pt").is_file() for name in CHECKPOINTS):
        msg = (f"original-InternVL fixtures not found at {root} (set CAPEVAL_INTERNVL_FIXTURES to a folder with "
               f"{', '.join(CHECKPOINTS)} each holding reference.pt)")
        if os.environ.get("CAPEVAL_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="module")
def fixtures() -> Path:
    torch.set_num_threads(1)
    return _fixtures_root()


@pytest.fixture(scope="module")
def converted(fixtures, tmp_path_factory):
    """name -> (converted folder, reference dict); each checkpoint converted once with `capeval finetune convert`."""
    from capeval.cli import main

    out = {}
    root = tmp_path_factory.mktemp("converted")
    for name in CHECKPOINTS:
        assert main(["finetune", "convert", str(fixtures / name), str(root / name)]) == 0
        out[name] = (root / name, torch.load(fixtures / name / "reference.pt", weights_only=False))
    return out


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_capeval_path_reproduces_the_original(converted, fixtures, name):
    """Prompt ids, training ids/labels, pixels, logits and greedy tokens through the code captioning and training use."""
    from finetune.caption import generate_captions
    from finetune.models import load_model, load_processor
    from finetune.tiling import load_image

    folder, ref = converted[name]
    proc = load_processor(folder)
    assert proc.spec.max_num == 6 and proc.template == ref["template"] and proc.chat.system_message == ref["system_message"]
    image = load_image(fixtures / name / "probe.png")
    ex = proc.encode(image, PROMPT, ref["caption"])
    assert proc.prompt_ids(PROMPT, ref["n_tiles"]) == ref["input_ids"][0].tolist()
    assert ex["input_ids"] == ref["train_input_ids"][0].tolist()
    assert ex["labels"] == ref["train_labels"][0].tolist()
    pixels = torch.from_numpy(ex["pixel_values"])
    assert torch.allclose(pixels, ref["pixel_values"], atol=1e-5)
    model = load_model(folder).eval()
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"], pixel_values=pixels).logits
        assert (logits - ref["logits"]).abs().max() < ATOL
        gen = model.generate(input_ids=ref["input_ids"], attention_mask=torch.ones_like(ref["input_ids"]),
                             pixel_values=pixels, do_sample=False, min_new_tokens=8, max_new_tokens=12,
                             eos_token_id=proc.eos_token_id, pad_token_id=proc.pad_token_id)
    expected = ref["generated"][0, 1:].tolist()  # the original's output starts with the BOS it generates from
    assert gen[0, ref["input_ids"].shape[1]:].tolist() == expected
    # the captioning function (left-padded batch, the caption defaults) decodes the same greedy tokens
    text = generate_captions(model, proc, [image], PROMPT, max_new_tokens=12, min_new_tokens=8, progress=False)[0]
    assert text == proc.tokenizer.decode(expected, skip_special_tokens=True).strip()


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_plain_transformers_reproduce_the_original(converted, fixtures, name):
    """Users of other tools get the same model: AutoTokenizer, AutoImageProcessor and InternVLForConditionalGeneration,
    no capeval code."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoTokenizer, InternVLForConditionalGeneration

    folder, ref = converted[name]
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert tok(ref["query"])["input_ids"] == ref["input_ids"][0].tolist()
    assert tok(ref["query"] + ref["caption"] + "<|im_end|>")["input_ids"] == ref["train_input_ids"][0].tolist()
    chat = tok.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}],
                                   tokenize=False, add_generation_prompt=True)
    image_run = "<img>" + "<IMG_CONTEXT>" * (ref["num_image_token"] * ref["n_tiles"]) + "</img>\n"
    assert chat.replace("<IMG_CONTEXT>\n", image_run) == ref["query"]  # what InternVLProcessor expands it to
    image_processor = AutoImageProcessor.from_pretrained(str(folder))  # GotOcr2 with the converted tiling defaults
    with Image.open(fixtures / name / "probe.png") as im:
        pixels = image_processor(im.convert("RGB"), return_tensors="pt")["pixel_values"]
    assert pixels.shape == ref["pixel_values"].shape and torch.allclose(pixels, ref["pixel_values"], atol=1e-5)
    model = InternVLForConditionalGeneration.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"], pixel_values=pixels).logits
    assert (logits - ref["logits"]).abs().max() < ATOL


def _copy(fixtures: Path, name: str, dst: Path) -> Path:
    shutil.copytree(fixtures / name, dst)
    for p in dst.rglob("*"):
        p.chmod(0o644)
    dst.chmod(0o755)
    return dst


def test_wrong_qkv_order_is_caught_by_the_logit_comparison(converted, fixtures, tmp_path):
    """Negative control: swap k and v inside InternLM2's grouped wqkv; the same comparison must fail."""
    from safetensors.torch import load_file, save_file

    from finetune.convert import convert
    from finetune.models import load_model

    _, ref = converted["2b"]
    src = _copy(fixtures, "2b", tmp_path / "src")
    cfg = json.loads((src / "config.json").read_text())["llm_config"]
    kv, head_dim = cfg["num_key_value_heads"], cfg["hidden_size"] // cfg["num_attention_heads"]
    groups = cfg["num_attention_heads"] // kv
    state = load_file(str(src / "model.safetensors"))
    for key in [k for k in state if k.endswith("attention.wqkv.weight")]:
        x = state[key].reshape(kv, groups + 2, head_dim, -1).clone()
        x[:, [-2, -1]] = x[:, [-1, -2]]
        state[key] = x.reshape(state[key].shape).contiguous()
    save_file(state, str(src / "model.safetensors"))
    model = load_model(convert(src, tmp_path / "out").out).eval()
    with torch.no_grad():
        logits = model(input_ids=ref["input_ids"], pixel_values=ref["pixel_values"]).logits
    assert (logits - ref["logits"]).abs().max() > 100 * ATOL


@pytest.mark.parametrize("name", ["2b", "2b-nodp"])
def test_flipped_dummy_prefix_or_legacy_tokenizers_give_other_ids(converted, fixtures, name):
    """Negative controls: the dummy prefix only on the first segment (`legacy=False`), or the other fixture's
    add_dummy_prefix, change the prompt ids; the conversion-time sentencepiece check refuses the first."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SpmConverter

    from finetune.spm_tokenizer import check_against_sentencepiece, read_spm_proto, spm_fast_tokenizer

    _, ref = converted[name]
    spm = fixtures / name / "tokenizer.model"
    cfg = json.loads((fixtures / name / "tokenizer_config.json").read_text())
    good = spm_fast_tokenizer(spm, cfg, {})
    assert good(ref["query"])["input_ids"] == ref["input_ids"][0].tolist()
    proto = read_spm_proto(spm)
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=False)
    backend.post_processor = good.backend_tokenizer.post_processor
    bad = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    bad.add_special_tokens({"additional_special_tokens": [t for t in good.all_special_tokens if t not in bad.get_vocab()]})
    if proto.normalizer_spec.add_dummy_prefix:  # without a dummy prefix, legacy changes nothing
        assert bad(ref["query"])["input_ids"] != ref["input_ids"][0].tolist()
        with pytest.raises(InputError, match="differs from sentencepiece"):
            check_against_sentencepiece(bad, spm, [ref["query"]])
    other = "2b-nodp" if name == "2b" else "2b"
    flipped = spm_fast_tokenizer(fixtures / other / "tokenizer.model", cfg, {})
    assert flipped(ref["query"])["input_ids"] != ref["input_ids"][0].tolist()


def test_answer_tokenized_alone_would_give_other_labels(converted):
    """Negative control for the label construction: the answer on its own starts with '▁A', the original has 'A'."""
    from finetune.models import load_processor

    folder, ref = converted["2b"]
    proc = load_processor(folder)
    prompt_ids = proc.prompt_ids(PROMPT, ref["n_tiles"])
    alone = prompt_ids + proc.tokenizer(ref["caption"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert alone != ref["train_input_ids"][0].tolist()


def test_unknown_template_is_refused_naming_it(fixtures, tmp_path, capsys):
    from capeval.cli import main

    src = _copy(fixtures, "1b", tmp_path / "src")
    cfg = json.loads((src / "config.json").read_text())
    cfg["template"] = "internvl2_5"
    (src / "config.json").write_text(json.dumps(cfg))
    assert main(["finetune", "convert", str(src), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown conversation template 'internvl2_5'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_system_message_comes_from_the_checkpoint_config(fixtures, tmp_path):
    from finetune.convert import convert
    from finetune.models import load_processor

    src = _copy(fixtures, "2b", tmp_path / "src")
    cfg = json.loads((src / "config.json").read_text())
    cfg["system_message"] = "You are a captioner."
    (src / "config.json").write_text(json.dumps(cfg))
    proc = load_processor(convert(src, tmp_path / "out").out)
    assert proc.prompt_text(PROMPT, 0).startswith("<|im_start|>system\nYou are a captioner.<|im_end|><|im_start|>user\n")
    assert "You are a captioner." in proc.tokenizer.chat_template


def test_caption_command_uses_the_original_evaluation_defaults(converted, fixtures, tmp_path, capsys):
    """`capeval finetune caption` with no options: 6 tiles, greedy, 8..30 new tokens, the checkpoint's template."""
    from capeval.cli import main

    folder, ref = converted["1b"]
    out = tmp_path / "caps.json"
    assert main(["finetune", "caption", "--model", str(folder), "--images", str(fixtures / "1b"), "--out", str(out),
                 "--device", "cpu"]) == 0
    card = json.loads(out.with_name("caps.card.json").read_text())
    assert card["max_num"] == 6 and card["template"] == "Hermes-2" and card["prompt"] == PROMPT
    assert card["decoding"] == {"greedy": True, "num_beams": 1, "do_sample": False, "max_new_tokens": 30,
                                "min_new_tokens": 8, "batch_size": 8}
    rows = json.loads(out.read_text())
    assert [r["image_id"] for r in rows] == ["probe"] and rows[0]["caption"]


def test_missing_model_folder_is_one_line_exit_2(tmp_path, capsys):
    from capeval.cli import main

    missing = str(tmp_path / "models" / "InternVL2-2B")
    for args in (["finetune", "convert", missing, str(tmp_path / "out")],
                 ["finetune", "caption", "--model", missing, "--images", str(tmp_path), "--out", str(tmp_path / "c.json")]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "InternVL2-2B" in err and "Traceback" not in err


def test_hub_layout_with_unused_token_pieces_renamed_by_the_tokenizer_config(converted, fixtures, tmp_path):
    """On the hub, InternLM2's tokenizer.model calls <|im_end|> '[UNUSED_TOKEN_145]' and tokenizer_config.json's
    added_tokens_decoder renames it at the same id; the converted tokenizer must still give the original's ids."""
    from finetune.convert import convert
    from finetune.models import load_processor
    from finetune.spm_tokenizer import read_spm_proto

    _, ref = converted["2b"]
    src = _copy(fixtures, "2b", tmp_path / "src")
    proto = read_spm_proto(src / "tokenizer.model")
    renamed = 0
    for i, piece in enumerate(proto.pieces):
        if piece.piece.startswith("<|"):
            piece.piece = f"[UNUSED_TOKEN_{138 + i}]"
            renamed += 1
    assert renamed == 6
    (src / "tokenizer.model").write_bytes(proto.SerializeToString())
    proc = load_processor(convert(src, tmp_path / "out").out)
    assert proc.prompt_ids(PROMPT, ref["n_tiles"]) == ref["input_ids"][0].tolist()
    assert proc.tokenizer.convert_tokens_to_ids("<|im_end|>") == 7


def test_fidelity_report_measures_one_checkpoint(fixtures, tmp_path):
    """`python -m finetune.fidelity` (the README's figures) on one checkpoint."""
    from finetune.fidelity import measure

    row = measure(fixtures / "26b", tmp_path / "out")
    assert row.llm == "internlm2" and row.template == "internlm2-chat"
    assert row.max_abs_logit_diff < ATOL and row.max_abs_pixel_diff < 1e-5
    assert row.prompt_ids_equal and row.train_labels_equal and row.greedy_tokens_equal
