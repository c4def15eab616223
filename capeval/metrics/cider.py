"""CIDEr-D exactly as pycocoevalcap's `Cider` (which is CIDEr-D): n = 1..4, TF-IDF vectors, clipping
`min(hyp, ref) * ref`, Gaussian length penalty with sigma 6 on the bigram-count length (pycoco's quirk), mean over
orders, mean over references, x10. Vectorised over n-gram id arrays.

Document frequencies come either from the references being evaluated (pycocoevalcap; per-caption scores then depend
on which images are in the set, and a single image always scores 0 because every idf is log(1) - log(1) = 0) or
from a fixed corpus (`cider_idf`, built once with `build_cider_idf`), so per-caption scores are comparable across
subsets and meaningful for one image. The signature records which.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capeval.errors import InputError
from capeval.metrics.base import Metric, MetricResult, Signature
from capeval.metrics.ngrams import (
    PreparedCandidates,
    PreparedReferences,
    gram_strings,
    prepare_candidates,
    prepare_references,
    sorted_unique,
)

SIGMA = 6.0
IDF_FORMAT = "capeval-cider-df"


@dataclass(frozen=True)
class CiderIdf:
    """Document frequencies of n-grams (orders 1..n, space-joined PTB tokens) over `num_docs` reference sets."""

    df: Mapping[str, int]
    num_docs: int
    n: int = 4
    source: str = ""
    tokenizer: str = "ptb-py"

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.num_docs}|{self.n}|{self.tokenizer}".encode())
        for k in sorted(self.df):
            h.update(f"{k}\t{self.df[k]}\n".encode())
        return h.hexdigest()[:8]

    def describe(self) -> str:
        src = f"{self.source}," if self.source else ""
        return f"fixed({src}n={self.num_docs},sha={self.digest})"

    def to_json(self) -> dict[str, object]:
        return {"format": IDF_FORMAT, "version": 1, "n": self.n, "num_docs": self.num_docs, "source": self.source,
                "tokenizer": self.tokenizer, "df": dict(self.df)}


def build_cider_idf(references: object, path: str | Path | None = None, *, source: str = "", n: int = 4) -> CiderIdf:
    """Document frequencies from a reference corpus: a CaptionSet (one document per image) or a list of reference
    lists (raw text). Written as JSON to `path` when given; load it later with `load_cider_idf` or pass the path."""
    from capeval.records import CaptionSet
    from capeval.text.tokenize import PTBTokenizer

    if isinstance(references, CaptionSet):
        docs = list(references.texts_by_image().values())
        source = source or references.name or (Path(references.path).stem if references.path else "")
    else:
        docs = [list(d) for d in references]  # type: ignore[union-attr]
    docs = [d for d in docs if d]
    if not docs:
        raise InputError("cannot build CIDEr document frequencies from an empty reference corpus")
    tok = PTBTokenizer()
    refs = prepare_references([[tok.tokenize(t) for t in d] for d in docs], n=n)
    strings = gram_strings(refs.grams, refs.vocab)
    df: dict[str, int] = {}
    for k in range(1, n + 1):
        counts = _eval_df(refs, k)
        for s, c in zip(strings[k - 1], counts.tolist()):
            if c:
                df[s] = c
    idf = CiderIdf(df, len(docs), n, source)
    if path is not None:
        Path(path).write_text(json.dumps(idf.to_json(), ensure_ascii=False), encoding="utf-8")
    return idf


def load_cider_idf(obj: object) -> CiderIdf:
    """A CiderIdf from itself, a JSON-like dict, or a JSON file written by `build_cider_idf`."""
    if isinstance(obj, CiderIdf):
        return obj
    path = None
    if isinstance(obj, (str, Path)):
        path = str(obj)
        try:
            obj = json.loads(Path(obj).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError("CIDEr idf file not found", path=path) from None
        except (OSError, ValueError) as exc:
            raise InputError(f"not a readable JSON document-frequency file ({exc})", path=path) from None
    if not isinstance(obj, Mapping) or obj.get("format") != IDF_FORMAT or not isinstance(obj.get("df"), Mapping):
        raise InputError(f"expected a {IDF_FORMAT!r} JSON object with 'df' and 'num_docs' "
                         "(write one with capeval.metrics.cider.build_cider_idf)", path=path)
    num_docs = obj.get("num_docs")
    if not isinstance(num_docs, int) or num_docs < 1:
        raise InputError("'num_docs' must be a positive integer", path=path, where="num_docs")
    source = str(obj.get("source") or (Path(path).stem if path else ""))
    return CiderIdf(dict(obj["df"]), num_docs, int(obj.get("n", 4)), source, str(obj.get("tokenizer", "ptb-py")))


def _eval_df(refs: PreparedReferences, k: int) -> np.ndarray:
    """Per order-k reference n-gram id: number of documents whose reference set contains it (pycoco's df)."""
    g = refs.grams
    num = max(g.num_grams[k - 1], 1)
    pairs = sorted_unique(refs.ref_doc[g.cap[k - 1]] * num + g.gram[k - 1])
    return np.bincount(pairs % num, minlength=g.num_grams[k - 1])


def _idf_arrays(refs: PreparedReferences, idf: CiderIdf | None) -> tuple[list[np.ndarray], float]:
    """Per-order idf of every reference n-gram id, and ref_len (log of the document count); cached."""
    key = ("cider-idf", None if idf is None else idf.digest)
    hit = refs.cache.get(key)
    if hit is None:
        n = refs.grams.n
        if idf is None:
            ref_len = float(np.log(float(refs.num_docs)))
            dfs = [_eval_df(refs, k).astype(np.float64) for k in range(1, n + 1)]
        else:
            ref_len = float(np.log(float(idf.num_docs)))
            strings = gram_strings(refs.grams, refs.vocab)
            dfs = [np.array([idf.df.get(s, 0) for s in strings[k]], dtype=np.float64) for k in range(n)]
        hit = ([ref_len - np.log(np.maximum(1.0, d)) for d in dfs], ref_len)
        refs.cache[key] = hit
    return hit  # type: ignore[return-value]


def _vectors(grams_cap: list[np.ndarray], grams_id: list[np.ndarray], counts: list[np.ndarray],
             idf: list[np.ndarray], ncap: int, canonical: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """TF-IDF weight of every (caption, n-gram) entry and the per-order norms (n, ncap). `canonical` sums each
    caption's squares in order of value, not of n-gram id, so a norm does not depend on which other documents share
    the batch (what makes a sharded run equal the one-process run bit for bit)."""
    weights, norms = [], np.zeros((len(idf), ncap))
    for k in range(len(idf)):
        w = counts[k].astype(np.float64) * idf[k][grams_id[k]]
        weights.append(w)
        ww, cap = w * w, grams_cap[k]
        if canonical and len(ww):
            o = np.lexsort((ww, cap))
            ww, cap = ww[o], cap[o]
        norms[k] = np.sqrt(np.bincount(cap, weights=ww, minlength=ncap))
    return weights, norms


def cider_results(refs: PreparedReferences, cands: PreparedCandidates, idf: CiderIdf | None = None,
                  sigma: float = SIGMA, tok: str = "ptb-py") -> list[MetricResult]:
    """CIDEr-D per document and corpus (the mean), pycocoevalcap's arithmetic up to floating-point summation order."""
    ndocs, n = refs.num_docs, refs.grams.n
    if ndocs == 0:
        raise InputError("CIDEr-D needs at least one document")
    ref_idf, ref_len = _idf_arrays(refs, idf)
    g = refs.grams
    vkey = ("cider-refvec", None if idf is None else idf.digest)
    if vkey not in refs.cache:
        w_ref, norm_ref = _vectors(g.cap, g.gram, g.count, ref_idf, len(g.lengths))
        refs.cache[vkey] = (w_ref, norm_ref, np.maximum(g.lengths - 1, 0))
    w_ref, norm_ref, len_ref = refs.cache[vkey]  # type: ignore[misc]

    c = cands.grams
    cand_idf = []
    new_strings = _candidate_only_strings(refs, cands) if idf is not None else None
    for k in range(n):
        extra = c.num_grams[k] - g.num_grams[k]
        if idf is None:
            tail = np.full(extra, ref_len)  # unseen in the references: df 0 -> log(max(1, 0)) = 0
        else:
            df_new = np.array([idf.df.get(s, 0) for s in new_strings[k]], dtype=np.float64)  # type: ignore[index]
            tail = ref_len - np.log(np.maximum(1.0, df_new))  # as for reference n-grams (math.log can differ by 1ulp)
        cand_idf.append(np.concatenate([ref_idf[k], tail]))
    w_c, norm_c = _vectors(c.cap, c.gram, c.count, cand_idf, ndocs, canonical=True)
    len_c = np.maximum(c.lengths - 1, 0)

    nref = len(g.lengths)
    val = np.zeros((n, nref))
    for k in range(n):
        num = max(c.num_grams[k], 1)
        ckeys = c.cap[k] * num + c.gram[k]  # sorted: produced by np.unique on the same packing
        rkeys = refs.ref_doc[g.cap[k]] * num + g.gram[k]
        pos = np.searchsorted(ckeys, rkeys)
        pos_c = np.minimum(pos, max(len(ckeys) - 1, 0))
        if len(ckeys):
            hit = (pos < len(ckeys)) & (ckeys[pos_c] == rkeys)
            vc = np.where(hit, w_c[k][pos_c], 0.0)
        else:
            vc = np.zeros(len(rkeys))
        wr = w_ref[k]
        val[k] = np.bincount(g.cap[k], weights=np.minimum(vc, wr) * wr, minlength=nref)
        nh, nr = norm_c[k][refs.ref_doc], norm_ref[k]
        ok = (nh != 0) & (nr != 0)
        val[k, ok] /= nh[ok] * nr[ok]
    delta = (len_c[refs.ref_doc] - len_ref).astype(np.float64)
    val *= np.e ** (-(delta ** 2) / (2 * sigma ** 2))
    per_doc = np.vstack([np.bincount(refs.ref_doc, weights=val[k], minlength=ndocs) for k in range(n)])
    scores = per_doc.mean(axis=0) / refs.nrefs * 10.0
    from capeval import __version__
    from capeval.metrics.bleu import _nrefs_str

    df_desc = f"eval-refs(n={ndocs})" if idf is None else idf.describe()
    sig = Signature.make("cider-d", n=n, sigma=f"{sigma:g}", df=df_desc, tok=tok, nrefs=_nrefs_str(refs.nrefs),
                         capeval=__version__)
    return [MetricResult("cider", float(np.mean(scores)), scores, sig, {"ref_len": ref_len})]


def _candidate_only_strings(refs: PreparedReferences, cands: PreparedCandidates) -> list[list[str]]:
    """Text of the candidate n-gram ids the references do not have (for fixed-idf lookups)."""
    key = ("gram-strings",)
    if key not in refs.cache:
        refs.cache[key] = gram_strings(refs.grams, refs.vocab)
    ref_strings: list[list[str]] = refs.cache[key]  # type: ignore[assignment]
    toks, m = refs.vocab.tokens, 1 << 24
    out: list[list[str]] = []
    for k in range(1, cands.grams.n + 1):
        nref = refs.grams.num_grams[k - 1]
        keys = cands.grams.keys[k - 1][nref:].tolist()
        if k == 1:
            out.append([toks[t] for t in keys])
            continue
        prev_ref, prev_new, nprev = ref_strings[k - 2], out[-1], refs.grams.num_grams[k - 2]
        out.append([(prev_ref[p] if p < nprev else prev_new[p - nprev]) + " " + toks[key % m]
                    for key in keys for p in (key // m,)])
    return out


class CiderD(Metric):
    """CIDEr-D (pycocoevalcap `Cider`); `cider_idf` switches the document frequencies to a fixed corpus."""

    name = "cider"
    outputs = ("cider",)

    def __init__(self, cider_idf: object = None, sigma: float = SIGMA) -> None:
        self.idf = None if cider_idf is None else load_cider_idf(cider_idf)
        self.sigma = sigma

    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[MetricResult]:
        from capeval.text.tokenize import PTBTokenizer

        tok = PTBTokenizer()
        refs = prepare_references([[tok.tokenize(r) for r in rs] for rs in references])
        cands = prepare_candidates(refs, [tok.tokenize(c) for c in candidates])
        return cider_results(refs, cands, self.idf, self.sigma)
