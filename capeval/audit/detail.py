"""Detail checks that need the other references of the same image: thin captions (`low_detail`), outliers by
leave-one-out CIDEr-D (`off_consensus`) and repeated captions (`duplicate`)."""

from __future__ import annotations

import re
from collections import Counter
from statistics import median

import numpy as np

from capeval.audit.finding import Finding
from capeval.audit.spelling import Lexicon
from capeval.records import Caption, CaptionSet

_NON_OBJECT = frozenset(
    "a an the of on in at to with and or is are was were be been being it its this that these those there their "
    "his her he she they them some two three four five six one several many few other while by for from as up down "
    "near next top front side behind into onto over under some very out off back each another around about "
    "white black brown red blue green yellow orange pink purple gray grey silver gold large small big little young "
    "old tall long short different various couple group bunch lot pair picture image photo view close has have "
    "sitting standing laying lying holding looking walking riding playing eating parked area".split()
)
_SYNONYMS = {w: "person" for w in ("man", "woman", "person", "people", "guy", "lady", "boy", "girl", "child", "kid",
                                    "men", "women", "children", "kids", "player", "persons", "adult", "gentleman")}
OUTLIER_PERCENTILE = 1.5
_NORM = re.compile(r"[^a-z0-9 ]+")


def _objects(words: list[str], lex: Lexicon) -> set[str]:
    """Content nouns a caption mentions, singularised, with person words merged."""
    out = set()
    for w in words:
        if w in _NON_OBJECT or len(w) < 3 or not w.isalpha() or w.endswith(("ing", "ly", "ed")):
            continue
        if w in _SYNONYMS:
            out.add(_SYNONYMS[w])
            continue
        if w.endswith("s") and not w.endswith("ss") and lex.known_base(w[:-1]):
            w = w[:-1]
        out.add(w)
    return out


def normalize_caption(text: str) -> str:
    return " ".join(_NORM.sub(" ", text.lower()).split())


def _whole(c: Caption, category: str, rule: str, conf: float) -> Finding:
    stripped = c.text.strip()
    start = c.text.find(stripped[:1]) if stripped else 0
    return Finding(c.caption_id, c.image_id, category, start, start + len(stripped), stripped, None, rule,
                   round(float(conf), 3))


def duplicates(captions: CaptionSet) -> list[Finding]:
    """Every caption repeated within its image (after lowercasing and removing punctuation). The first copy gets
    rule `duplicate.first_copy` (references.kept.json keeps it), later copies `duplicate.same_image`."""
    out = []
    for caps in captions.by_image().values():
        keys = [normalize_caption(c.text) for c in caps]
        counts = Counter(k for k in keys if k)
        seen: set[str] = set()
        for c, key in zip(caps, keys):
            if key and counts[key] > 1:
                rule = "duplicate.same_image" if key in seen else "duplicate.first_copy"
                out.append(_whole(c, "duplicate", rule, 0.95))
            seen.add(key)
    return out


def low_detail(captions: CaptionSet, words: dict[str, list[str]], lex: Lexicon) -> list[Finding]:
    """Captions naming at most a third of the objects their siblings agree on, while siblings name most of them,
    and clearly shorter than the siblings."""
    out = []
    for caps in captions.by_image().values():
        if len(caps) < 4:
            continue
        objs = [_objects(words[c.caption_id], lex) for c in caps]
        lens = [len(words[c.caption_id]) for c in caps]
        votes: Counter = Counter()
        for o in objs:
            votes.update(o)
        cover: list[float | None] = []
        for o in objs:
            # objects at least two OTHER captions name
            agreed = [x for x, v in votes.items() if v - (x in o) >= 2]
            cover.append(sum(1 for x in agreed if x in o) / len(agreed) if len(agreed) >= 3 else None)
        for i, c in enumerate(caps):
            if cover[i] is None:
                continue
            others = [v for j, v in enumerate(cover) if j != i and v is not None]
            if not others:
                continue
            sib_cov = sum(others) / len(others)
            sib_len = median(lens[j] for j in range(len(caps)) if j != i)
            if cover[i] <= 0.34 and sib_cov >= 0.6 and lens[i] <= 0.7 * sib_len:
                conf = min(0.95, 0.55 + 0.5 * (sib_cov - cover[i]))
                out.append(_whole(c, "low_detail", "low_detail.few_agreed_objects", conf))
    return out


def loo_cider(captions: CaptionSet) -> dict[str, float]:
    """Leave-one-out CIDEr-D of every caption against the other captions of its image, in one metric call."""
    from capeval.metrics import compute_metric

    cands: list[str] = []
    refs: list[list[str]] = []
    ids: list[str] = []
    for caps in captions.by_image().values():
        if len(caps) < 3:
            continue
        for i, c in enumerate(caps):
            ids.append(c.caption_id)
            cands.append(c.text)
            refs.append([o.text for j, o in enumerate(caps) if j != i])
    if not ids:
        return {}
    result = compute_metric("cider", cands, refs)[0]
    return dict(zip(ids, np.asarray(result.per_item, dtype=float).tolist()))


def off_consensus(captions: CaptionSet, scores: dict[str, float]) -> list[Finding]:
    """Captions whose leave-one-out CIDEr-D is near zero, in the corpus' bottom 1.5%, and far below their siblings'."""
    if not scores:
        return []
    floor = float(np.percentile(list(scores.values()), OUTLIER_PERCENTILE))
    out = []
    for caps in captions.by_image().values():
        vals = [scores.get(c.caption_id) for c in caps]
        for i, c in enumerate(caps):
            s = vals[i]
            if s is None:
                continue
            sib = [v for j, v in enumerate(vals) if j != i and v is not None]
            if not sib:
                continue
            m = median(sib)
            if s <= floor and s < 0.2 * m and s < 0.1:
                conf = min(0.9, 0.55 + 0.3 * (1 - s / max(m, 1e-9)))
                out.append(_whole(c, "off_consensus", "off_consensus.loo_cider", conf))
    return out
