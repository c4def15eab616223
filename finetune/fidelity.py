"""How closely a converted checkpoint reproduces the original InternVL code, measured on a reference it saved.

A reference folder holds an original checkpoint plus `reference.pt` written by the original code (prompt ids,
logits, greedy tokens, training ids/labels, tile pixels; see `../shared/fixtures/internvl2-original/README.md`).
`measure` converts it and compares, through the same code captioning and training use:

    python -m finetune.fidelity ../shared/fixtures/internvl2-original     # one row per checkpoint folder
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from capeval.errors import InputError


@dataclass
class Fidelity:
    """One checkpoint: max |logit difference| and whether ids, labels, pixels and greedy tokens are identical."""

    checkpoint: str
    llm: str
    template: str
    max_abs_logit_diff: float
    max_abs_pixel_diff: float
    prompt_ids_equal: bool
    train_labels_equal: bool
    greedy_tokens_equal: bool


def measure(original: str | Path, work_dir: str | Path) -> Fidelity:
    """Convert `original` into `work_dir` and compare with its `reference.pt`."""
    import torch

    from finetune.convert import convert
    from finetune.models import load_model, load_processor
    from finetune.tiling import load_image

    src = Path(original)
    ref_path = src / "reference.pt"
    if not ref_path.is_file():
        raise InputError("no reference.pt (outputs saved by the original InternVL code) in the folder", path=str(src))
    ref = torch.load(ref_path, weights_only=False)
    res = convert(src, work_dir)
    proc = load_processor(res.out)
    prompt = ref["query"].split("</img>\n", 1)[1].split(proc.chat.sep, 1)[0]
    probe = next((p for p in sorted(src.glob("*.png")) + sorted(src.glob("*.jpg"))), None)
    if probe is None:
        raise InputError("no probe image (*.png / *.jpg) next to reference.pt", path=str(src))
    ex = proc.encode(load_image(probe), prompt, ref["caption"])
    pixels = torch.from_numpy(ex["pixel_values"])
    model = load_model(res.out).eval()
    ids = ref["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids, pixel_values=pixels).logits
        n_new = ref["generated"].shape[1] - 1  # the original's output starts with the BOS it generates from
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels, do_sample=False,
                             min_new_tokens=min(8, n_new), max_new_tokens=n_new, eos_token_id=proc.eos_token_id,
                             pad_token_id=proc.pad_token_id)
    pixel_diff = float((pixels - ref["pixel_values"]).abs().max()) if pixels.shape == ref["pixel_values"].shape else float("inf")
    return Fidelity(
        checkpoint=src.name, llm=res.llm, template=proc.template,
        max_abs_logit_diff=float((logits - ref["logits"]).abs().max()), max_abs_pixel_diff=pixel_diff,
        prompt_ids_equal=proc.prompt_ids(prompt, ref["n_tiles"]) == ids[0].tolist(),
        train_labels_equal=(ex["input_ids"] == ref["train_input_ids"][0].tolist()
                            and ex["labels"] == ref["train_labels"][0].tolist()),
        greedy_tokens_equal=gen[0, ids.shape[1]:].tolist() == ref["generated"][0, 1:].tolist(),
    )


def measure_all(root: str | Path) -> list[Fidelity]:
    """`measure` for every sub-folder of `root` holding a reference.pt."""
    folders = sorted(p.parent for p in Path(root).glob("*/reference.pt"))
    if not folders:
        raise InputError("no <checkpoint>/reference.pt folders found", path=str(root))
    with tempfile.TemporaryDirectory(prefix="capeval-fidelity-") as tmp:
        return [measure(f, Path(tmp) / f.name) for f in folders]


def main(argv: list[str] | None = None) -> int:
    import torch

    from capeval.cli.output import emit

    args = sys.argv[1:] if argv is None else argv
    root = args[0] if args else str(Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "internvl2-original")
    torch.set_num_threads(1)
    try:
        rows = measure_all(root)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    emit(rows, "table", formatters={"max_abs_logit_diff": lambda v: f"{v:.1e}", "max_abs_pixel_diff": lambda v: f"{v:.1e}"},
         title=f"converted checkpoints vs the original InternVL code's outputs ({root})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
