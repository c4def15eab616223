"""Corpus statistics the checkers share: the words of every caption, unigram/bigram/trigram counts and how many
images use a word.

Captions are their own best language model for caption slang ("frisbee", "skateboarder"): counts from the corpus
under audit decide what is a word and which of two confusable words fits a context. The counts live in a mergeable
`summary.CorpusSummary` (pass 1); `CorpusStats` is the checkers' view of one.
"""

from __future__ import annotations

from capeval.audit.finding import WORD_RE
from capeval.records import CaptionSet

BOS, EOS = "<s>", "</s>"


def words_of(text: str) -> tuple[str, ...]:
    """Lowercased word tokens of a caption, in the order of `finding.tokenize` (a tuple of strings: the cyclic
    garbage collector stops tracking it, so a corpus of them held through an audit costs no collection time)."""
    return tuple(WORD_RE.findall(text.replace("\u2019", "'").lower()))


class CorpusStats:
    """Read-only view of a `CorpusSummary` with the look-ups the checkers use (counts of words, bigrams, trigrams,
    images per word). The same view over a merged summary answers the same for every shard."""

    def __init__(self, summary) -> None:
        self.summary = summary
        self._uni = summary.unigrams
        self._bi = summary.bigrams
        self._tri = summary.trigrams
        self._img = summary.word_images
        self.n_images = summary.n_images
        self.n_captions = summary.n_captions
        self.n_tokens = summary.n_tokens

    @classmethod
    def build(cls, captions: CaptionSet) -> CorpusStats:
        from capeval.audit.summary import CorpusSummary

        return cls(CorpusSummary.from_captions(captions))

    def uni(self, w: str) -> int:
        return self._uni.get(w, 0)

    def images(self, w: str) -> int:
        """How many images have at least one caption using `w`."""
        return self._img.get(w, 0)

    def bi(self, a: str, b: str) -> int:
        return self._bi.get((a, b), 0)

    def tri(self, a: str, b: str, c: str) -> int:
        return self._tri.get((a, b, c), 0)

    def continuations(self, firsts: frozenset[str]) -> dict[tuple[str, str], tuple[tuple[str, int], ...]]:
        """(a, b) -> every (c, count) of the trigrams a b c whose a is in `firsts` (one pass over the trigrams,
        kept per set of first words: which words follow "two bear" answers whether "bear" heads or modifies)."""
        cache = self.__dict__.setdefault("_continuations", {})
        if firsts not in cache:
            out: dict[tuple[str, str], list[tuple[str, int]]] = {}
            for (a, b, c), n in self._tri.items():
                if a in firsts:
                    out.setdefault((a, b), []).append((c, n))
            cache[firsts] = {k: tuple(v) for k, v in out.items()}
        return cache[firsts]

    def word_image_items(self):
        """(word, number of images) for every corpus word, in alphabetical order (the same for any shard order)."""
        return sorted(self._img.items())

    def rare_positions(self, words: list[str]) -> list[int]:
        """Word positions of one caption whose left bigram, right bigram and trigram each occur only there in the
        whole corpus: the only places where a real-word slip can hide from the corpus counts."""
        bi, tri = self._bi, self._tri
        padded = (BOS, *words, EOS)
        return [i - 1 for i in range(1, len(padded) - 1)
                if bi.get((padded[i - 1], padded[i]), 0) <= 1 and bi.get((padded[i], padded[i + 1]), 0) <= 1
                and tri.get((padded[i - 1], padded[i], padded[i + 1]), 0) <= 1]
