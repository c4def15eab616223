"""The common metric interface: every metric returns corpus and per-caption scores with a reproducibility Signature."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from capeval.errors import InputError


@dataclass(frozen=True)
class Signature:
    """Everything needed to reproduce a number, sacrebleu style: `cider-d|n:4|sigma:6|df:eval-refs(n=5000)|tok:ptb-py|v:0.1.0`."""

    name: str
    info: tuple[tuple[str, str], ...] = ()

    @classmethod
    def make(cls, name: str, **info: object) -> Signature:
        return cls(name, tuple((k, str(v)) for k, v in info.items()))

    def format(self) -> str:
        return "|".join([self.name, *(f"{k}:{v}" for k, v in self.info)])

    def __str__(self) -> str:
        return self.format()

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, **dict(self.info)}


@dataclass
class MetricResult:
    """One score: `corpus` as the reference implementation reports it, `per_item` aligned with the input candidates."""

    name: str
    corpus: float
    per_item: np.ndarray
    signature: Signature
    details: dict[str, object] = field(default_factory=dict)


def check_inputs(candidates: Sequence[str], references: Sequence[Sequence[str]], metric: str = "") -> None:
    """One non-empty reference list per candidate; anything else is an InputError naming the first bad item."""
    who = f"{metric}: " if metric else ""
    if isinstance(candidates, str) or len(candidates) != len(references):
        raise InputError(f"{who}expected one reference list per candidate; got {len(candidates)} candidates and "
                         f"{len(references)} reference lists")
    for i, c in enumerate(candidates):
        if type(c) is not str:
            raise InputError(f"{who}candidate {i} is {_kind(c)}; expected a caption string (a missing caption is "
                             "not an empty one: drop the image or pass '' explicitly)")
    for i, rs in enumerate(references):
        if isinstance(rs, str) or len(rs) == 0:
            raise InputError(f"{who}candidate {i} has no reference list (expected a non-empty list of strings)")
        for j, r in enumerate(rs):
            if type(r) is not str:
                raise InputError(f"{who}reference {j} of candidate {i} is {_kind(r)}; expected a caption string")


def _kind(value: object) -> str:
    return "None" if value is None else f"a {type(value).__name__} ({str(value)[:40]!r})"


class Metric(ABC):
    """A metric family (e.g. `bleu` yields bleu1..bleu4). Subclasses cache expensive resources, never global state."""

    #: registry key used on the command line
    name: str = ""
    #: score names this metric produces, in order
    outputs: tuple[str, ...] = ()

    def unavailable_reason(self) -> str | None:
        """None when the metric can run here, else what is missing and how to get it."""
        return None

    @abstractmethod
    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[MetricResult]:
        """Score raw candidate strings against their reference lists (same length, same order)."""

    def close(self) -> None:
        """Release external resources (a Java process, a model)."""

    def __enter__(self) -> Metric:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
