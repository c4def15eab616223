"""Scale-out of the reference audit on Ray: wall time of the 600,240-caption audit (24 copies of the Karpathy-test
references as JSONL under distinct image ids) with 1 and then 2 Ray workers in one run, the speed-up, the size of
every shard's corpus summary and of the merged one, and whether both runs wrote the same findings. The JSONL is
generated into a temporary folder and deleted afterwards.

Usage: python benchmarks/bench_scale.py [--data ../shared/datasets] [--copies 24] [--workers 1,2] [--shards 16]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from bench_audit_speed import KARPATHY, _mirror, write_jsonl  # noqa: E402


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--copies", type=int, default=24)
    ap.add_argument("--workers", default="1,2", help="Ray worker counts to run, in order (default 1,2)")
    ap.add_argument("--shards", type=int, default=16, help="image shards (the same for every run; default 16)")
    args = ap.parse_args()
    data = _mirror(args.data)
    if not (data / KARPATHY).is_file():
        sys.exit(f"Karpathy test references not found under {data} (set CAPEVAL_DATA_MIRROR or --data)")
    from capeval.engines.audit import audit_corpus

    workers = [int(w) for w in args.workers.split(",")]
    load = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        src = Path(tmp) / f"karpathy_x{args.copies}.jsonl"
        n = write_jsonl(data, args.copies, src)
        for w in workers:
            out = Path(tmp) / f"out-{w}"
            t = time.perf_counter()
            run = audit_corpus(str(src), str(out), engine="ray", num_cpus=w, num_shards=args.shards, workdir=tmp,
                               measure_summaries=True)
            wall = time.perf_counter() - t
            rows.append((w, wall, run, _digest(out / "findings.jsonl")))
    print(f"reference audit of {n} captions ({args.copies} copies of the Karpathy-test references, JSONL) on a local "
          f"Ray instance, {args.shards} image shards; machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / "
          f"{os.getloadavg()[0]:.1f} (start / end; shared machine)")
    print(f"{'workers':>7} {'wall s':>7} {'captions/s':>11} {'ray start':>9} {'partition':>9} {'pass 1':>7} "
          f"{'pass 2':>7} {'write':>6} {'passes s':>9} {'findings':>9}  findings.jsonl sha256")
    for w, wall, run, digest in rows:
        st = run.timings
        passes = st["pass1"] + st["pass2"]
        print(f"{w:>7} {wall:>7.1f} {n / wall:>11.0f} {st['engine_start']:>9.1f} {st['partition']:>9.1f} "
              f"{st['pass1']:>7.1f} {st['pass2']:>7.1f} {st['write']:>6.1f} {passes:>9.1f} {run.n_findings:>9}  "
              f"{digest}")
    if len(rows) >= 2:
        (w1, wall1, r1, d1), (w2, wall2, r2, d2) = rows[0], rows[-1]
        p1 = r1.timings["pass1"] + r1.timings["pass2"]
        p2 = r2.timings["pass1"] + r2.timings["pass2"]
        print(f"speed-up {w1} -> {w2} workers: wall {wall1 / wall2:.2f}, the two passes {p1 / p2:.2f} "
              f"(target >= 1.6 on 2 cores); findings {'identical' if d1 == d2 else 'DIFFERENT'}")
    run = rows[-1][2]
    sizes = [b / 2**20 for b in run.shard_summary_bytes]
    print(f"per-shard corpus summary (pickled), MB: min {min(sizes):.1f}, median {statistics.median(sizes):.1f}, "
          f"max {max(sizes):.1f}; captions per shard {min(run.shard_captions)}..{max(run.shard_captions)}; merged "
          f"summary {run.summary_bytes / 2**20:.1f} MB")
    print("per-shard sizes MB: " + ", ".join(f"{s:.1f}" for s in sizes))


if __name__ == "__main__":
    main()
