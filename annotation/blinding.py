"""Blinding: what is done to captions before an annotator sees them, and how distinguishable the systems remain.

References are usually capitalised and end with a period while system outputs are lower-case without one: a tell
that lets annotators recognise the source. `normalise_caption` removes it (case, spacing before punctuation, final
punctuation); `distinguishability` reports what is left per system (length, and the raw surface tells).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?'])")
_FINAL_PUNCT = re.compile(r"[\s.,;:!?]+$")
_SPACES = re.compile(r"\s+")


def normalise_caption(text: str) -> str:
    """Lower case, single spaces, no space before punctuation, no final punctuation ('A dog .' -> 'a dog')."""
    t = _SPACES.sub(" ", text.strip())
    t = _SPACE_BEFORE_PUNCT.sub(r"\1", t)
    t = _FINAL_PUNCT.sub("", t)
    return t.lower() if t else text.strip()


def distinguishability(rows: Iterable[tuple[str, str]], normalised: bool) -> pd.DataFrame:
    """Per system: captions, mean and sd of length in words, and the share that start with a capital or end with
    punctuation as stored (and after what annotators see). `rows` are (system, caption) pairs."""
    df = pd.DataFrame(list(rows), columns=["system", "caption"])
    if df.empty:
        return pd.DataFrame(columns=["system", "captions", "mean_words", "sd_words", "capitalised_raw",
                                     "final_punct_raw", "capitalised_shown", "final_punct_shown"])
    shown = df["caption"].map(normalise_caption) if normalised else df["caption"]
    df = df.assign(words=shown.str.split().str.len(), cap_raw=df["caption"].str.strip().str[:1].str.isupper(),
                   punct_raw=df["caption"].str.strip().str[-1:].isin(list(".!?;:,")),
                   cap_shown=shown.str[:1].str.isupper(), punct_shown=shown.str[-1:].isin(list(".!?;:,")))
    out = df.groupby("system").agg(captions=("caption", "size"), mean_words=("words", "mean"),
                                   sd_words=("words", "std"), capitalised_raw=("cap_raw", "mean"),
                                   final_punct_raw=("punct_raw", "mean"), capitalised_shown=("cap_shown", "mean"),
                                   final_punct_shown=("punct_shown", "mean")).reset_index()
    return out.round(3)
