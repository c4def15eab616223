"""Training data in InternVL's conversation JSONL: writing it from any reference file, reading and checking it.

One line per (image, caption): {"id", "image", "conversations": [{"from": "human", "value": "<image>\\n<prompt>"},
{"from": "gpt", "value": caption}]}. Relative image paths resolve against the JSONL's folder.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from capeval.errors import InputError
from capeval.records import normalize_image_id
from finetune.models import DEFAULT_PROMPT

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class Sample:
    """One supervised turn: an image (None for text-only general data), the prompt, the target answer."""

    image: Path | None
    prompt: str
    answer: str
    image_id: str | None = None
    line: int = 0


@dataclass
class PrepareResult:
    """What `prepare` wrote."""

    out: Path
    n_captions: int
    n_images: int
    n_general: int
    n_dropped: int
    missing_images: list[str] = field(default_factory=list)


def index_images(images_dir: str | Path) -> dict[str, Path]:
    """Map normalised image id ('COCO_val2014_000000391895.jpg' -> '391895') to the file, searching subfolders."""
    root = Path(images_dir)
    if not root.is_dir():
        raise InputError("images folder not found", path=str(root))
    index: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            index.setdefault(normalize_image_id(p.name), p)
    return index


def audit_references(audit_dir: str | Path, use: str = "fixed") -> Path:
    """The audit's corrected ('fixed') or filtered ('kept') COCO reference file in `audit_dir`."""
    if use not in ("fixed", "kept"):
        raise InputError(f"unknown audit reference set {use!r}; expected 'fixed' or 'kept'")
    p = Path(audit_dir) / f"references.{use}.json"
    if not p.is_file():
        raise InputError(f"audit output references.{use}.json not found (run `capeval audit` with an output folder first)", path=str(p))
    return p


def _read_id_list(path: str | Path) -> set[str]:
    p = Path(path)
    if not p.is_file():
        raise InputError("id list not found", path=str(p))
    return {line.strip() for line in p.read_text().splitlines() if line.strip()}


def conversation(image: str | None, prompt: str, answer: str, sample_id: str) -> dict[str, Any]:
    """One InternVL conversation record."""
    human = f"<image>\n{prompt}" if image is not None else prompt
    rec: dict[str, Any] = {"id": sample_id}
    if image is not None:
        rec["image"] = image
    rec["conversations"] = [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]
    return rec


def prepare(
    refs: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    prompt: str = DEFAULT_PROMPT,
    keep_ids: str | Path | None = None,
    audit: str | Path | None = None,
    use: str = "fixed",
    general: str | Path | None = None,
    mix_ratio: float = 0.0,
    allow_missing: bool = False,
    seed: int = 0,
) -> PrepareResult:
    """Write one conversation line per reference caption.

    audit + use: train on an audit's `references.fixed.json` (corrected) or `references.kept.json` (flagged
    captions dropped) instead of `refs`; keep_ids: a file of caption ids to keep; general: InternVL JSONL of general
    data mixed in at `mix_ratio` general lines per caption line (limits catastrophic forgetting).
    """
    from capeval.io import load_captions

    if audit is not None:
        refs = audit_references(audit, use)
    caps = list(load_captions(refs).captions)
    n_before = len(caps)
    if keep_ids is not None:
        keep = _read_id_list(keep_ids)
        caps = [c for c in caps if str(c.caption_id) in keep]
    if not caps:
        raise InputError("no reference captions left to write (empty file or every caption filtered out)", path=str(refs))
    index = index_images(images)
    missing = sorted({c.image_id for c in caps if c.image_id not in index})
    if missing and not allow_missing:
        raise InputError(
            f"{len(missing)} of {len({c.image_id for c in caps})} images have no file in {images} "
            f"(first: {', '.join(missing[:5])}); pass --allow-missing to skip them",
            path=str(refs),
        )
    out_p = Path(out)
    out_p.parent.mkdir(parents=True, exist_ok=True)
    records = [
        conversation(str(index[c.image_id].resolve()), prompt, c.text.strip(), str(c.caption_id))
        for c in caps
        if c.image_id in index
    ]
    n_general = 0
    if general is not None and mix_ratio > 0:
        pool = [json.loads(line) for line in Path(general).read_text().splitlines() if line.strip()]
        if not pool:
            raise InputError("general-data file is empty", path=str(general))
        rng = random.Random(seed)
        n_general = int(round(mix_ratio * len(records)))
        picks = [pool[i % len(pool)] for i in range(n_general)] if n_general <= len(pool) else [rng.choice(pool) for _ in range(n_general)]
        records.extend(picks)
        rng.shuffle(records)
    with out_p.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return PrepareResult(
        out=out_p,
        n_captions=len(records) - n_general,
        n_images=len({c.image_id for c in caps if c.image_id in index}),
        n_general=n_general,
        n_dropped=n_before - len(caps),
        missing_images=missing,
    )


def read_conversations(path: str | Path, *, check_images: bool = True) -> list[Sample]:
    """Parse and validate an InternVL conversation JSONL (first human/gpt turn of each line)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("training data file not found", path=str(p))
    samples: list[Sample] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg})", path=str(p), where=where) from exc
        conv = rec.get("conversations") if isinstance(rec, dict) else None
        if not isinstance(conv, list) or len(conv) < 2:
            raise InputError('expected {"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}', path=str(p), where=where)
        human, gpt = conv[0], conv[1]
        if human.get("from") != "human" or gpt.get("from") != "gpt":
            raise InputError("expected the first turn from 'human' and the second from 'gpt'", path=str(p), where=where)
        prompt, answer = str(human.get("value", "")), str(gpt.get("value", ""))
        image = None
        if rec.get("image"):
            if isinstance(rec["image"], list):
                raise InputError("multi-image samples are not supported for captioning", path=str(p), where=where)
            image = Path(rec["image"])
            if not image.is_absolute():
                image = p.parent / image
            if check_images and not image.is_file():
                raise InputError(f"image file not found: {image}", path=str(p), where=where + ", field 'image'")
            prompt = prompt.replace("<image>\n", "", 1).replace("<image>", "", 1).strip()
        if not answer.strip():
            raise InputError("empty answer ('gpt' value)", path=str(p), where=where)
        samples.append(Sample(image, prompt, answer, normalize_image_id(image.name) if image else None, n))
    if not samples:
        raise InputError("training data file is empty (no conversation lines)", path=str(p))
    return samples


def split_by_image(samples: Sequence[Sample], eval_fraction: float, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Hold out whole images (all their captions) so eval loss measures unseen images."""
    if eval_fraction <= 0:
        return list(samples), []
    keys = sorted({s.image_id or f"text:{s.line}" for s in samples})
    rng = random.Random(seed)
    rng.shuffle(keys)
    n_eval = max(1, int(round(eval_fraction * len(keys))))
    if n_eval >= len(keys):
        raise InputError(f"eval fraction {eval_fraction} leaves no training images ({len(keys)} images in total)")
    held = set(keys[:n_eval])
    train = [s for s in samples if (s.image_id or f"text:{s.line}") not in held]
    ev = [s for s in samples if (s.image_id or f"text:{s.line}") in held]
    return train, ev


class ConversationDataset:
    """Torch-style dataset: encodes samples lazily with a `CaptionProcessor`."""

    def __init__(self, samples: Sequence[Sample], processor: Any, max_length: int | None = None) -> None:
        self.samples = list(samples)
        self.processor = processor
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from finetune.tiling import load_image

        s = self.samples[i]
        image = load_image(s.image) if s.image is not None else None
        return self.processor.encode(image, s.prompt, s.answer, self.max_length)
