"""Build the caption language model shipped as `capeval/audit/data/lm.npz`: an interpolated modified Kneser-Ney
4-gram model of caption English, trained on public reference captions, stored in backoff form.

Training text (read from the data mirror, never copied into the repository):
- Flickr8k captions (`flickr8k/Flickr8k.token.txt`, 40,460 captions),
- PASCAL-50S references (`pascal50s/cidermatlab_pascal50S.mat`, 50 per image, 1,000 images),
- COCO Karpathy test references (`coco-karpathy-test/coco_test.json`) EXCEPT the images that are also in
  `coco-val2017` (reserved for evaluation: only its image ids are read, to exclude them) and every image of the
  labelled audit sets (`data/audit_labels/captions.csv`, `heldout/captions.csv`, `dev2/captions.csv`), so the model
  never saw a caption the audit is graded on.

    python -m capeval.audit.build_lm --out capeval/audit/data/lm.npz      # rebuild (deterministic)
    python -m capeval.audit.build_lm --eval                               # held-out perplexity per order/pruning

Words are the audit's tokens (`capeval.audit.corpus.words_of`); words seen fewer than `MIN_WORD_COUNT` times map to
`<unk>`. N-gram keys pack 16-bit word ids into one uint64 (exact, no hashing), sorted for `np.searchsorted`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
import time
import zipfile
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capeval.audit.corpus import words_of

ORDER = 4
MIN_WORD_COUNT = 2  # rarer words are <unk>
PRUNE = (0, 2, 2, 2)  # per order 1..4: keep an n-gram only if its raw count is >= this: one-off n-grams are dropped
# (an error in a training caption is usually a one-off, so the model does not learn the slips it should catch)
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
BITS = 16
FORMAT_VERSION = 1
REPO = Path(__file__).resolve().parents[2]
# dev4 (data/audit_labels/dev4/) is not held out: it judges only the rules that do not use this model (its scope.json)
LABEL_FILES = ("data/audit_labels/captions.csv", "data/audit_labels/heldout/captions.csv",
               "data/audit_labels/dev2/captions.csv", "data/audit_labels/dev3/images.csv")


@dataclass(frozen=True)
class Corpus:
    """Training sentences (lists of words), each with the key of its image (captions of one image share it)."""

    sentences: list[list[str]]
    groups: list[str]
    provenance: dict


def _mirror(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root)
    env = os.environ.get("CAPEVAL_DATA_MIRROR")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


def labelled_image_ids(repo: Path = REPO) -> set[int]:
    """Image ids of every labelled audit set (the LM must never see their captions)."""
    ids: set[int] = set()
    for rel in LABEL_FILES:
        path = repo / rel
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as f:
                ids.update(int(row["image_id"]) for row in csv.DictReader(f))
    return ids


def _karpathy_image_id(name: str) -> int:
    return int(re.search(r"(\d+)\.jpg$", name).group(1))


def _untokenize(text: str) -> str:
    """Flickr8k's captions are PTB-tokenized ("a man 's hat", "does n't"): rejoin the clitics, as written."""
    return re.sub(r" n't\b", "n't", re.sub(r" '(s|re|ve|ll|d|m)\b", r"'\1", text))


def load_corpus(mirror: str | os.PathLike | None = None, repo: Path = REPO) -> Corpus:
    """The training captions, in a fixed order (Flickr8k, PASCAL-50S, Karpathy test), with exclusions applied."""
    root = _mirror(mirror)
    sentences: list[list[str]] = []
    groups: list[str] = []
    counts: dict[str, int] = {}

    flickr = root / "flickr8k" / "Flickr8k.token.txt"
    n0 = len(sentences)
    for line in flickr.read_text(encoding="utf-8").splitlines():
        key, _, text = line.partition("\t")
        if text.strip():
            sentences.append(words_of(_untokenize(text)))
            groups.append("f:" + key.split("#")[0])
    counts["flickr8k"] = len(sentences) - n0

    from scipy.io import loadmat  # scipy is a core dependency; imported here to keep `import capeval` light

    refs = loadmat(str(root / "pascal50s" / "cidermatlab_pascal50S.mat"))["refs"][0]
    n0 = len(sentences)
    for entry in refs:
        image = str(entry["image"][0])
        for sent in entry["sent"][0]:
            text = str(sent[0]) if len(sent) else ""
            if text.strip():
                sentences.append(words_of(text))
                groups.append("p:" + image)
    counts["pascal50s"] = len(sentences) - n0

    val2017 = json.loads((root / "coco-val2017" / "captions_val2017.json").read_text(encoding="utf-8"))
    reserved = {int(im["id"]) for im in val2017["images"]}  # image ids only: its captions are never read
    labelled = labelled_image_ids(repo)
    n0, skipped_images = len(sentences), 0
    for item in json.loads((root / "coco-karpathy-test" / "coco_test.json").read_text(encoding="utf-8")):
        image_id = _karpathy_image_id(item["image"])
        if image_id in reserved or image_id in labelled:
            skipped_images += 1
            continue
        for text in item["caption"]:
            if text.strip():
                sentences.append(words_of(text))
                groups.append(f"c:{image_id}")
    counts["coco_karpathy_test"] = len(sentences) - n0
    provenance = {
        "captions": counts,
        "karpathy_images_excluded": skipped_images,
        "excluded_label_images": len(labelled),
        "label_files": [rel for rel in LABEL_FILES if (repo / rel).is_file()],
    }
    return Corpus(sentences, groups, provenance)


# ---------------------------------------------------------------- counting and smoothing


def pack(ids: np.ndarray) -> np.ndarray:
    """uint64 keys of the rows of an (M, k) id matrix, k <= 4: ids in 16-bit fields, first word highest."""
    key = ids[:, 0].astype(np.uint64)
    for j in range(1, ids.shape[1]):
        key = (key << np.uint64(BITS)) | ids[:, j].astype(np.uint64)
    return key


def _suffix(keys: np.ndarray, k: int) -> np.ndarray:
    """Keys of the last k words of each key."""
    return keys & np.uint64((1 << (BITS * k)) - 1)


def _prefix(keys: np.ndarray) -> np.ndarray:
    """Keys of all but the last word."""
    return keys >> np.uint64(BITS)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray, default: float) -> np.ndarray:
    idx = np.searchsorted(keys, query)
    idx[idx >= len(keys)] = 0
    hit = keys[idx] == query if len(keys) else np.zeros(len(query), bool)
    return np.where(hit, values[idx] if len(keys) else default, default)


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney discounts D1, D2, D3+ (Chen & Goodman 1998) from the count-of-counts."""
    n = [int(np.sum(counts == i)) for i in range(1, 5)]
    y = n[0] / (n[0] + 2 * n[1])
    return np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])


@dataclass
class _Order:
    keys: np.ndarray  # sorted uint64 n-gram keys
    raw: np.ndarray  # raw counts
    prob: np.ndarray | None = None  # interpolated KN probability (not log)


def _vocab(sentences: Sequence[Sequence[str]], min_count: int) -> list[str]:
    from collections import Counter

    counts = Counter(w for s in sentences for w in s)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    vocab = [UNK, BOS, EOS, *words]
    if len(vocab) >= 1 << BITS:
        raise ValueError(f"vocabulary of {len(vocab)} words does not fit {BITS}-bit ids")
    return vocab


def _id_stream(sentences: Sequence[Sequence[str]], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat ids of `<s> w.. </s>` per sentence and the sentence number of each position."""
    lengths = np.fromiter((len(s) + 2 for s in sentences), dtype=np.int64, count=len(sentences))
    flat = np.fromiter(
        (index.get(w, 0) for s in sentences for w in (BOS, *s, EOS)), dtype=np.int64, count=int(lengths.sum())
    )
    sid = np.repeat(np.arange(len(sentences)), lengths)
    return flat, sid


def _count_ngrams(flat: np.ndarray, sid: np.ndarray, k: int) -> _Order:
    m = len(flat) - k + 1
    valid = sid[:m] == sid[k - 1: k - 1 + m]
    windows = np.stack([flat[j: j + m][valid] for j in range(k)], axis=1)
    keys, raw = np.unique(pack(windows), return_counts=True)
    return _Order(keys, raw.astype(np.int64))


def train(sentences: Sequence[Sequence[str]], order: int = ORDER, prune: Sequence[int] = PRUNE,
          min_word_count: int = MIN_WORD_COUNT) -> dict[str, np.ndarray]:
    """Arrays of an interpolated modified-KN model in backoff form (see `CaptionLM` for the layout)."""
    vocab = _vocab(sentences, min_word_count)
    index = {w: i for i, w in enumerate(vocab)}
    flat, sid = _id_stream(sentences, index)
    orders = {k: _count_ngrams(flat, sid, k) for k in range(1, order + 1)}
    bos = np.uint64(index[BOS])
    n_words = len(vocab)

    # modified counts: the top order keeps raw counts; lower orders count distinct left extensions, except
    # n-grams that start at <s> (nothing can precede them), which keep raw counts
    mod: dict[int, np.ndarray] = {order: orders[order].raw}
    for k in range(order - 1, 0, -1):
        keys = orders[k].keys
        suffixes, cont = np.unique(_suffix(orders[k + 1].keys, k), return_counts=True)
        c = _lookup(suffixes, cont.astype(np.int64), keys, 0).astype(np.int64)
        starts_bos = (keys >> np.uint64(BITS * (k - 1))) == bos
        mod[k] = np.where(starts_bos, orders[k].raw, c)

    # unigrams: modified counts over the whole vocabulary, <s> excluded (it is never predicted), interpolated with
    # the uniform distribution over the other words
    c1 = np.zeros(n_words)
    c1[orders[1].keys.astype(np.int64)] = mod[1]
    c1[index[BOS]] = 0.0
    d = _discounts(c1[c1 > 0].astype(np.int64))
    disc = np.where(c1 >= 3, d[2], np.where(c1 == 2, d[1], np.where(c1 == 1, d[0], 0.0)))
    gamma1 = disc.sum() / c1.sum()
    p1 = np.maximum(c1 - disc, 0) / c1.sum() + gamma1 / (n_words - 1)
    p1[index[BOS]] = 0.0
    orders[1] = _Order(np.arange(n_words, dtype=np.uint64), np.bincount(flat, minlength=n_words).astype(np.int64), p1)

    # higher orders, interpolated with the order below
    for k in range(2, order + 1):
        o, c = orders[k], mod[k].astype(np.float64)
        d = _discounts(mod[k])
        disc = np.where(c >= 3, d[2], np.where(c == 2, d[1], d[0]))
        ctx = _prefix(o.keys)
        # keys are sorted, so each context's n-grams are one contiguous run
        starts = np.flatnonzero(np.r_[True, ctx[1:] != ctx[:-1]])
        total = np.add.reduceat(c, starts)
        gamma = np.add.reduceat(disc, starts) / total
        run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(ctx)]))
        lower = _lookup(orders[k - 1].keys, orders[k - 1].prob, _suffix(o.keys, k - 1), 0.0)
        o.prob = (c - disc) / total[run] + gamma[run] * lower

    # prune rare high-order n-grams (by raw count; thresholds rise with the order, so every kept n-gram keeps its
    # suffix and its context), then backoff weights that make every context's distribution sum to one
    kept: dict[int, _Order] = {}
    for k in range(1, order + 1):
        o = orders[k]
        keep = o.raw >= prune[k - 1] if k > 1 else np.ones(len(o.keys), bool)
        kept[k] = _Order(o.keys[keep], o.raw[keep], o.prob[keep])
    bows: dict[int, np.ndarray] = {}
    for k in range(1, order):
        ctx_keys = kept[k].keys
        child = kept[k + 1]
        ctx = _prefix(child.keys)
        lower = _lookup(kept[k].keys, kept[k].prob, _suffix(child.keys, k), 0.0)  # P(w | shorter context)
        starts = np.flatnonzero(np.r_[True, ctx[1:] != ctx[:-1]]) if len(ctx) else np.zeros(0, np.int64)
        num = 1.0 - np.add.reduceat(child.prob, starts) if len(ctx) else np.zeros(0)
        den = 1.0 - np.add.reduceat(lower, starts) if len(ctx) else np.zeros(0)
        bow = np.ones(len(ctx_keys))
        pos = np.searchsorted(ctx_keys, ctx[starts])
        bow[pos] = num / den
        bows[k] = bow

    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(FORMAT_VERSION),
        "order": np.array(order),
        "vocab": np.frombuffer("\n".join(vocab).encode("utf-8"), dtype=np.uint8),
        "unigram_count": kept[1].raw.astype(np.int32),
    }
    with np.errstate(divide="ignore"):
        arrays["logp1"] = np.log(kept[1].prob).astype(np.float32)
    for k in range(1, order + 1):
        if k > 1:
            arrays[f"keys{k}"] = kept[k].keys
            arrays[f"logp{k}"] = np.log(kept[k].prob).astype(np.float32)
        if k < order:
            arrays[f"bow{k}"] = np.log(bows[k]).astype(np.float32)
    return arrays


def sibling_statistics(corpus: Corpus, vocab: Sequence[str], group_size: int = 5) -> dict[str, np.ndarray]:
    """Per word, how often it appears among the other captions of its image: `agree` = P(a sibling caption group
    of `group_size - 1` contains w | a caption contains w), `base` = P(such a group contains w) for a random caption.
    Images with more captions (PASCAL-50S) are cut into groups of `group_size` so every image counts alike."""
    index = {w: i for i, w in enumerate(vocab)}
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(corpus.groups):
        by_group.setdefault(g, []).append(i)
    n = len(vocab)
    with_word = np.zeros(n)  # captions containing w
    with_word_sib = np.zeros(n)  # ... whose siblings also contain w
    sib_has = np.zeros(n)  # captions whose siblings contain w
    n_caps = 0
    for members in by_group.values():
        for start in range(0, len(members) - group_size + 1, group_size):
            chunk = members[start: start + group_size]
            sets = [{index.get(w, 0) for w in corpus.sentences[i]} for i in chunk]
            for j, own in enumerate(sets):
                sib = set().union(*(s for t, s in enumerate(sets) if t != j))
                own_ids = np.fromiter(own, np.int64)
                sib_ids = np.fromiter(sib, np.int64)
                with_word[own_ids] += 1
                with_word_sib[np.fromiter(own & sib, np.int64)] += 1
                sib_has[sib_ids] += 1
                n_caps += 1
    # add-one smoothing towards the base rate keeps rare words from extreme ratios
    base = (sib_has + 1) / (n_caps + 2)
    agree = (with_word_sib + 2 * base) / (with_word + 2)
    return {"sib_agree": agree.astype(np.float32), "sib_base": base.astype(np.float32)}


COOC_MIN_COUNT = 2  # a pair of content words is stored when this many training captions hold both (one-offs say little)


# closed-class words beyond the audit's stop words: prepositions, pronouns, auxiliaries, conjunctions, quantifiers
_FUNCTION_WORDS = frozenset(
    "through over under into onto about above across after against along among around before behind below beneath "
    "beside besides between beyond during inside outside past toward towards upon within without off out than then "
    "but nor yet so because if when where which who whom whose what why how all any each every both few many much "
    "more most other another such own same one three four five six several not can could will would shall should "
    "may might must has have had having does did doing being am its it's he him she they them we us you your our "
    "my me myself itself himself herself themselves here just also too only".split())


def content_word(w: str) -> bool:
    """A word whose presence in a caption says what the caption is about (no function word, no fragment)."""
    from capeval.audit.real_word import STOP_WORDS

    return len(w) > 2 and w not in STOP_WORDS and w not in _FUNCTION_WORDS and w.replace("'", "").isalpha()


def cooccurrence_statistics(corpus: Corpus, vocab: Sequence[str]) -> dict[str, np.ndarray]:
    """How often two content words appear in one training caption: sorted uint32 keys `a << 16 | b` (word ids,
    a < b) of the pairs seen at least `COOC_MIN_COUNT` times with their counts, the number of captions holding each
    word (`cooc_df`) and the number of captions (`cooc_n`): what `candidates.topic_evidence` weighs a candidate's
    fit with the rest of the caption by, beyond the n-gram window ("a pink kit ... flying in a clear blue sky")."""
    content = np.array([i > 2 and content_word(w) for i, w in enumerate(vocab)], bool)
    index = {w: i for i, w in enumerate(vocab)}
    df = np.zeros(len(vocab), np.int64)
    chunks = []
    for sent in corpus.sentences:
        ids = np.unique(np.fromiter((index.get(w, 0) for w in sent), np.int64, len(sent)))
        ids = ids[content[ids]]
        df[ids] += 1
        if len(ids) > 1:
            a, b = np.triu_indices(len(ids), 1)
            chunks.append((ids[a] << 16) | ids[b])
    keys, counts = np.unique(np.concatenate(chunks) if chunks else np.zeros(0, np.int64), return_counts=True)
    keep = counts >= COOC_MIN_COUNT
    return {"cooc_keys": keys[keep].astype(np.uint32), "cooc_count": np.minimum(counts[keep], 65535).astype(np.uint16),
            "cooc_df": df.astype(np.uint32), "cooc_n": np.array(len(corpus.sentences), np.int64)}


def build(mirror: str | os.PathLike | None = None, repo: Path = REPO, *, corpus: Corpus | None = None,
          exclude_images: Collection[str] = ()) -> dict[str, np.ndarray]:
    """All arrays of the shipped artefact, built from the mirror's captions (or from `corpus`, as `load_corpus`
    returns it), minus the images `exclude_images` (keys as in `Corpus.groups`, e.g. "f:1000268201_693b08cb0e.jpg"):
    a model that never saw those captions."""
    if corpus is None:
        corpus = load_corpus(mirror, repo)
    if exclude_images:
        drop = set(exclude_images)
        keep = [i for i, g in enumerate(corpus.groups) if g not in drop]
        corpus = Corpus([corpus.sentences[i] for i in keep], [corpus.groups[i] for i in keep], corpus.provenance)
    arrays = train(corpus.sentences)
    vocab = bytes(arrays["vocab"]).decode("utf-8").split("\n")
    arrays.update(sibling_statistics(corpus, vocab))
    arrays.update(cooccurrence_statistics(corpus, vocab))
    arrays["provenance"] = np.frombuffer(json.dumps(corpus.provenance, sort_keys=True).encode(), dtype=np.uint8)
    from capeval.audit.candidates import candidate_table  # the candidates of every vocabulary word, shipped along
    from capeval.audit.lm import CaptionLM

    arrays.update(candidate_table(CaptionLM(arrays)))
    return arrays


def save(arrays: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write an .npz whose bytes depend only on the arrays (fixed zip timestamps, sorted names)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            data = io.BytesIO()
            np.lib.format.write_array(data, np.asarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, data.getvalue())
    Path(path).write_bytes(buf.getvalue())


# ---------------------------------------------------------------- evaluation


def perplexity(arrays: dict[str, np.ndarray], sentences: Iterable[Sequence[str]]) -> float:
    """Per-token perplexity (every word and </s>) of held-out sentences."""
    from capeval.audit.lm import CaptionLM

    lm = CaptionLM(arrays)
    total, n = 0.0, 0
    for s in sentences:
        lp = lm.token_logprobs(s, eos=True)
        total += sum(lp)
        n += len(lp)
    return math.exp(-total / n)


def evaluate(mirror: str | os.PathLike | None = None, holdout_every: int = 10) -> list[dict]:
    """Held-out perplexity: every `holdout_every`-th image (all its captions) is held out, the rest trains."""
    corpus = load_corpus(mirror)
    keys = list(dict.fromkeys(corpus.groups))
    held = {g for i, g in enumerate(keys) if i % holdout_every == 0}
    train_s = [s for s, g in zip(corpus.sentences, corpus.groups) if g not in held]
    test_s = [s for s, g in zip(corpus.sentences, corpus.groups) if g in held]
    rows = []
    for order, prune in [(2, (0, 1)), (3, (0, 1, 1)), (3, (0, 1, 2)), (4, (0, 1, 1, 1)), (4, (0, 1, 2, 2)),
                         (4, (0, 2, 2, 2))]:
        t0 = time.perf_counter()
        arrays = train(train_s, order=order, prune=prune)
        size = sum(a.nbytes for a in arrays.values())
        rows.append({"order": order, "prune": prune, "perplexity": round(perplexity(arrays, test_s), 2),
                     "MB": round(size / 1e6, 1), "train_s": round(time.perf_counter() - t0, 1)})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m capeval.audit.build_lm", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the artefact here (e.g. capeval/audit/data/lm.npz)")
    parser.add_argument("--mirror", help="data mirror folder (default $CAPEVAL_DATA_MIRROR or ../shared/datasets)")
    parser.add_argument("--eval", action="store_true", help="print held-out perplexity per order and pruning")
    args = parser.parse_args(argv)
    if args.eval:
        for row in evaluate(args.mirror):
            print(row)
    if args.out:
        if not args.out.parent.is_dir():
            print(f"error: {args.out.parent}: folder does not exist", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        arrays = build(args.mirror)
        save(arrays, args.out)
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s; "
              f"{bytes(arrays['provenance']).decode()}")
    if not (args.eval or args.out):
        parser.print_usage()
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
