"""Native InternVL loading (transformers' `InternVLForConditionalGeneration`) and an image-only processor.

The processor does what `InternVLProcessor` does for one image per sample (tiles via `finetune.tiling`, the
`<img><IMG_CONTEXT>*N</img>` expansion) without needing torchvision, and owns the conversation templates so
training and captioning build the exact same prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from capeval.errors import InputError
from finetune.tiling import TileSpec, image_pixels

DEFAULT_PROMPT = "Provide a one-sentence caption for the provided image."
INTERNVL2_SYSTEM = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
DEFAULT_MAX_NUM = 6  # tiles: InternVL's COCO caption evaluation (--max-num 6) and 2nd-finetune recipe
RUN_META = "capeval_finetune.json"  # written next to converted / trained models: template, prompt, tiling


@dataclass(frozen=True)
class ChatTemplate:
    """One conversation format (InternVL's `conversation.py`, MPT separator style): system block, user turn,
    separator, assistant header. Only the formats capeval has checked against the original code are known."""

    name: str
    system_message: str
    sep: str
    user: str = f"{IM_START}user\n"
    assistant: str = f"{IM_START}assistant\n"

    def system_block(self) -> str:
        return f"{IM_START}system\n{self.system_message}{self.sep}" if self.system_message else ""

    def with_system(self, system_message: str | None) -> "ChatTemplate":
        """The same format with another system message (a checkpoint's `system_message`); None keeps the default."""
        if system_message is None:
            return self
        return ChatTemplate(self.name, system_message, self.sep, self.user, self.assistant)

    def jinja(self) -> str:
        """A Jinja chat template for tokenizers (images appear as '<IMG_CONTEXT>\\n', as in -hf repos)."""
        sep = self.sep.replace("\n", "\\n")
        system = ""
        if self.system_message:
            msg = self.system_message.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
            system = "{% if messages[0]['role'] != 'system' %}{{'<|im_start|>system\\n" + msg + sep + "'}}{% endif %}"
        return system + (
            "{% for message in messages %}"
            "{{'<|im_start|>' + message['role'] + '\\n'}}"
            "{% if message['content'] is string %}{{ message['content'] }}"
            "{% else %}{% for content in message['content'] %}"
            "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\\n' }}"
            "{% elif content['type'] == 'video' %}{{ '<video>\\n' }}"
            "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
            "{% endfor %}{% endif %}"
            "{{'<|im_end|>" + sep[len(IM_END):] + "'}}"
            "{% endfor %}"
            "{% if add_generation_prompt %}{{'<|im_start|>assistant\\n'}}{% endif %}"
        )


# InternVL2 `internlm2-chat` (2B/8B/26B/76B) and `Hermes-2` (1B/40B): system prompt, '<|im_end|>' with no newline.
TEMPLATES: dict[str, ChatTemplate] = {
    "internlm2-chat": ChatTemplate("internlm2-chat", INTERNVL2_SYSTEM, IM_END),
    "Hermes-2": ChatTemplate("Hermes-2", INTERNVL2_SYSTEM, IM_END),
    "internvl2": ChatTemplate("internvl2", INTERNVL2_SYSTEM, IM_END),  # capeval's earlier name for the same format
    # transformers -hf InternVL chat template (InternVL2.5/3 -hf): no system prompt, '<|im_end|>\n'
    "chatml": ChatTemplate("chatml", "", f"{IM_END}\n"),
}


def get_template(name: str, system_message: str | None = None, *, path: str | None = None) -> ChatTemplate:
    """The named conversation format (with the checkpoint's system message); an unknown name is refused, since a
    silently wrong prompt format costs a model most of its score."""
    if name not in TEMPLATES:
        raise InputError(
            f"unknown conversation template {name!r}; capeval reproduces only {', '.join(sorted(TEMPLATES))} "
            "(InternVL2's 'internlm2-chat' and 'Hermes-2', and the -hf 'chatml')",
            path=path, where="template" if path else None,
        )
    return TEMPLATES[name].with_system(system_message)


def build_prompt(prompt: str, n_image_tokens: int, template: str | ChatTemplate = "chatml",
                 system_message: str | None = None) -> str:
    """The full text before the answer: system block, user turn with the expanded image, assistant header."""
    t = template if isinstance(template, ChatTemplate) else get_template(template, system_message)
    image = f"{IMG_START}{IMG_CONTEXT * n_image_tokens}{IMG_END}\n" if n_image_tokens else ""
    return f"{t.system_block()}{t.user}{image}{prompt}{t.sep}{t.assistant}"


def read_run_meta(model_dir: str | Path) -> dict[str, Any]:
    """The capeval sidecar of a converted or trained model (empty dict when absent)."""
    p = Path(model_dir) / RUN_META
    if p.is_file():
        return json.loads(p.read_text())
    return {}


@dataclass
class CaptionProcessor:
    """Tokenizer + InternVL tiling + conversation template: encodes (image, prompt[, answer]) samples."""

    tokenizer: Any
    spec: TileSpec = field(default_factory=TileSpec)
    template: str = "chatml"
    image_seq_length: int = 256
    system_message: str | None = None  # None: the template's default

    def __post_init__(self) -> None:
        vocab = self.tokenizer.get_vocab()
        for tok in (IMG_START, IMG_END, IMG_CONTEXT, IM_END):
            if tok not in vocab:
                raise InputError(f"tokenizer lacks the InternVL special token {tok!r}; is this an InternVL tokenizer?")
        self.chat = get_template(self.template, self.system_message)
        self.image_token_id = vocab[IMG_CONTEXT]
        self.eos_token_id = vocab[IM_END]
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else self.eos_token_id

    def pixels(self, image: Any) -> np.ndarray:
        """Tiles of one PIL image as float32 (n_tiles, 3, H, W)."""
        return image_pixels(image, self.spec)

    def prompt_text(self, prompt: str, n_tiles: int) -> str:
        """The prompt string for an image with `n_tiles` tiles (0 for a text-only sample)."""
        return build_prompt(prompt, self.image_seq_length * n_tiles, self.chat)

    def prompt_ids(self, prompt: str, n_tiles: int) -> list[int]:
        """Token ids of the prompt for an image with `n_tiles` tiles (0 for a text-only sample)."""
        return list(self.tokenizer(self.prompt_text(prompt, n_tiles), add_special_tokens=True)["input_ids"])

    def encode(self, image: Any | None, prompt: str, answer: str, max_length: int | None = None) -> dict[str, Any]:
        """A training example as InternVL's `preprocess_internlm`/`preprocess_mpt` build it: prompt, answer and
        `<|im_end|>` tokenized together, labels -100 over the prompt's length (so the answer's first token is
        tokenized in context, `A` after `assistant\\n`, not a fresh `▁A`)."""
        pix = self.pixels(image) if image is not None else None
        n_tiles = 0 if pix is None else pix.shape[0]
        text = self.prompt_text(prompt, n_tiles)
        n_prompt = len(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        ids = list(self.tokenizer(text + answer + IM_END, add_special_tokens=True)["input_ids"])
        if max_length is not None:
            if n_prompt >= max_length:
                raise InputError(
                    f"prompt with {n_tiles} tile(s) is {n_prompt} tokens, longer than max_length {max_length}; "
                    "raise --max-length or lower --max-num"
                )
            ids = ids[:max_length]
        return {"input_ids": ids, "labels": [-100] * n_prompt + ids[n_prompt:], "pixel_values": pix}

    def collate(self, examples: Sequence[dict[str, Any]], padding_side: str = "right") -> dict[str, Any]:
        """Pad a batch (right for training, left for generation); tiles of all images are concatenated."""
        import torch

        width = max(len(e["input_ids"]) for e in examples)
        ids, labels, mask = [], [], []
        for e in examples:
            n = width - len(e["input_ids"])
            lab = e.get("labels") or [-100] * len(e["input_ids"])
            if padding_side == "left":
                ids.append([self.pad_token_id] * n + e["input_ids"])
                labels.append([-100] * n + lab)
                mask.append([0] * n + [1] * len(e["input_ids"]))
            else:
                ids.append(e["input_ids"] + [self.pad_token_id] * n)
                labels.append(lab + [-100] * n)
                mask.append([1] * len(e["input_ids"]) + [0] * n)
        batch: dict[str, Any] = {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }
        if any(e.get("labels") for e in examples):
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        pix = [e["pixel_values"] for e in examples if e.get("pixel_values") is not None]
        if pix:
            batch["pixel_values"] = torch.from_numpy(np.concatenate(pix, axis=0))
        return batch


def _read_config(path: Path) -> dict[str, Any]:
    cfg = path / "config.json"
    if not path.exists():
        raise InputError("model folder not found (give a local folder holding config.json and weights)", path=str(path))
    if not cfg.is_file():
        raise InputError("not a model folder: config.json is missing", path=str(path))
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"config.json is not valid JSON ({exc})", path=str(cfg)) from exc


def check_internvl(path: str | Path) -> dict[str, Any]:
    """Validate that `path` holds a native InternVL checkpoint; say how to fix it when it does not."""
    p = Path(path)
    config = _read_config(p)
    mtype = config.get("model_type")
    if mtype == "internvl_chat":
        raise InputError(
            "this is an original remote-code InternVL checkpoint (model_type 'internvl_chat'); convert it first "
            f"with `capeval finetune convert {p} <out_dir>`",
            path=str(p / "config.json"),
        )
    if mtype != "internvl":
        raise InputError(
            f"not an InternVL model: config.json has model_type {mtype!r}, expected 'internvl' "
            "(InternVLForConditionalGeneration, e.g. OpenGVLab/InternVL3-1B-hf or a converted InternVL2)",
            path=str(p / "config.json"),
        )
    return config


def resolve_model(name_or_path: str) -> Path:
    """A local folder, or a hub id already in the local HF cache (runs offline; nothing is downloaded)."""
    p = Path(name_or_path).expanduser()
    if p.exists() or "/" not in name_or_path or name_or_path.startswith((".", "/", "~")):
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, local_files_only=True))
    except Exception as exc:
        raise InputError(
            f"model {name_or_path!r} is neither a local folder nor in the local Hugging Face cache "
            "(download it first with `huggingface-cli download`)"
        ) from exc


def load_processor(model_dir: str | Path, max_num: int | None = None, template: str | None = None,
                   system_message: str | None = None) -> CaptionProcessor:
    """Tokenizer + tiling settings of a native InternVL model folder: template and system message from the capeval
    sidecar (a converted checkpoint's own), else chatml (-hf models); `max_num` from the sidecar, else 6 tiles."""
    from transformers import AutoTokenizer

    p = Path(model_dir)
    config = check_internvl(p)
    meta = read_run_meta(p)
    vision = config.get("vision_config", {})
    patch = vision.get("patch_size", 14)
    patch = patch[0] if isinstance(patch, list) else patch
    size = vision.get("image_size", 448)
    size = size[0] if isinstance(size, list) else size
    spec = TileSpec(
        image_size=int(size),
        patch_size=int(patch),
        downsample_ratio=float(config.get("downsample_ratio", 0.5)),
        max_num=int(max_num if max_num is not None else meta.get("max_num", DEFAULT_MAX_NUM)),
    )
    seq = int(config.get("image_seq_length", spec.tokens_per_tile))
    if seq != spec.tokens_per_tile:
        raise InputError(
            f"image_seq_length {seq} does not match {spec.tokens_per_tile} tokens per "
            f"{spec.image_size}px tile (patch {spec.patch_size}, downsample {spec.downsample_ratio})",
            path=str(p / "config.json"),
        )
    tok = AutoTokenizer.from_pretrained(str(p))
    name = template or meta.get("template", "chatml")
    if system_message is None and name == meta.get("template"):  # the sidecar's message belongs to its template
        system_message = meta.get("system_message")
    proc = CaptionProcessor(tok, spec, name, seq, system_message)
    if config.get("image_token_id") not in (None, proc.image_token_id):
        raise InputError(
            f"config image_token_id {config.get('image_token_id')} is not the tokenizer's <IMG_CONTEXT> id {proc.image_token_id}",
            path=str(p / "config.json"),
        )
    return proc


def load_model(model_dir: str | Path, dtype: Any = None, device: str | None = None) -> Any:
    """`InternVLForConditionalGeneration.from_pretrained` after checking the folder is a native InternVL."""
    import torch
    from transformers import InternVLForConditionalGeneration

    check_internvl(model_dir)
    model = InternVLForConditionalGeneration.from_pretrained(str(model_dir), dtype=dtype or torch.float32)
    if device:
        model.to(device)
    return model


def pick_device(device: str | None = None) -> str:
    """'cuda' when available, else 'cpu' (or the explicit choice)."""
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def bf16_supported(device: str) -> bool:
    """bf16 autocast/weights are used only on GPUs that support them (CPU training stays fp32)."""
    import torch

    return device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
