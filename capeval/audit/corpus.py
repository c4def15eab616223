"""Corpus statistics the checkers share: the words of every caption, unigram/bigram/trigram counts and how many
images use a word.

Captions are their own best language model for caption slang ("frisbee", "skateboarder"): counts from the corpus
under audit decide what is a word and which of two confusable words fits a context. Counting is vectorised (word
ids and numpy), so building the statistics stays a small share of an audit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from capeval.audit.finding import WORD_RE
from capeval.records import CaptionSet

BOS, EOS = "<s>", "</s>"


def words_of(text: str) -> list[str]:
    """Lowercased word tokens of a caption, in the order of `finding.tokenize`."""
    return WORD_RE.findall(text.replace("\u2019", "'").lower())


def _occurrences(keys: np.ndarray) -> np.ndarray:
    """For each key, how many times it occurs in `keys`."""
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return counts[inverse]


def _rare_context_positions(arr: np.ndarray, bi: np.ndarray, tri: np.ndarray,
                            lengths: list[int]) -> dict[int, list[int]]:
    """Word positions whose left bigram, right bigram and trigram each occur only there in the whole corpus:
    the only places where a real-word slip can hide (the real-word checker looks at nothing else)."""
    centre = np.arange(1, len(arr) - 1)
    word = (arr[centre] > 1)
    left = _occurrences(bi)[centre - 1]
    right = _occurrences(bi)[centre]
    trio = _occurrences(tri)[centre - 1]
    rare = word & (left <= 1) & (right <= 1) & (trio <= 1)
    # map flat positions back to (caption, word index): each caption is <s> w1 .. wn </s>
    starts = np.cumsum([0] + [n + 2 for n in lengths[:-1]])
    cap_of = np.repeat(np.arange(len(lengths)), [n + 2 for n in lengths])
    out: dict[int, list[int]] = {}
    for pos in centre[rare].tolist():
        k = int(cap_of[pos])
        out.setdefault(k, []).append(pos - int(starts[k]) - 1)
    return out


def _count(keys: np.ndarray) -> dict[int, int]:
    uniq, counts = np.unique(keys, return_counts=True)
    return dict(zip(uniq.tolist(), counts.tolist()))


@dataclass
class CorpusStats:
    """Counts over the lowercased words of one caption corpus (<s> and </s> mark caption boundaries)."""

    words: list[list[str]]
    vocab: dict[str, int]
    unigram_counts: np.ndarray
    image_count_arr: np.ndarray
    _bi: dict[int, int]
    _tri: dict[int, int]
    n_images: int
    rare_context: dict[int, list[int]]  # caption index -> word positions seen in this context nowhere else

    @classmethod
    def build(cls, captions: CaptionSet) -> CorpusStats:
        words = [words_of(c.text) for c in captions.captions]
        # ids in order of first use (dict.fromkeys keeps it), then one C-level map over the flat token stream
        vocab: dict[str, int] = {BOS: 0, EOS: 1}
        for w in dict.fromkeys(itertools.chain.from_iterable(words)):
            vocab.setdefault(w, len(vocab))
        lengths = [len(ws) for ws in words]
        stream = itertools.chain.from_iterable((BOS, *ws, EOS) for ws in words)
        arr = np.fromiter(map(vocab.__getitem__, stream), dtype=np.int64, count=sum(lengths) + 2 * len(words))
        image_index: dict[str, int] = {}
        cap_img = [image_index.setdefault(cap.image_id, len(image_index)) for cap in captions.captions]
        img_of = np.repeat(np.asarray(cap_img, dtype=np.int64), np.asarray(lengths, dtype=np.int64) + 2)
        V = len(vocab)
        uni = np.bincount(arr, minlength=V)
        uni[:2] = 0
        bi = arr[:-1] * V + arr[1:]
        bi_ok = arr[:-1] != 1  # no pair across a caption boundary
        tri = (arr[:-2] * V + arr[1:-1]) * V + arr[2:]
        tri_ok = (arr[:-2] != 1) & (arr[1:-1] != 1)
        img = img_of
        pairs = np.unique(img * V + arr)
        img_counts = np.bincount(pairs % V, minlength=V)
        img_counts[:2] = 0
        rare = _rare_context_positions(arr, bi, tri, [len(ws) for ws in words])
        return cls(words, vocab, uni, img_counts, _count(bi[bi_ok]), _count(tri[tri_ok]), len(image_index), rare)

    @property
    def n_tokens(self) -> int:
        return int(self.unigram_counts.sum())

    def uni(self, w: str) -> int:
        i = self.vocab.get(w)
        return 0 if i is None else int(self.unigram_counts[i])

    def images(self, w: str) -> int:
        """How many images have at least one caption using `w`."""
        i = self.vocab.get(w)
        return 0 if i is None else int(self.image_count_arr[i])

    def bi(self, a: str, b: str) -> int:
        i, j = self.vocab.get(a), self.vocab.get(b)
        if i is None or j is None:
            return 0
        return self._bi.get(i * len(self.vocab) + j, 0)

    def tri(self, a: str, b: str, c: str) -> int:
        i, j, k = self.vocab.get(a), self.vocab.get(b), self.vocab.get(c)
        if i is None or j is None or k is None:
            return 0
        V = len(self.vocab)
        return self._tri.get((i * V + j) * V + k, 0)

    def word_image_items(self):
        """(word, number of images) for every corpus word."""
        counts = self.image_count_arr.tolist()
        return ((w, counts[i]) for w, i in self.vocab.items() if i > 1)
