"""Bootstrap CIs on Flickr8k-Expert: capeval's vectorised image bootstrap vs a straightforward scipy loop.

Scores 6 metrics (BLEU-1..4, ROUGE-L, CIDEr-D; Java-free) on the 16,992 Expert rows through capeval's engine (not
timed), then times 1000 image-bootstrap resamples of Kendall tau-c for all 6 metrics:
  (a) capeval.meta.stats.bootstrap_correlations (one sort per metric, resamples as cluster weights, BLAS),
  (b) a plain loop: for each resample, index the rows and call scipy.stats.kendalltau(variant='c').
The loop runs a subset of the SAME resamples (--loop-resamples, default 50) and is extrapolated linearly to 1000;
the values of both on that subset are compared.

Then system level on THumB (5 systems x 500 images, per-system unit): 1000 image resamples recomputing every system's
corpus BLEU-4 and ROUGE-L from per-image statistics, against re-running `score_systems` on each resampled corpus
(drawn images duplicated under new ids; --system-loop resamples, extrapolated); both give the same corpus scores.
Usage:
    CAPEVAL_DATA_MIRROR=../shared/datasets .venv/bin/python benchmarks/bench_correlate.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import scipy.stats

from capeval.meta import stats as S
from capeval.meta.correlate import plan_scoring, score_plan
from capeval.meta.judgments import load_flickr8k_expert

METRICS = ["bleu1", "bleu2", "bleu3", "bleu4", "rouge", "cider"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--loop-resamples", type=int, default=100, help="resamples the scipy loop runs (extrapolated)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--system-loop", type=int, default=10, help="resamples re-scored with score_systems (THumB)")
    args = ap.parse_args()
    flickr8k_bootstrap(args)
    thumb_system_bootstrap(args)


def flickr8k_bootstrap(args: argparse.Namespace) -> None:

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        j = load_flickr8k_expert()
        plan = plan_scoring(j, j.references)
    t0 = time.perf_counter()
    scores, _, unavailable = score_plan(plan, METRICS)
    print(f"scored {len(plan.candidates):,} documents x {len(scores)} metrics in {time.perf_counter() - t0:.1f}s "
          f"(not part of the comparison){'; unavailable: ' + str(unavailable) if unavailable else ''}")
    rows = plan.rows
    y = rows["rating"].to_numpy()
    xs = {m: v[rows["doc"].to_numpy()] for m, v in scores.items()}
    images = rows["image_id"].to_numpy()
    print(f"Flickr8k-Expert: N = {len(y):,} rows, {len(set(images)):,} images, {len(xs)} metrics, "
          f"{args.resamples} resamples of images, statistic tau-c")

    t0 = time.perf_counter()
    res = S.bootstrap_correlations(xs, y, images, statistics=["tau_c"], n_resamples=args.resamples, seed=args.seed)
    t_vec = time.perf_counter() - t0
    print(f"capeval vectorised bootstrap: {t_vec:.2f}s for {len(xs)} metrics x {args.resamples} resamples")

    # the loop uses the very same resamples (cluster draw counts) as index arrays
    codes, g = S._group_codes(images)
    counts = S.cluster_bootstrap_counts(g, args.resamples, args.seed)
    rows_of = [np.flatnonzero(codes == k) for k in range(g)]
    k = min(args.loop_resamples, args.resamples)
    t0 = time.perf_counter()
    loop_vals = {m: [] for m in xs}
    for b in range(k):
        idx = np.concatenate([np.tile(rows_of[c], int(n)) for c, n in enumerate(counts[b]) if n])
        for m, x in xs.items():
            loop_vals[m].append(scipy.stats.kendalltau(x[idx], y[idx], variant="c")[0])
    t_loop_k = time.perf_counter() - t0
    t_loop = t_loop_k * args.resamples / k
    diff = max(float(np.max(np.abs(np.array(loop_vals[m]) - res.samples[m]["tau_c"][:k]))) for m in xs)
    print(f"scipy.stats.kendalltau loop: {t_loop_k:.2f}s for {k} resamples x {len(xs)} metrics -> "
          f"{t_loop:.1f}s extrapolated to {args.resamples} (linear; each resample costs the same)")
    print(f"max |difference| between the two on the shared {k} resamples: {diff:.2e}")
    print(f"speed-up: {t_loop / t_vec:.1f}x")
    print("\nmetric   tau_c x100   95% CI")
    for m in xs:
        lo, hi = res.ci(m, "tau_c")
        print(f"{m:8s} {100 * res.estimates[m]['tau_c']:9.2f}   [{100 * lo:.2f}, {100 * hi:.2f}]")



def thumb_system_bootstrap(args: argparse.Namespace) -> None:
    from capeval.meta.judgments import load_thumb
    from capeval.meta.protocols import finalise, score_by_system
    from capeval.metrics.engine import score_systems
    from capeval.records import CaptionSet

    j = load_thumb()
    rows = j.frame
    sc = score_by_system(rows, j.references, ["bleu4", "rouge"])
    systems = list(dict.fromkeys(rows["system"]))
    images = sc.stats["bleu4"][systems[0]].images
    counts = S.cluster_bootstrap_counts(len(images), args.resamples, args.seed)
    t0 = time.perf_counter()
    fast = {m: np.stack([finalise(sc.stats[m][s], counts @ sc.stats[m][s].values) for s in systems], axis=1)
            for m in ("bleu4", "rouge")}
    t_vec = time.perf_counter() - t0
    refs = j.references.texts_by_image()
    texts = {s: dict(zip(rows[rows.system == s]["image_id"], rows[rows.system == s]["caption"])) for s in systems}
    k = min(args.system_loop, args.resamples)
    t0 = time.perf_counter()
    diff = 0.0
    for b in range(k):
        draw = [img for img, n in zip(images, counts[b]) for _ in range(int(n))]
        dup_refs = CaptionSet.from_mapping({f"{img}x{i}": refs[img] for i, img in enumerate(draw)})
        cands = {s: CaptionSet.from_mapping({f"{img}x{i}": texts[s][img] for i, img in enumerate(draw)}, name=s)
                 for s in systems}
        corpus = score_systems(cands, dup_refs, ["bleu", "rouge"], progress=False).corpus
        for m, col in (("bleu4", "bleu4"), ("rouge", "rouge")):
            diff = max(diff, float(np.max(np.abs(corpus.loc[systems, col].to_numpy() - fast[m][b]))))
    t_loop = (time.perf_counter() - t0) * args.resamples / k
    print(f"\nTHumB system level: {len(systems)} systems x {len(images)} images, {args.resamples} resamples, "
          f"corpus BLEU-4 and ROUGE-L per system and resample")
    print(f"capeval per-image statistics: {t_vec:.3f}s; score_systems on each resampled corpus: {t_loop:.1f}s "
          f"(extrapolated from {k}); speed-up {t_loop / t_vec:.0f}x; max |difference| {diff:.1e}")


if __name__ == "__main__":
    main()
