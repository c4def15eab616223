"""Speed of capeval's native metrics vs pycocoevalcap, end to end, measured in the same run.

Workload: COCO Karpathy test (5,000 images, 25,010 references) with the BLIP-2 captions.
- pycocoevalcap: PTBTokenizer (Java) on references and candidates + Bleu(4) + Cider() + Rouge().
- capeval: Java-free PTB tokenization + BLEU-1..4 + CIDEr-D + ROUGE-L (capeval.metrics.compute_metric path
  through score_systems' shared preparation).
Prints both wall times, the ratio, peak Python memory (tracemalloc) for capeval and max RSS, and checks that
the corpus scores agree.

    python benchmarks/bench_metrics.py [--data ../shared/datasets] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def load(data: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    refs: dict[str, list[str]] = {}
    for e in json.loads((data / "coco-karpathy-test" / "coco_test.json").read_text()):
        refs[str(int(e["image"].rsplit("_", 1)[-1].split(".")[0]))] = list(e["caption"])
    cands = json.loads((data / "coco-system-outputs" / "blip2_results_xe.json").read_text())
    return refs, {k: cands[k] for k in refs}


def run_pycoco(refs: dict[str, list[str]], cands: dict[str, str]) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
        res = tok.tokenize({k: [{"caption": v}] for k, v in cands.items()})
        b, _ = Bleu(4).compute_score(gts, res)
        c, _ = Cider().compute_score(gts, res)
        r, _ = Rouge().compute_score(gts, res)
    return {"bleu4": b[3], "cider": float(c), "rouge": float(r)}


def run_capeval(refs: dict[str, list[str]], cands: dict[str, str]) -> dict[str, float]:
    from capeval.metrics import compute_metric_many

    ids = list(refs)
    out = compute_metric_many(["bleu", "cider", "rouge"], [cands[i] for i in ids], [refs[i] for i in ids])
    return {r.name: r.corpus for r in out if r.name in ("bleu4", "cider", "rouge")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("CAPEVAL_DATA_MIRROR", REPO.parent / "shared" / "datasets")))
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side; the best wall time is reported")
    args = ap.parse_args()
    refs, cands = load(args.data)
    print(f"{len(refs)} images, {sum(map(len, refs.values()))} references, BLIP-2 candidates; "
          f"loadavg {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    t_py, t_cap = [], []
    for _ in range(args.repeat):  # interleaved so machine load hits both sides alike
        t0 = time.perf_counter()
        s_py = run_pycoco(refs, cands)
        t_py.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s_cap = run_capeval(refs, cands)
        t_cap.append(time.perf_counter() - t0)
    tracemalloc.start()
    run_capeval(refs, cands)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    for k in s_py:
        assert abs(s_py[k] - s_cap[k]) < 1e-9, (k, s_py[k], s_cap[k])
    bp, bc = min(t_py), min(t_cap)
    print(f"pycocoevalcap (Java PTBTokenizer + Bleu + Cider + Rouge): best {bp:.3f} s  runs {[round(t, 3) for t in t_py]}")
    print(f"capeval native (tokenize + BLEU + CIDEr-D + ROUGE-L):     best {bc:.3f} s  runs {[round(t, 3) for t in t_cap]}")
    print(f"speed-up: {bp / bc:.1f}x (best vs best), {sum(t_py) / sum(t_cap):.1f}x (total vs total)")
    print(f"capeval peak traced Python memory: {peak / 2**20:.1f} MiB; "
          f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print("corpus scores agree:", {k: round(v, 6) for k, v in s_cap.items()})


if __name__ == "__main__":
    main()
