"""The story's signal during training: caption held-out images, score them and audit them at each evaluation step.

`train --eval-captions N` captions N held-out images (greedy, InternVL's COCO settings) before training and at every
evaluation step, scores them against the images' held-out references (BLEU-4 and CIDEr-D x 100, capeval's
pycocoevalcap-identical metrics) and audits them with `capeval.audit.audit_captions` (language errors per 100
captions: spelling, real-word, grammar, truncated, non-caption). A run can show the metrics rising while the
captions start to copy the references' errors. Curves go to `caption_eval.jsonl`/`.csv`/`.png` in the run folder.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from capeval.errors import InputError

ERROR_CATEGORIES = ("spelling", "real_word", "grammar", "truncated", "non_caption")  # capeval.audit CAPTION_LEVEL
CURVES = "caption_eval"  # file stem in the run folder


@dataclass(frozen=True)
class EvalImage:
    """One held-out image: its id, file and reference captions (the held-out answers for it)."""

    image_id: str
    path: Path
    references: tuple[str, ...]


@dataclass
class CaptionEvalPoint:
    """Scores and audit of the captions generated at one training step."""

    step: int
    n_images: int
    bleu4: float
    cider_d: float
    errors_per_100: dict[str, float]
    captions: dict[str, str] = field(default_factory=dict)

    @property
    def total_errors_per_100(self) -> float:
        return sum(self.errors_per_100.values())

    def row(self) -> dict[str, Any]:
        """The flat metrics row (JSONL/CSV): step, images, bleu4, cider_d, one column per error category, total."""
        return {"step": self.step, "n_images": self.n_images, "bleu4": round(self.bleu4, 4),
                "cider_d": round(self.cider_d, 4),
                **{f"errors_{c}": round(self.errors_per_100.get(c, 0.0), 4) for c in ERROR_CATEGORIES},
                "errors_total": round(self.total_errors_per_100, 4)}


def pick_eval_images(samples: Sequence[Any], n: int) -> list[EvalImage]:
    """The first `n` held-out images (in file order) with all their held-out answers as references."""
    if n <= 0:
        return []
    refs: dict[str, list[str]] = {}
    paths: dict[str, Path] = {}
    for s in samples:
        if s.image is None:
            continue
        key = s.image_id or str(s.image)
        paths.setdefault(key, s.image)
        refs.setdefault(key, []).append(s.answer)
    if not refs:
        raise InputError("--eval-captions needs held-out images: raise --eval-fraction (no image was held out)")
    return [EvalImage(k, paths[k], tuple(refs[k])) for k in list(refs)[:n]]


def score_and_audit(step: int, images: Sequence[EvalImage], captions: Sequence[str]) -> CaptionEvalPoint:
    """BLEU-4 and CIDEr-D (x 100) of `captions` against the images' references, and audit errors per 100 captions."""
    from capeval.audit import audit_captions
    from capeval.metrics import compute_metric_many
    from capeval.records import Caption, CaptionSet

    results = {r.name: r.corpus for r in compute_metric_many(["bleu", "cider"], list(captions),
                                                              [list(im.references) for im in images])}
    counts = dict.fromkeys(ERROR_CATEGORIES, 0)
    nonempty = [Caption(f"{im.image_id}#gen", im.image_id, text, "generated") for im, text in zip(images, captions)
                if text.strip()]
    if nonempty:
        audit = audit_captions(CaptionSet(nonempty, name=f"step-{step}"), progress=False)
        flagged: dict[str, set[str]] = {c: set() for c in ERROR_CATEGORIES}
        for f in audit.findings:
            if f.category in flagged:
                flagged[f.category].add(f.caption_id)  # captions with at least one error of the category
        counts = {c: len(ids) for c, ids in flagged.items()}
    n = max(1, len(captions))
    return CaptionEvalPoint(step, len(captions), 100 * results["bleu4"], 100 * results["cider"],
                            {c: 100 * counts[c] / n for c in ERROR_CATEGORIES},
                            {im.image_id: text for im, text in zip(images, captions)})


def evaluate(model: Any, processor: Any, images: Sequence[EvalImage], prompt: str, step: int, *,
             batch_size: int = 8, max_new_tokens: int = 30, min_new_tokens: int = 8) -> CaptionEvalPoint:
    """Caption `images` with `model` (greedy; eval mode restored afterwards), then score and audit them."""
    from finetune.caption import generate_captions
    from finetune.tiling import load_image

    was_training = model.training
    model.eval()
    try:
        texts = generate_captions(model, processor, [load_image(im.path) for im in images], prompt,
                                  batch_size=batch_size, max_new_tokens=max_new_tokens,
                                  min_new_tokens=min_new_tokens, progress=False)
    finally:
        if was_training:
            model.train()
    return score_and_audit(step, images, texts)


def write_curves(points: Sequence[CaptionEvalPoint], out_dir: str | Path) -> dict[str, Path]:
    """`caption_eval.jsonl` and `.csv` (one row per step), the captions of each step, and `caption_eval.png`."""
    out = Path(out_dir)
    rows = [p.row() for p in points]
    paths = {"jsonl": out / f"{CURVES}.jsonl", "csv": out / f"{CURVES}.csv", "png": out / f"{CURVES}.png",
             "captions": out / f"{CURVES}_captions.jsonl"}
    paths["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    with paths["csv"].open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["step"])
        w.writeheader()
        w.writerows(rows)
    paths["captions"].write_text("".join(
        json.dumps({"step": p.step, "image_id": k, "caption": v}, ensure_ascii=False) + "\n"
        for p in points for k, v in p.captions.items()))
    plot_curves(points, paths["png"])
    return paths


def plot_curves(points: Sequence[CaptionEvalPoint], path: str | Path) -> Path:
    """Two panels over training steps: BLEU-4 / CIDEr-D, and audit errors per 100 captions by category."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    steps = [p.step for p in points]
    left.plot(steps, [p.bleu4 for p in points], marker="o", label="BLEU-4")
    left.plot(steps, [p.cider_d for p in points], marker="s", label="CIDEr-D")
    left.set(xlabel="step", ylabel="score (x100)", title=f"held-out captions (n={points[0].n_images if points else 0})")
    left.legend(fontsize=8)
    for c in ERROR_CATEGORIES:
        right.plot(steps, [p.errors_per_100[c] for p in points], marker=".", label=c.replace("_", "-"))
    right.plot(steps, [p.total_errors_per_100 for p in points], color="black", linewidth=2, label="total")
    right.set(xlabel="step", ylabel="captions with errors per 100", title="audit of the generated captions")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(str(path))
    return Path(path)


def make_callback(processor: Any, images: Sequence[EvalImage], prompt: str, out_dir: str | Path,
                  *, batch_size: int = 8) -> Any:
    """A Trainer callback: captions/scores/audits `images` before training and after every evaluation (process 0),
    rewriting the curves each time so an interrupted run keeps what it measured."""
    from transformers import TrainerCallback

    class CaptionEvalCallback(TrainerCallback):
        def __init__(self) -> None:
            self.points: list[CaptionEvalPoint] = []

        def _run(self, state: Any, model: Any) -> None:
            if not state.is_world_process_zero or any(p.step == state.global_step for p in self.points):
                return
            self.points.append(evaluate(model, processor, images, prompt, int(state.global_step), batch_size=batch_size))
            write_curves(self.points, out_dir)

        def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: D401 - Trainer hook
            self._run(state, model)

        def on_evaluate(self, args, state, control, model=None, **kwargs):  # noqa: D401 - Trainer hook
            self._run(state, model)

    return CaptionEvalCallback()


def points_as_dicts(points: Sequence[CaptionEvalPoint]) -> list[dict[str, Any]]:
    """Rows without the captions, for train_log.json."""
    return [{k: v for k, v in asdict(p).items() if k != "captions"} for p in points]
