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
    """Leave-one-out CIDEr-D of every caption (images with at least 3 captions) against the other captions of its
    image: the same numbers as `compute_metric("cider", ...)` on those documents (one per caption, its siblings as
    references, document frequencies over these documents as pycocoevalcap), computed from one n-gram vector per
    caption instead of re-tokenising and re-counting every caption once per sibling."""
    from capeval.metrics.cider import SIGMA
    from capeval.metrics.ngrams import Vocab, build_grams, encode_batch
    from capeval.text.tokenize import PTBTokenizer

    groups = [caps for caps in captions.by_image().values() if len(caps) >= 3]
    if not groups:
        return {}
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # global index of each image's first caption
    ndocs = int(sizes.sum())
    # Encode in the order pycocoevalcap's flat reference list first meets each caption (siblings 1..m-1, then 0),
    # so token and n-gram ids, and with them every floating-point summation order, match compute_metric's.
    enc_orig = np.concatenate([np.append(np.arange(1, m), 0) + f for m, f in zip(sizes.tolist(), first.tolist())])
    flat = [c for g in groups for c in g]
    tok = PTBTokenizer().tokenize
    ids, lengths, _ = encode_batch([tok(flat[i].text) for i in enc_orig.tolist()], Vocab())
    table = build_grams(ids, lengths, n=4)
    orig_enc = np.empty(ndocs, dtype=np.int64)
    orig_enc[enc_orig] = np.arange(ndocs)
    img_enc = np.repeat(np.arange(len(groups)), sizes)  # encoding order keeps images contiguous
    m_enc = sizes[img_enc]
    ref_len = float(np.log(float(ndocs)))
    length = np.maximum(lengths - 1, 0)
    # every ordered (document, reference) pair of one image, documents in caption order, references ascending
    pair_doc_l, pair_ref_l = [], []
    for m, f in zip(sizes.tolist(), first.tolist()):
        d, r = np.divmod(np.arange(m * m), m)
        keep = d != r
        pair_doc_l.append(d[keep] + f)
        pair_ref_l.append(r[keep] + f)
    pair_doc, pair_ref = np.concatenate(pair_doc_l), np.concatenate(pair_ref_l)
    doc_e, ref_e = orig_enc[pair_doc], orig_enc[pair_ref]
    npairs = len(pair_doc)
    val = np.zeros((table.n, npairs))
    for k in range(table.n):
        cap, gram, cnt = table.cap[k], table.gram[k], table.count[k]
        num = max(table.num_grams[k], 1)
        # document frequency: documents of an image whose references hold the n-gram (all m if two or more of
        # its captions have it, else the m-1 documents that do not leave that caption out)
        ig, holders = np.unique(img_enc[cap] * num + gram, return_counts=True)
        m_of = sizes[ig // num]
        df = np.bincount(ig % num, weights=np.where(holders >= 2, m_of, m_of - 1), minlength=num)
        idf = ref_len - np.log(np.maximum(1.0, df))
        w = cnt.astype(np.float64) * idf[gram]
        norm = np.sqrt(np.bincount(cap, weights=w * w, minlength=ndocs))
        # expand each pair into its reference's entries (contiguous, ascending n-gram id)
        start = np.searchsorted(cap, np.arange(ndocs))
        n_ent = np.bincount(cap, minlength=ndocs)
        reps = n_ent[ref_e]
        pair_of = np.repeat(np.arange(npairs), reps)
        offs = np.arange(len(pair_of)) - np.repeat(np.cumsum(reps) - reps, reps)
        ent = start[ref_e][pair_of] + offs
        keys = cap * num + gram
        want = doc_e[pair_of] * num + gram[ent]
        pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
        vc = np.where(keys[pos] == want, w[pos], 0.0)
        wr = w[ent]
        val[k] = np.bincount(pair_of, weights=np.minimum(vc, wr) * wr, minlength=npairs)
        nh, nr = norm[doc_e], norm[ref_e]
        ok = (nh != 0) & (nr != 0)
        val[k, ok] /= nh[ok] * nr[ok]
    delta = (length[doc_e] - length[ref_e]).astype(np.float64)
    val *= np.e ** (-(delta ** 2) / (2 * SIGMA ** 2))
    per_doc = np.vstack([np.bincount(pair_doc, weights=val[k], minlength=ndocs) for k in range(table.n)])
    nrefs = np.repeat(sizes - 1, sizes)
    scores = per_doc.mean(axis=0) / nrefs * 10.0
    return {c.caption_id: s for c, s in zip(flat, scores.tolist())}


def loo_cider_reference(captions: CaptionSet) -> dict[str, float]:
    """The same scores through `compute_metric("cider", ...)`, one document per caption (slow; for checking)."""
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
