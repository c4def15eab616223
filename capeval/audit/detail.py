"""Detail checks that need the other references of the same image: thin captions (`low_detail`), outliers by
leave-one-out CIDEr-D (`off_consensus`) and repeated captions (`duplicate`)."""

from __future__ import annotations

import re
from collections import Counter
from statistics import median

import numpy as np

from capeval.audit.finding import Finding
from capeval.audit.spelling import Lexicon
from capeval.audit.summary import CorpusSummary
from capeval.errors import CapevalError
from capeval.records import Caption, CaptionSet

_NON_OBJECT = frozenset(
    "a an the of on in at to with and or is are was were be been being it its this that these those there their "
    "his her he she they them some two three four five six one several many few other while by for from as up down "
    "near next top front side behind into onto over under some very out off back each another around about "
    "white black brown red blue green yellow orange pink purple gray grey silver gold large small big little young "
    "old tall long short different various couple group bunch lot pair picture image photo view close has have "
    "sitting standing laying lying holding looking walking riding playing eating parked area".split()
)
_SYNONYMS = {w: "person" for w in (
    "man", "woman", "person", "people", "guy", "lady", "boy", "girl", "child", "kid", "men", "women", "children", "kids",
    "player", "persons", "adult", "gentleman", "gentlemen", "someone", "skier", "surfer", "skateboarder", "snowboarder",
    "rider", "biker", "cyclist", "batter", "pitcher", "catcher", "worker", "crowd", "couple", "ladies", "guys", "boys",
    "girls", "skiers", "surfers", "players", "workers", "riders", "individual", "teenager", "toddler", "baby")}
_SYNONYMS.update({w: "plane" for w in ("plane", "airplane", "jet", "aircraft", "airliner", "jetliner", "planes",
                                       "airplanes", "jets")})
# off_consensus needs a leave-one-out CIDEr-D below this (about the bottom 1.5% of the Karpathy references; a fixed
# value rather than a corpus percentile, so that every shard of a corpus is judged alike)
OFF_CONSENSUS_MAX_CIDER = 0.016
LOW_DETAIL_LENGTH_SHARE = 0.9  # ... and at most this share of the siblings' median length (words)
LOW_DETAIL_CIDER_SHARE = 0.25  # low_detail also needs a leave-one-out CIDEr-D under this share of the siblings' median
# category words: a caption whose subject is one of these is vague (low_detail), not about another picture
_GENERIC = frozenset("animal food meal thing item assortment stuff vehicle object variety kind type scene "
                     "selection collection display luggage".split())
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


def _object_list(words: list[str], lex: Lexicon) -> list[str]:
    """Content nouns of a caption in order (singularised, person words merged), with two-word compounds also
    written solid ("surf board" -> "surfboard") so that spellings of one object match."""
    objs = _objects(words, lex)
    ordered = []
    for w in words:
        key = _SYNONYMS.get(w, w)
        if key not in objs and w.endswith("s") and w[:-1] in objs:
            key = w[:-1]
        if key in objs and key not in ordered:
            ordered.append(key)
    for a, b in zip(words, words[1:]):
        solid = a + b
        if len(a) > 2 and len(b) > 2 and lex.known_base(solid) and solid not in ordered:
            ordered.append(solid)
    return ordered


def _same_object(x: str, a: str) -> bool:
    """One object named two ways: equal, or one word a compound of the other ("sailboat"/"boat",
    "skateboarders"/"skateboard")."""
    if x == a:
        return True
    short, long_ = (x, a) if len(x) < len(a) else (a, x)
    return len(short) >= 4 and (long_.startswith(short) or long_.endswith(short))


def _consensus(sib_objs: list[set[str]]) -> set[str]:
    """Objects named by at least three of the sibling captions (three of four, or three quarters of more)."""
    need = max(3, -(-3 * len(sib_objs) // 4))
    votes: Counter = Counter()
    for o in sib_objs:
        votes.update(o)
    return {x for x, v in votes.items() if v >= need}


def low_detail(captions: CaptionSet, words: dict[str, list[str]], lex: Lexicon,
               scores: dict[str, float] | None = None) -> list[Finding]:
    """Captions that leave out every object at least three of their (four or more) siblings agree on, the
    documented criterion (data/audit_labels/NOTE.md), and whose leave-one-out CIDEr-D is well below their siblings'
    when those scores are given, without being longer than them."""
    out = []
    for caps in captions.by_image().values():
        if len(caps) < 5:
            continue
        objs: list[set[str]] | None = None
        for i, c in enumerate(caps):
            if scores is not None and not _thin(i, caps, words, scores):
                continue  # cheap tests first: most captions are not thin
            if objs is None:
                objs = [set(_object_list(words[o.caption_id], lex)) for o in caps]
            agreed = _consensus([o for j, o in enumerate(objs) if j != i])
            if len(agreed) > 1:
                agreed.discard("person")  # people are in most pictures: what they do or hold is the content
            if not agreed or any(_same_object(x, a) for x in objs[i] for a in agreed):
                continue
            conf = 0.7
            if scores is not None:
                s = scores[c.caption_id]
                m = median(scores[o.caption_id] for j, o in enumerate(caps) if j != i)
                conf = min(0.9, 0.6 + 0.3 * (1 - s / max(m, 1e-9)))
            out.append(_whole(c, "low_detail", "low_detail.misses_agreed_objects", conf))
    return out


def _thin(i: int, caps: list[Caption], words: dict[str, list[str]], scores: dict[str, float]) -> bool:
    """Leave-one-out CIDEr-D well below the siblings' median and no longer than them (words)."""
    s = scores.get(caps[i].caption_id)
    sib = [scores[o.caption_id] for j, o in enumerate(caps) if j != i and o.caption_id in scores]
    if s is None or len(sib) < len(caps) - 1 or s > LOW_DETAIL_CIDER_SHARE * median(sib):
        return False
    lens = [len(words[o.caption_id]) for j, o in enumerate(caps) if j != i]
    return len(words[caps[i].caption_id]) <= LOW_DETAIL_LENGTH_SHARE * median(lens)  # longer: it describes more


def loo_cider(captions: CaptionSet, summary: CorpusSummary | None = None) -> dict[str, float]:
    """Leave-one-out CIDEr-D of every caption (images with at least 3 captions) against the other captions of its
    image: the same numbers as `compute_metric("cider", ...)` on those documents (one per caption, its siblings as
    references, document frequencies over these documents as pycocoevalcap), computed from one n-gram vector per
    caption instead of re-tokenising and re-counting every caption once per sibling. Document frequencies and the
    document count come from `summary` (the whole corpus when `captions` is one shard of it)."""
    from capeval.metrics.cider import SIGMA
    from capeval.metrics.ngrams import Vocab, build_grams, encode_batch, gram_strings
    from capeval.text.tokenize import PTBTokenizer

    groups = [caps for caps in captions.by_image().values() if len(caps) >= 3]
    if not groups:
        return {}
    if summary is None:
        summary = CorpusSummary.from_captions(captions)
    if not summary.has_cider:
        raise CapevalError("the corpus summary has no CIDEr-D statistics (summarise with "
                           "CorpusSummary.from_captions(..., cider=True))")
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # global index of each image's first caption
    ndocs = int(sizes.sum())
    # Encode in the order pycocoevalcap's flat reference list first meets each caption (siblings 1..m-1, then 0),
    # so token and n-gram ids, and with them every floating-point summation order, match compute_metric's.
    enc_orig = np.concatenate([np.append(np.arange(1, m), 0) + f for m, f in zip(sizes.tolist(), first.tolist())])
    flat = [c for g in groups for c in g]
    tok = PTBTokenizer().tokenize
    vocab = Vocab()
    ids, lengths, _ = encode_batch([tuple(tok(flat[i].text)) for i in enc_orig.tolist()], vocab)
    table = build_grams(ids, lengths, n=4)
    strings = gram_strings(table, vocab)
    global_df = summary.cider_df
    orig_enc = np.empty(ndocs, dtype=np.int64)
    orig_enc[enc_orig] = np.arange(ndocs)
    ref_len = float(np.log(float(summary.cider_docs)))
    length = np.maximum(lengths - 1, 0)
    # every ordered (document, reference) pair of one image, documents in caption order, references ascending
    m_cap = np.repeat(sizes, sizes)
    first_cap = np.repeat(first, sizes)
    pair_doc = np.repeat(np.arange(ndocs), m_cap - 1)
    block = np.cumsum(m_cap - 1) - (m_cap - 1)
    k_local = np.arange(len(pair_doc)) - block[pair_doc]  # 0 .. m-2 within a document's references
    j_local = pair_doc - first_cap[pair_doc]
    pair_ref = first_cap[pair_doc] + k_local + (k_local >= j_local)
    doc_e, ref_e = orig_enc[pair_doc], orig_enc[pair_ref]
    npairs = len(pair_doc)
    val = np.zeros((table.n, npairs))
    for k in range(table.n):
        cap, gram, cnt = table.cap[k], table.gram[k], table.count[k]
        num = max(table.num_grams[k], 1)
        # document frequency over the whole corpus (summary.cider_df: documents whose references hold the n-gram)
        df = np.fromiter((global_df.get(g, 0) for g in strings[k]), dtype=np.float64, count=len(strings[k]))
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


def off_consensus(captions: CaptionSet, scores: dict[str, float], words: dict[str, list[str]] | None = None,
                  lex: Lexicon | None = None) -> list[Finding]:
    """Captions whose leave-one-out CIDEr-D is near zero (OFF_CONSENSUS_MAX_CIDER) and far below their siblings';
    with `words`, also whose subject (first object named) no sibling names while they miss every agreed object."""
    if not scores:
        return []
    floor = OFF_CONSENSUS_MAX_CIDER
    out = []
    for caps in captions.by_image().values():
        vals = [scores.get(c.caption_id) for c in caps]
        objs: list[list[str]] | None = None
        for i, c in enumerate(caps):
            s = vals[i]
            if s is None:
                continue
            sib = [v for j, v in enumerate(vals) if j != i and v is not None]
            if not sib:
                continue
            m = median(sib)
            if not (s <= floor and s < 0.2 * m and s < 0.1):
                continue
            if words is not None and lex is not None:
                if objs is None:
                    objs = [_object_list(words[o.caption_id], lex) for o in caps]
                own = objs[i]
                sib_objs = [set(o) for j, o in enumerate(objs) if j != i]
                named = set().union(*sib_objs)
                agreed = _consensus(sib_objs) if len(sib_objs) >= 3 else set()
                if not own or own[0] in named or own[0] in _GENERIC or (set(own) & agreed):
                    continue  # the subject is the siblings' too: thin or odd wording, not another picture
            conf = min(0.9, 0.55 + 0.3 * (1 - s / max(m, 1e-9)))
            out.append(_whole(c, "off_consensus", "off_consensus.loo_cider", conf))
    return out
