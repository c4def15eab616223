"""Format guard: do the training targets look like what evaluation expects?

Compares the answers in a training JSONL with the evaluation references (length, casing, final punctuation,
vocabulary) and the training prompt with the evaluation prompt. Drift here is how a tuned model ends up
answering in a format the metric scores as wrong (the story behind this project: accuracy fell to zero).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from capeval.errors import InputError

_WORD = re.compile(r"[a-z0-9']+")


@dataclass
class Check:
    """One comparison: the training figure, the evaluation figure, and a warning when they drift apart."""

    name: str
    train: float | str
    eval: float | str
    ok: bool
    message: str


@dataclass
class FormatReport:
    """All checks; `warnings` are the failing ones."""

    n_train: int
    n_eval: int
    checks: list[Check] = field(default_factory=list)

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.warnings


def _stats(texts: Sequence[str]) -> dict[str, float]:
    words = [len(t.split()) for t in texts]
    stripped = [t.strip() for t in texts if t.strip()]
    return {
        "median_words": float(statistics.median(words)),
        "capitalised": sum(t[0].isupper() for t in stripped) / max(1, len(stripped)),
        "final_punct": sum(t[-1] in ".!?" for t in stripped) / max(1, len(stripped)),
        "multi_sentence": sum(len(re.findall(r"[.!?](\s|$)", t)) > 1 for t in stripped) / max(1, len(stripped)),
    }


def compare(
    train_answers: Sequence[str],
    train_prompts: Sequence[str],
    eval_refs: Sequence[str],
    eval_prompt: str,
    *,
    length_ratio: float = 1.5,
    share_gap: float = 0.3,
    min_coverage: float = 0.6,
) -> FormatReport:
    """Compare training targets/prompts with evaluation references/prompt; thresholds are configurable."""
    if not train_answers:
        raise InputError("no training answers to check")
    if not eval_refs:
        raise InputError("no evaluation references to check against")
    t, e = _stats(train_answers), _stats(eval_refs)
    rep = FormatReport(len(train_answers), len(eval_refs))
    r = t["median_words"] / max(e["median_words"], 1e-9)
    rep.checks.append(Check(
        "answer length (median words)", t["median_words"], e["median_words"], 1 / length_ratio <= r <= length_ratio,
        f"training answers are {r:.2f}x the length of the evaluation references",
    ))
    for key, label in (("capitalised", "starts with a capital"), ("final_punct", "ends with . ! or ?"),
                       ("multi_sentence", "more than one sentence")):
        gap = t[key] - e[key]
        rep.checks.append(Check(
            f"{label} (share)", round(t[key], 3), round(e[key], 3), abs(gap) <= share_gap,
            f"{t[key]:.0%} of training answers vs {e[key]:.0%} of references {label}",
        ))
    train_vocab = {w for a in train_answers for w in _WORD.findall(a.lower())}
    ref_tokens = [w for ref in eval_refs for w in _WORD.findall(ref.lower())]
    coverage = sum(w in train_vocab for w in ref_tokens) / max(1, len(ref_tokens))
    rep.checks.append(Check(
        "vocabulary overlap (reference tokens seen in training answers)", round(coverage, 3), 1.0,
        coverage >= min_coverage, f"{coverage:.0%} of evaluation reference tokens occur in the training answers",
    ))
    prompts = sorted(set(p.strip() for p in train_prompts))
    from rapidfuzz import fuzz

    best = max(prompts, key=lambda p: fuzz.ratio(p, eval_prompt.strip())) if prompts else ""
    sim = fuzz.ratio(best, eval_prompt.strip()) / 100 if best else 0.0
    same = eval_prompt.strip() in prompts
    rep.checks.append(Check(
        "prompt wording", best if len(prompts) == 1 else f"{len(prompts)} prompts (closest: {best})", eval_prompt.strip(), same,
        "evaluation prompt is one of the training prompts" if same
        else f"evaluation prompt differs from the training prompt (similarity {sim:.0%})",
    ))
    return rep


def check_format(data: str | Path, eval_prompt: str, eval_refs: str | Path, **thresholds: float) -> FormatReport:
    """Read a training JSONL and an evaluation reference file (any format capeval reads) and compare them."""
    from capeval.io import load_captions
    from finetune.data import read_conversations

    samples = read_conversations(data, check_images=False)
    caps = [s for s in samples if s.image is not None] or samples
    refs = load_captions(eval_refs)
    texts = [c.text for c in refs.captions]
    if not texts:
        raise InputError("the evaluation reference file has no captions", path=str(eval_refs))
    return compare([s.answer for s in caps], [s.prompt for s in caps], texts, eval_prompt, **thresholds)


class FormatDrift(InputError):
    """Training targets or prompts drift from what evaluation expects; raised before training starts."""


def guard_training(samples: Sequence[object], eval_prompt: str, eval_refs: str | Path | None = None,
                   *, allow_drift: bool = False) -> FormatReport:
    """The check `train` runs before loading the model: the training prompt against the evaluation prompt and, with
    evaluation references (any format or dataset name capeval reads), the answers' length, casing, punctuation
    and vocabulary. Drift stops training (one line naming each warning) unless `allow_drift`."""
    caps = [s for s in samples if getattr(s, "image", None) is not None] or list(samples)
    answers = [s.answer for s in caps]  # type: ignore[attr-defined]
    prompts = [s.prompt for s in caps]  # type: ignore[attr-defined]
    if eval_refs is not None:
        from capeval.io import load_captions

        texts = [c.text for c in load_captions(eval_refs).captions]
        rep = compare(answers, prompts, texts, eval_prompt)
    else:  # without evaluation references only the prompt can be compared
        rep = compare(answers, prompts, answers, eval_prompt)
        rep.checks = [c for c in rep.checks if c.name == "prompt wording"]
    if rep.warnings and not allow_drift:
        raise FormatDrift(
            "training data drifts from the evaluation format: " + "; ".join(c.message for c in rep.warnings)
            + " (fix the data, or pass --allow-format-drift to train anyway)"
        )
    return rep
