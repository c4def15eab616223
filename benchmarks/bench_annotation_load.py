"""Load test of the rating app: N simulated annotators submit concurrently to a real server on loopback.

Starts `capeval annotate serve` in a subprocess on 127.0.0.1 with a generated campaign, runs N gradio_client sessions
(one login each, over plain HTTP as the browser does: POST /login, then POST /gradio_api/run/submit) for --duration
seconds, then checks the database against what the server acknowledged:
zero lost and zero duplicated ratings. A share of submissions is deliberately resent (double click) and must be a
no-op. Prints p50/p95/max submit latency (request -> next item received).

    .venv/bin/python benchmarks/bench_annotation_load.py --annotators 20 --duration 60
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> float:
    import httpx

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early (rc={proc.returncode})")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.time() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"server not ready after {timeout} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotators", type=int, default=20)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of submitting")
    ap.add_argument("--think", type=float, default=1.0,
                    help="mean pause between submissions per annotator in s (exponential); 1 s is a very fast rater, "
                         "real ones need several seconds per caption; 0 = stress test (closed loop, no pause)")
    ap.add_argument("--resend", type=float, default=0.05, help="share of submissions resent at once (double click)")
    ap.add_argument("--images", type=int, default=0, help="images in the campaign (default: enough for the run)")
    ap.add_argument("--p95-limit-ms", type=float, default=500.0)
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args(argv)

    import httpx

    from annotation.app import SCREEN_FIELDS
    from annotation.example import free_port, make_campaign, serve_in_subprocess, stop_process

    TOKEN = SCREEN_FIELDS.index("token")
    work = a.workdir or Path(tempfile.mkdtemp(prefix="capeval-load-"))
    names = [f"a{k:02d}" for k in range(a.annotators)]
    # enough items that nobody runs out: up to ~5 submissions/s per annotator, 2 systems x 3 raters per image
    n_images = a.images or max(50, int(a.duration * 5 * a.annotators / 6) + 10)
    n_images = min(n_images, 4000)
    t0 = time.time()
    ex = make_campaign(work, n_images=n_images, annotators=names, raters_per_item=3, image_size=(160, 120))
    print(f"campaign: {n_images} images x 2 systems, 3 raters per item, {a.annotators} annotators "
          f"({time.time() - t0:.1f} s to generate) in {work}")

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = serve_in_subprocess(ex.path, port, work / "server.log")
    try:
        print(f"server ready after {wait_ready(url, proc):.1f} s (pid {proc.pid}, loopback only)")
        lat: list[float] = []
        acked: dict[tuple[str, str], str] = {}
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = [0.0]
        ready = [0]
        go = threading.Event()

        def annotator(name: str) -> int:
            rng = random.Random(name)
            h = httpx.Client(base_url=url, timeout=60)
            session = f"load-{name}-{rng.randrange(10**9)}"  # one page session per annotator, as a browser tab
            r = h.post("/login", data={"username": name, "password": ex.passwords[name]})
            r.raise_for_status()

            def call(api: str, data: list) -> list:
                resp = h.post(f"/gradio_api/run/{api}", json={"data": data, "session_hash": session})
                resp.raise_for_status()
                return resp.json()["data"]

            token = call("current", [])[TOKEN]
            with lock:
                ready[0] += 1
            go.wait()
            n = 0
            while token and time.time() < stop_at[0]:
                rating = str(rng.randint(1, 4))
                t = time.perf_counter()
                try:
                    out = call("submit", [token, rating, "", ""])
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    with lock:
                        errors.append(f"{name}: {exc}")
                    break
                dt = time.perf_counter() - t
                with lock:
                    lat.append(dt)
                    acked[(name, token)] = rating
                n += 1
                if rng.random() < a.resend:
                    call("submit", [token, rating, "", ""])  # must change nothing
                token = out[TOKEN]
                if a.think:
                    time.sleep(rng.expovariate(1.0 / a.think))
            return n

        with cf.ThreadPoolExecutor(a.annotators) as pool:
            futs = [pool.submit(annotator, n) for n in names]
            # sessions log in first (one scrypt check each), then the clock starts for all at once
            while ready[0] < a.annotators and not any(f.done() for f in futs):
                time.sleep(0.05)
            stop_at[0] = time.time() + a.duration
            cpu0, load0 = server_cpu(proc.pid), os.getloadavg()[0]
            go.set()
            t_start = time.time()
            counts = [f.result() for f in futs]
        wall = time.time() - t_start
        cpu1, load1 = server_cpu(proc.pid), os.getloadavg()[0]
    finally:
        stop_process(proc)

    db = sqlite3.connect(work / "ratings.db")
    rows = db.execute("SELECT r.annotator, i.public_id, r.ratings FROM ratings r JOIN items i ON i.id = r.item_id"
                      ).fetchall()
    stored = {(an, pid): int(__import__("json").loads(v)["rating"]) for an, pid, v in rows}
    lost = [k for k, v in acked.items() if stored.get(k) != int(v)]
    duplicated = len(rows) - len(stored)
    unacked_extra = len(set(stored) - set(acked))
    history = db.execute("SELECT COUNT(*) FROM rating_history").fetchone()[0]
    lat_ms = sorted(x * 1000 for x in lat)

    def pct(p: float) -> float:
        return lat_ms[min(len(lat_ms) - 1, int(round(p / 100 * (len(lat_ms) - 1))))] if lat_ms else float("nan")

    print(f"submissions acknowledged: {len(acked)} in {wall:.1f} s ({len(acked) / wall:.1f}/s), "
          f"per annotator min {min(counts)} max {max(counts)}")
    print(f"rows in database: {len(rows)}; lost: {len(lost)}; duplicated: {duplicated}; "
          f"rows without acknowledgement: {unacked_extra}; history rows (edits): {history}; errors: {len(errors)}")
    print(f"server CPU per submission: {1000 * (cpu1 - cpu0) / max(1, len(lat)):.1f} ms; machine load average "
          f"{load0:.1f} -> {load1:.1f} on {os.cpu_count()} cores; think time {a.think:g} s")
    print(f"submit latency ms: p50 {pct(50):.1f}  p95 {pct(95):.1f}  p99 {pct(99):.1f}  max {lat_ms[-1]:.1f}")
    ok = not lost and duplicated == 0 and history == 0 and not errors and pct(95) < a.p95_limit_ms
    for e in errors[:5]:
        print("error:", e)
    print("PASS" if ok else "FAIL", f"(p95 limit {a.p95_limit_ms:.0f} ms)")
    db.close()
    if a.workdir is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
