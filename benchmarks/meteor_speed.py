"""METEOR: capeval vs pycocoevalcap on the COCO Karpathy test split (5,000 images) with a real system's captions.

Prints wall times measured in the same run (JVM start, cold and warm scoring) and checks that corpus and per-image
scores are identical when both get the same PTB-tokenized captions.
Usage: python benchmarks/meteor_speed.py [N_IMAGES] [SYSTEM_JSON]   (data from $CAPEVAL_DATA_MIRROR or ../shared/datasets)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a live process (Linux /proc), a load-independent cost measure."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    root = Path(os.environ.get("CAPEVAL_DATA_MIRROR", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    system = sys.argv[2] if len(sys.argv) > 2 else "m2_transformer.json"
    refs = json.loads((root / "coco-karpathy-test" / "coco_test.json").read_text())[:n]
    outputs = json.loads((root / "coco-system-outputs" / system).read_text())
    ids = [str(int(e["image"].rsplit("_", 1)[1].split(".")[0])) for e in refs]
    cands, references = [outputs[i] for i in ids], [list(e["caption"]) for e in refs]

    from pycocoevalcap.meteor.meteor import Meteor as PycocoMeteor

    from capeval.metrics.meteor import Meteor
    from capeval.text.tokenize import tokenize_many

    t = time.perf_counter()
    toks = [" ".join(t) for t in tokenize_many([*cands, *(r for rs in references for r in rs)])]
    tok_time = time.perf_counter() - t
    res, gts, pos = {}, {}, n
    for k, rs in enumerate(references):
        res[k], gts[k] = [toks[k]], toks[pos: pos + len(rs)]
        pos += len(rs)

    t = time.perf_counter()
    pm = PycocoMeteor()
    pm.compute_score({0: gts[0]}, {0: res[0]})
    p_start = time.perf_counter() - t
    times_p, cpu_p = [], []
    for _ in range(2):
        t, c = time.perf_counter(), cpu_seconds(pm.meteor_p.pid)
        p_corpus, p_items = pm.compute_score(gts, res)
        times_p.append(time.perf_counter() - t)
        cpu_p.append(cpu_seconds(pm.meteor_p.pid) - c)
    pm.meteor_p.kill()
    pm.meteor_p.wait()

    m = Meteor()
    t = time.perf_counter()
    m.score(cands[:1], references[:1])
    c_start = time.perf_counter() - t
    times_c, cpu_c = [], []
    for _ in range(2):
        t, c = time.perf_counter(), cpu_seconds(m._proc.pid)
        (r,) = m.score(cands, references)  # raw text: tokenization included in the timing
        times_c.append(time.perf_counter() - t)
        cpu_c.append(cpu_seconds(m._proc.pid) - c)
    m.close()
    m = Meteor(tokenize=False)
    m.score([res[0][0]], [gts[0]])
    times_t = []
    for _ in range(2):
        t = time.perf_counter()
        (rt,) = m.score([res[k][0] for k in range(n)], [gts[k] for k in range(n)])
        times_t.append(time.perf_counter() - t)
    m.close()

    same = r.corpus == p_corpus and np.array_equal(r.per_item, np.array(p_items)) and rt.corpus == p_corpus
    print(f"images={n} system={system} capeval METEOR jobs={Meteor().jobs} (cpu_count={os.cpu_count()})")
    print(f"pycocoevalcap: JVM start+1 image {p_start:.2f} s, {n} images {times_p[0]:.2f} s then {times_p[1]:.2f} s")
    print(f"capeval:       JVM start+1 image {c_start:.2f} s, {n} images {times_c[0]:.2f} s then {times_c[1]:.2f} s"
          " (incl. PTB tokenization)")
    print(f"JVM CPU seconds for {n} images: pycocoevalcap {cpu_p[0]:.1f} then {cpu_p[1]:.1f}; "
          f"capeval {cpu_c[0]:.1f} then {cpu_c[1]:.1f}")
    print(f"capeval on pre-tokenized text: {times_t[0]:.2f} s then {times_t[1]:.2f} s; "
          f"PTB tokenization of {len(toks)} captions alone {tok_time:.2f} s")
    print(f"ratio capeval/pycoco (best of 2): {min(times_c) / min(times_p):.2f}")
    print(f"METEOR corpus {r.corpus:.6f} vs pycocoevalcap {p_corpus:.6f}; identical corpus and per-image: {same}")
    print(f"max |per-image diff| = {np.abs(r.per_item - np.array(p_items)).max():.3g}")


if __name__ == "__main__":
    main()
