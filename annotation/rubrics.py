"""Rating rubrics: criteria, allowed values, the on-screen explanation of every level, and keyboard shortcuts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Criterion:
    """One thing rated. `kind`: scale (ordered integer levels), flag (0/1 checkbox), choice (pairwise A/B/tie)."""

    name: str
    label: str
    kind: str
    levels: tuple[tuple[str, str], ...]  # (value, explanation)
    keys: tuple[str, ...]  # keyboard key per level (flag: one key toggles)
    required: bool = True

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.levels)


@dataclass(frozen=True)
class Rubric:
    name: str
    title: str
    scale: str  # written to the export's `scale` column
    criteria: tuple[Criterion, ...]
    pairwise: bool = False
    instructions: str = ""

    def criterion(self, name: str) -> Criterion:
        for c in self.criteria:
            if c.name == name:
                return c
        raise ValueError(f"unknown criterion {name!r}; expected one of {[c.name for c in self.criteria]}")

    def parse_value(self, criterion: str, value: Any) -> Any:
        """Check one value of one criterion (from the browser, the API or the YAML); raises ValueError with a reason."""
        c = self.criterion(criterion)
        if c.kind == "flag":
            if isinstance(value, bool):
                return int(value)
            if value in (0, 1, "0", "1"):
                return int(value)
            raise ValueError(f"{c.name}: expected true/false")
        if c.kind == "choice":
            v = str(value).strip() if value is not None else ""
            if v not in c.values:
                raise ValueError(f"{c.name}: expected one of {', '.join(c.values)}")
            return v
        try:
            if isinstance(value, bool):
                raise TypeError
            v = int(str(value).strip())
        except (TypeError, ValueError):
            raise ValueError(f"{c.name}: expected one of {', '.join(c.values)}") from None
        if str(v) not in c.values:
            raise ValueError(f"{c.name}: expected one of {', '.join(c.values)}")
        return v

    def missing(self, raw: dict[str, Any]) -> list[Criterion]:
        """The required criteria without a value in `raw` (an incomplete submission)."""
        return [c for c in self.criteria if c.kind != "flag" and c.required and raw.get(c.name) in (None, "")]

    def parse(self, raw: dict[str, Any]) -> dict[str, Any]:
        """All criteria of one submission, checked; a missing required rating raises ValueError."""
        out: dict[str, Any] = {}
        for c in self.criteria:
            v = raw.get(c.name)
            if v is None or v == "":
                if c.kind == "flag":
                    out[c.name] = 0
                    continue
                raise ValueError(f"choose a rating for {c.label}")
            out[c.name] = self.parse_value(c.name, v)
        return out

    def help_markdown(self) -> str:
        """The explanation of every level, shown beside the rating controls."""
        lines = [self.instructions, ""] if self.instructions else []
        for c in self.criteria:
            lines.append(f"**{c.label}**")
            for (v, text), key in zip(c.levels, c.keys):
                if c.kind == "flag":
                    lines.append(f"- key `{key.upper()}` toggles: {text}")
                else:
                    lines.append(f"- `{key.upper()}` = **{v}**: {text}")
            lines.append("")
        lines.append("`Enter` submits. Shortcuts are off while typing in the comment box.")
        return "\n".join(lines)


THUMB = Rubric(
    name="thumb",
    title="Precision and recall (THumB)",
    scale="thumb",
    instructions="Rate the caption against the image (THumB 1.0, Kasai et al. 2022).",
    criteria=(
        Criterion("precision", "Precision: is what the caption says correct for this image?", "scale", (
            ("1", "mostly wrong: the main content does not match the image"),
            ("2", "several clear errors about objects, counts or actions"),
            ("3", "partly right, one clear error"),
            ("4", "right, with a minor inaccuracy"),
            ("5", "everything said is correct"),
        ), ("1", "2", "3", "4", "5")),
        Criterion("recall", "Recall: how much of the image's important content does it cover?", "scale", (
            ("1", "misses almost all of the important content"),
            ("2", "covers a small part of the important content"),
            ("3", "covers about half of it"),
            ("4", "covers most of it, misses a salient detail"),
            ("5", "covers all the salient content"),
        ), ("q", "w", "e", "r", "t")),  # the keyboard row under 1-5
        Criterion("fluency", "Fluency problem", "flag", (("1", "typos, broken grammar or unnatural wording"),), ("f",),
                  required=False),
        Criterion("conciseness", "Conciseness problem", "flag", (("1", "repetitive or needlessly long"),), ("c",),
                  required=False),
    ),
)

FLICKR8K = Rubric(
    name="flickr8k",
    title="Does the caption describe the image? (Flickr8k expert scale)",
    scale="flickr8k-1-4",
    instructions="The Flickr8k-Expert scale (Hodosh, Young & Hockenmaier 2013).",
    criteria=(
        Criterion("rating", "How well does the caption describe the image?", "scale", (
            ("1", "the caption does not describe the image at all"),
            ("2", "describes minor aspects of the image but does not describe the image"),
            ("3", "almost describes the image, with minor mistakes"),
            ("4", "describes the image"),
        ), ("1", "2", "3", "4")),
    ),
)

PAIRWISE = Rubric(
    name="pairwise",
    title="Which caption describes the image better?",
    scale="pairwise",
    pairwise=True,
    instructions="Two captions of the same image. Pick the one that describes the image better.",
    criteria=(
        Criterion("preference", "Which caption is better?", "choice", (
            ("A", "caption A is better"),
            ("B", "caption B is better"),
            ("tie", "both are equally good (or equally bad)"),
        ), ("a", "b", "t")),
    ),
)

RUBRICS: dict[str, Rubric] = {r.name: r for r in (THUMB, FLICKR8K, PAIRWISE)}
