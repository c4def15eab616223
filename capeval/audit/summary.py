"""Pass 1 of the audit: the corpus statistics every check needs, as one mergeable summary.

The audit is two passes. `CorpusSummary.from_captions` reads a shard of captions (whole images) and counts what the
checks later consult about the corpus as a whole: word, bigram and trigram counts, how many images use each word,
co-occurrence counts of the content words of the confusion sets, and the document frequencies behind leave-one-out
CIDEr-D (only when asked for: they cost more than the rest together and only the detail checks read them).
Summaries of disjoint shards `merge` (associative, commutative, exact: every field is a sum of integer counts), so a
corpus can be summarised in parallel or streamed; `audit.audit_images(shard, merged)` is pass 2.
Splitting by image matters: images are the unit (image counts and CIDEr document frequencies count images), and
`merge` refuses summaries that share an image.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from capeval.audit.corpus import BOS, EOS, words_of
from capeval.errors import CapevalError
from capeval.records import CaptionSet

CIDER_N = 4  # n-gram orders of CIDEr-D
LOO_MIN_CAPTIONS = 3  # images with fewer captions get no leave-one-out CIDEr-D (need two references per document)
_SEP = " "  # joins the tokens of an n-gram key (as metrics.ngrams.gram_strings: tokens hold no spaces once split)


def gram_key(tokens: Iterable[str]) -> str:
    """The dictionary key of an n-gram of PTB tokens."""
    return _SEP.join(tokens)


@dataclass
class CorpusSummary:
    """Sufficient statistics of a caption corpus for the audit (pass 1). Picklable; `merge` adds two summaries of
    disjoint sets of images."""

    n_captions: int = 0
    image_ids: frozenset[str] = frozenset()
    unigrams: Counter = field(default_factory=Counter)  # word -> occurrences
    bigrams: Counter = field(default_factory=Counter)  # (w1, w2) -> occurrences, <s>/</s> at caption edges
    trigrams: Counter = field(default_factory=Counter)  # (w1, w2, w3) -> occurrences
    word_images: Counter = field(default_factory=Counter)  # word -> images with a caption using it
    cooccurrence: Counter = field(default_factory=Counter)  # (target, word) -> captions holding both
    cider_docs: int | None = 0  # leave-one-out documents (captions of images with >= 3 captions); None: not counted
    cider_df: Counter | None = field(default_factory=Counter)  # gram_key -> leave-one-out document frequency (or None)

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def n_tokens(self) -> int:
        return sum(self.unigrams.values())

    @property
    def has_cider(self) -> bool:
        """Whether the leave-one-out CIDEr-D statistics were counted (`from_captions(..., cider=True)`)."""
        return self.cider_df is not None and self.cider_docs is not None

    @classmethod
    def from_captions(cls, captions: CaptionSet, *, cider: bool = True) -> CorpusSummary:
        """Summarise one shard (whole images: every caption of an image in the same shard); `cider=False` leaves
        out the leave-one-out CIDEr-D statistics (`cider_docs`, `cider_df` None), which only the detail checks read."""
        from capeval.audit.real_word import STOP_WORDS, load_confusion_sets

        words = [words_of(c.text) for c in captions.captions]
        uni: Counter = Counter(itertools.chain.from_iterable(words))
        padded = [(BOS, *ws, EOS) for ws in words]
        bi: Counter = Counter(itertools.chain.from_iterable(zip(p, p[1:]) for p in padded))
        tri: Counter = Counter(itertools.chain.from_iterable(zip(p, p[1:], p[2:]) for p in padded))
        by_image: dict[str, set[str]] = {}
        for c, ws in zip(captions.captions, words):
            by_image.setdefault(c.image_id, set()).update(ws)
        word_images: Counter = Counter(itertools.chain.from_iterable(by_image.values()))
        targets = load_confusion_sets().content
        cooc: Counter = Counter()
        for ws in words:
            present = targets.intersection(ws)
            if present:
                ctx = set(ws) - STOP_WORDS
                for t in present:
                    cooc.update((t, x) for x in ctx if x != t)
        docs, df = _cider_document_frequencies(captions) if cider else (None, None)
        return cls(len(captions), frozenset(by_image), uni, bi, tri, word_images, cooc, docs, df)

    def merge(self, other: CorpusSummary) -> CorpusSummary:
        """The summary of both shards (which must not share an image); neither input is changed."""
        shared = self.image_ids & other.image_ids
        if shared:
            raise CapevalError(f"cannot merge audit summaries that share {len(shared)} image(s) (e.g. "
                               f"{sorted(shared)[0]!r}): split a corpus by image, every caption of an image in one shard")
        return CorpusSummary(
            self.n_captions + other.n_captions, self.image_ids | other.image_ids,
            self.unigrams + other.unigrams, self.bigrams + other.bigrams, self.trigrams + other.trigrams,
            self.word_images + other.word_images, self.cooccurrence + other.cooccurrence,
            *_add_cider(self, other))

    @classmethod
    def merge_all(cls, summaries: Iterable[CorpusSummary]) -> CorpusSummary:
        out = cls()
        for s in summaries:
            out = out.merge(s)
        return out


def _add_cider(a: CorpusSummary, b: CorpusSummary) -> tuple[int | None, Counter | None]:
    """The merged CIDEr-D statistics: their sums, or None when either shard was summarised without them."""
    if not (a.has_cider and b.has_cider):
        return None, None
    return a.cider_docs + b.cider_docs, a.cider_df + b.cider_df


def _cider_document_frequencies(captions: CaptionSet) -> tuple[int, Counter]:
    """Leave-one-out CIDEr-D treats every caption of an image with m >= 3 captions as a document whose references are
    its m-1 siblings; an n-gram's document frequency counts the documents whose references hold it: all m documents
    of an image when two or more of its captions hold it, m-1 when exactly one does (as pycocoevalcap counts).
    Counted with the metrics' integer n-gram tables; keys are the n-grams' space-joined PTB tokens."""
    import numpy as np

    from capeval.metrics.ngrams import Vocab, build_grams, encode_batch, gram_strings
    from capeval.text.tokenize import PTBTokenizer

    groups = [caps for caps in captions.by_image().values() if len(caps) >= LOO_MIN_CAPTIONS]
    if not groups:
        return 0, Counter()
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    tok = PTBTokenizer().tokenize
    vocab = Vocab()
    ids, lengths, _ = encode_batch([tuple(tok(c.text)) for g in groups for c in g], vocab)
    table = build_grams(ids, lengths, n=CIDER_N)
    img = np.repeat(np.arange(len(groups)), sizes)
    strings = gram_strings(table, vocab)
    df: Counter = Counter()
    for k in range(table.n):
        num = max(table.num_grams[k], 1)
        ig, holders = np.unique(img[table.cap[k]] * num + table.gram[k], return_counts=True)
        m = sizes[ig // num]
        counts = np.bincount(ig % num, weights=np.where(holders >= 2, m, m - 1), minlength=num)
        names = strings[k]
        df.update({names[g]: int(c) for g, c in enumerate(counts.tolist()) if c})
    return int(sizes.sum()), df
