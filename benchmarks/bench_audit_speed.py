"""Speed and memory of the reference audit: captions per second and peak RSS for 25,010, 100,040 and 600,240
captions (1, 4 and 24 copies of the Karpathy-test references under distinct image ids), in memory
(`audit_captions` on a CaptionSet, as before) and streaming in one process (`--engine local`: a JSONL file read in
chunks, two passes over image shards, outputs written). Each run is a fresh process, so peak RSS is its own;
the JSONL files are generated into a temporary folder and deleted afterwards.

Usage: python benchmarks/bench_audit_speed.py [--data ../shared/datasets] [--sizes 1,4,24] [--modes memory,stream]
       [--repeat 3]   (--copies N = sizes 1,N, as before)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KARPATHY = Path("coco-karpathy-test") / "coco_test.json"


def _mirror(arg: str | None) -> Path:
    return Path(arg or os.environ.get("CAPEVAL_DATA_MIRROR") or REPO.parent / "shared" / "datasets")


def _copies(data: Path, copies: int):
    """`copies` copies of the Karpathy references, copy r under image ids `<id>~r` and caption ids `<id>~r`."""
    from capeval.io import load_captions
    from capeval.records import Caption

    base = load_captions(data / KARPATHY, allow_empty=True)
    return [Caption(f"{c.caption_id}~{r}" if r else c.caption_id, f"{c.image_id}~{r}" if r else c.image_id, c.text)
            for r in range(copies) for c in base.captions]


def write_jsonl(data: Path, copies: int, path: Path) -> int:
    """The copies as JSON lines (image_id, caption, caption_id); returns the caption count."""
    caps = _copies(data, copies)
    with open(path, "w", encoding="utf-8") as fh:
        for c in caps:
            fh.write(json.dumps({"image_id": c.image_id, "caption": c.text, "caption_id": c.caption_id},
                                ensure_ascii=False) + "\n")
    return len(caps)


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_memory(data: Path, copies: int, repeat: int) -> dict:
    """Audit the copies in this process with `audit_captions` (`repeat` times, the fastest counts, as timeit does:
    the machine is shared)."""
    from capeval.audit import audit_captions, preload
    from capeval.records import CaptionSet

    corpus = CaptionSet(_copies(data, copies), name=f"karpathy x{copies}")
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
    return {"mode": "memory", "captions": len(corpus), "seconds": elapsed, "cpu_seconds": cpu,
            "setup_seconds": setup, "peak_rss_mb": _peak_mb(), "findings": len(result.findings),
            "stages": result.timings, "repeat": len(runs), "summary_mb": float("nan")}


def run_stream(path: Path, repeat: int) -> dict:
    """Audit the JSONL file streaming with the local engine (fastest of `repeat`), outputs into a temporary folder."""
    from capeval.audit import preload
    from capeval.engines.audit import audit_corpus

    t = time.perf_counter()
    preload()
    import capeval.metrics  # noqa: F401

    setup = time.perf_counter() - t
    runs = []
    for _ in range(max(1, repeat)):
        with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
            t, cpu = time.perf_counter(), time.process_time()
            run = audit_corpus(str(path), str(Path(tmp) / "out"), engine="local", workdir=tmp)
            runs.append((time.perf_counter() - t, time.process_time() - cpu, run))
    elapsed, cpu, run = min(runs, key=lambda r: r[0])
    return {"mode": "stream", "captions": run.n_captions, "seconds": elapsed, "cpu_seconds": cpu,
            "setup_seconds": setup, "peak_rss_mb": _peak_mb(), "findings": run.n_findings,
            "stages": run.timings, "repeat": len(runs), "summary_mb": run.summary_bytes / 2**20,
            "shards": len(run.shard_captions)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--sizes", default=None, help="copies of the Karpathy references per size (default 1,4,24)")
    ap.add_argument("--copies", type=int, default=None, help="sizes 1 and COPIES (as before --sizes)")
    ap.add_argument("--modes", default="memory,stream", help="memory (audit_captions), stream (--engine local)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest counts (default 3)")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    data = _mirror(args.data)
    if args._child is not None:
        mode, arg = args._child.split(":", 1)
        res = run_memory(data, int(arg), args.repeat) if mode == "memory" else run_stream(Path(arg), args.repeat)
        print(json.dumps(res))
        return
    if not (data / KARPATHY).is_file():
        sys.exit(f"Karpathy test references not found under {data} (set CAPEVAL_DATA_MIRROR or --data)")
    sizes = [1, args.copies] if args.copies else [int(s) for s in (args.sizes or "1,4,24").split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rows = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-audit-data-") as tmp:
        for copies in sizes:
            path = Path(tmp) / f"karpathy_x{copies}.jsonl"
            if "stream" in modes:
                write_jsonl(data, copies, path)
            for mode in modes:
                arg = str(copies) if mode == "memory" else str(path)
                out = subprocess.run([sys.executable, __file__, "--data", str(data), "--_child", f"{mode}:{arg}",
                                      "--repeat", str(args.repeat)], capture_output=True, text=True, env=env)
                if out.returncode != 0:
                    sys.exit(f"{mode} x{copies} failed:\n{out.stderr[-3000:]}")
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            path.unlink(missing_ok=True)
    print(f"reference audit (built-in checks); machine: {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f} / {os.getloadavg()[0]:.1f} (start / end; shared machine)")
    print("memory = audit_captions on a CaptionSet in memory (outputs not written); stream = capeval "
          "audit-references --engine local on a JSONL file (read in chunks, image shards on disk, two passes, "
          f"Parquet + findings.jsonl written); wall = elapsed; fastest of {rows[0]['repeat']} runs, each size and "
          "mode in a fresh process")
    print(f"{'mode':>6} {'captions':>9} {'wall s':>7} {'captions/s':>11} {'cpu s':>7} {'captions/cpu-s':>15} "
          f"{'peak RSS MB':>12} {'summary MB':>11} {'findings':>9}  stages (wall s; cpu s)")
    for r in rows:
        st = r["stages"]
        stages = ", ".join(f"{k} {st[k]:.2f}; {st.get(k + '_cpu', float('nan')):.2f}" for k in st
                           if not k.endswith("_cpu") and isinstance(st[k], float))  # not counts
        print(f"{r['mode']:>6} {r['captions']:>9} {r['seconds']:>7.2f} {r['captions'] / r['seconds']:>11.0f} "
              f"{r['cpu_seconds']:>7.2f} {r['captions'] / r['cpu_seconds']:>15.0f} {r['peak_rss_mb']:>12.0f} "
              f"{r['summary_mb']:>11.1f} {r['findings']:>9}  {stages}")
    for mode in modes:
        rs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["captions"])
        if len(rs) >= 2:
            a, b = rs[0], rs[-1]
            slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) * 1024 / (b["captions"] - a["captions"])
            print(f"{mode}: peak RSS grows {slope:.2f} KB per caption from {a['captions']} to {b['captions']} captions "
                  f"({a['peak_rss_mb']:.0f} -> {b['peak_rss_mb']:.0f} MB)")
    by = {(r["mode"], r["captions"]): r for r in rows}
    for (mode, n), r in by.items():
        m = by.get(("memory", n))
        if mode == "stream" and m is not None:
            same = "same" if m["findings"] == r["findings"] else "DIFFERENT"
            print(f"{n} captions: stream / memory throughput (wall) = {m['seconds'] / r['seconds']:.2f}, (cpu) = "
                  f"{m['cpu_seconds'] / r['cpu_seconds']:.2f}; peak RSS {r['peak_rss_mb']:.0f} vs "
                  f"{m['peak_rss_mb']:.0f} MB; findings {same} ({r['findings']})")
    big = [r for r in rows if r["mode"] == "stream" and r["captions"] >= 600_000]
    for r in big:
        print(f"target: streaming 600k-caption audit under 1.5 GB peak RSS: "
              f"{'met' if r['peak_rss_mb'] < 1536 else 'NOT met'} ({r['peak_rss_mb']:.0f} MB)")
    for r in rows:
        if r["mode"] == "memory" and r["captions"] < 30_000:
            rate = r["captions"] / r["seconds"]
            print(f"in-memory audit of {r['captions']} references: {rate:.0f} captions/s (wall; audit team's target "
                  f">= 3,000: {'met' if rate >= 3000 else 'NOT met'})")


if __name__ == "__main__":
    main()
