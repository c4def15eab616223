"""Speed of the built-in reference audit: captions per second on the 25,010 Karpathy-test references and on a
100,040-caption corpus built from them (4 copies under distinct image ids), with peak memory, and whether time grows
linearly. Each size runs in a fresh process so peak memory is its own.

Usage: python benchmarks/bench_audit_speed.py [--data ../shared/datasets] [--copies 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _mirror(arg: str | None) -> Path:
    return Path(arg or os.environ.get("CAPEVAL_DATA_MIRROR") or REPO.parent / "shared" / "datasets")


def run_one(data: Path, copies: int, repeat: int = 1) -> dict:
    """Audit `copies` copies of the Karpathy references in this process (`repeat` times, the fastest run counts,
    as timeit does: the machine is shared); time, rate and peak RSS."""
    import resource

    from capeval.audit import audit_captions, preload
    from capeval.io import load_captions
    from capeval.records import Caption, CaptionSet

    base = load_captions(data / "coco-karpathy-test" / "coco_test.json", allow_empty=True)
    caps = [Caption(f"{c.caption_id}~{r}" if r else c.caption_id, f"{c.image_id}~{r}" if r else c.image_id, c.text)
            for r in range(copies) for c in base.captions]
    corpus = CaptionSet(caps, name=f"karpathy x{copies}")
    t = time.perf_counter()
    preload()
    import capeval.metrics  # noqa: F401  (imported once per process, like the lexicon)

    setup = time.perf_counter() - t
    runs = []
    for _ in range(max(1, repeat)):
        t, cpu = time.perf_counter(), time.process_time()
        result = audit_captions(corpus, progress=False)
        runs.append((time.perf_counter() - t, time.process_time() - cpu, result))
    elapsed, cpu, result = min(runs, key=lambda r: r[0])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"captions": len(corpus), "seconds": elapsed, "rate": len(corpus) / elapsed, "cpu_seconds": cpu,
            "cpu_rate": len(corpus) / cpu, "setup_seconds": setup,
            "peak_rss_mb": peak_mb, "findings": len(result.findings), "stages": result.timings, "repeat": len(runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest counts (default 3)")
    ap.add_argument("--_child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    data = _mirror(args.data)
    if args._child is not None:
        print(json.dumps(run_one(data, args._child, args.repeat)))
        return
    if not (data / "coco-karpathy-test" / "coco_test.json").is_file():
        sys.exit(f"Karpathy test references not found under {data} (set CAPEVAL_DATA_MIRROR or --data)")
    rows = []
    for copies in (1, args.copies):
        out = subprocess.run([sys.executable, __file__, "--data", str(data), "--_child", str(copies),
                              "--repeat", str(args.repeat)],
                             capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"built-in audit (spelling, real-word, grammar, formatting, non-caption, duplicate, low_detail, "
          f"off_consensus with leave-one-out CIDEr-D); machine: {os.cpu_count()} CPUs")
    print("wall = elapsed time; cpu = process CPU time (what the run costs on an idle machine: one process, "
          f"one core); fastest of {rows[0]['repeat']} runs per size, each size in a fresh process")
    print(f"{'captions':>9} {'wall s':>7} {'captions/s':>11} {'cpu s':>7} {'captions/cpu-s':>15} {'peak RSS MB':>12} "
          f"{'findings':>9}  stages (wall s; cpu s)")
    for r in rows:
        st = r["stages"]
        stages = ", ".join(f"{k} {st[k]:.2f}; {st.get(k + '_cpu', float('nan')):.2f}"
                           for k in st if not k.endswith("_cpu"))
        print(f"{r['captions']:>9} {r['seconds']:>7.2f} {r['rate']:>11.0f} {r['cpu_seconds']:>7.2f} "
              f"{r['cpu_rate']:>15.0f} {r['peak_rss_mb']:>12.0f} {r['findings']:>9}  {stages}; "
              f"one-off setup (dictionary, suggestion buckets, tokenizer) {r['setup_seconds']:.2f}")
    small, large = rows
    size_ratio = large["captions"] / small["captions"]
    for label, key, rate in (("wall", "seconds", "rate"), ("cpu", "cpu_seconds", "cpu_rate")):
        print(f"{label}: time ratio {large['captions']}/{small['captions']} captions = "
              f"{large[key] / small[key]:.2f} (linear: {size_ratio:.2f}); rate ratio large/small = "
              f"{large[rate] / small[rate]:.2f} (linear: 1.00)")
    for label, rate in (("wall", "rate"), ("cpu", "cpu_rate")):
        slowest = min(small[rate], large[rate])
        print(f"target >= 5,000 captions/s ({label}): {'met' if slowest >= 5000 else 'NOT met'} "
              f"(slowest {slowest:.0f})")
    text_rates = [r["captions"] / r["stages"]["text_checks_cpu"] for r in rows if r["stages"].get("text_checks_cpu")]
    if text_rates:
        print("text checks alone (spelling, real-word, grammar, formatting, non-caption), captions/cpu-s: "
              + ", ".join(f"{x:.0f}" for x in text_rates))


if __name__ == "__main__":
    main()
