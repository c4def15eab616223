"""Load test of the rating app: N simulated annotators submit concurrently to a real server on loopback.

Starts `capeval annotate serve` in a subprocess on 127.0.0.1 with a generated campaign, runs N gradio_client sessions
(one login each, over plain HTTP as the browser does: POST /login, then POST /gradio_api/run/submit) for --duration
seconds, then for --flood-seconds more while other clients flood `POST /login` (half with wrong passwords, which
the server throttles, half with a correct password, which costs a full scrypt check each), then checks the database
against what the server acknowledged: zero lost and zero duplicated ratings. A share of submissions is deliberately
resent (double click) and must be a no-op. Prints p50/p95/max submit latency (request -> next item received) for
both phases; PASS needs p95 under --p95-limit-ms without the flood and under --flood-p95-limit-ms during it.

    .venv/bin/python benchmarks/bench_annotation_load.py --annotators 50 --duration 60 --flood-seconds 30
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
            if httpx.get(url + "health", timeout=2).status_code == 200:
                return time.time() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"server not ready after {timeout} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of submitting")
    ap.add_argument("--think", type=float, default=1.0,
                    help="mean pause between submissions per annotator in s (exponential); 1 s is a very fast rater, "
                         "real ones need several seconds per caption; 0 = stress test (closed loop, no pause)")
    ap.add_argument("--resend", type=float, default=0.05, help="share of submissions resent at once (double click)")
    ap.add_argument("--images", type=int, default=0, help="images in the campaign (default: enough for the run)")
    ap.add_argument("--p95-limit-ms", type=float, default=200.0)
    ap.add_argument("--flood-seconds", type=float, default=30.0, help="extra seconds of submitting under a login flood "
                    "(0: no flood phase)")
    ap.add_argument("--flood-threads", type=int, default=8, help="login-flooding clients (half wrong, half right)")
    ap.add_argument("--flood-p95-limit-ms", type=float, default=500.0)
    ap.add_argument("--workdir", type=Path, default=None)
    a = ap.parse_args(argv)

    import httpx

    from annotation.app import SCREEN_FIELDS
    from annotation.example import free_port, make_campaign, serve_in_subprocess, stop_process

    TOKEN = SCREEN_FIELDS.index("token")
    work = a.workdir or Path(tempfile.mkdtemp(prefix="capeval-load-"))
    names = [f"a{k:02d}" for k in range(a.annotators)]
    # enough items that nobody runs out: up to ~5 submissions/s per annotator, 2 systems x 3 raters per image
    total_s = a.duration + a.flood_seconds
    n_images = a.images or max(50, int(total_s * 5 * a.annotators / 6) + 10)
    n_images = min(n_images, 4000)
    t0 = time.time()
    ex = make_campaign(work, n_images=n_images, annotators=[*names, "flooder"], raters_per_item=3,
                       image_size=(160, 120))
    print(f"campaign: {n_images} images x 2 systems, 3 raters per item, {a.annotators} annotators "
          f"({time.time() - t0:.1f} s to generate) in {work}")

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = serve_in_subprocess(ex.path, port, work / "server.log")
    try:
        print(f"server ready after {wait_ready(url, proc):.1f} s (pid {proc.pid}, loopback only)")
        lat: list[tuple[float, bool]] = []  # (seconds, during the login flood)
        flood_on = threading.Event()
        flood_codes: dict[int, int] = {}
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
            for _ in range(20):  # a busy server answers 429 with Retry-After: wait and retry, as a person would
                r = h.post("/login", data={"username": name, "password": ex.passwords[name]})
                if r.status_code != 429:
                    break
                time.sleep(float(r.headers.get("retry-after", "1")))
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
                    lat.append((dt, flood_on.is_set()))
                    acked[(name, token)] = rating
                n += 1
                if rng.random() < a.resend:
                    call("submit", [token, rating, "", ""])  # must change nothing
                token = out[TOKEN]
                if a.think:
                    time.sleep(rng.expovariate(1.0 / a.think))
            return n

        def flooder(k: int) -> None:
            rng = random.Random(k)
            with httpx.Client(base_url=url, timeout=60) as h:
                while time.time() < stop_at[0]:
                    if k % 2:  # a correct password: a full scrypt check, never throttled
                        data = {"username": "flooder", "password": ex.passwords["flooder"]}
                    else:  # guessing: throttled by name and by address
                        data = {"username": rng.choice(names), "password": f"guess-{rng.randrange(10**9)}"}
                    try:
                        code = h.post("/login", data=data).status_code
                    except httpx.HTTPError:
                        code = -1
                    with lock:
                        flood_codes[code] = flood_codes.get(code, 0) + 1

        with cf.ThreadPoolExecutor(a.annotators + a.flood_threads) as pool:
            futs = [pool.submit(annotator, n) for n in names]
            # sessions log in first (one scrypt check each), then the clock starts for all at once
            while ready[0] < a.annotators and not any(f.done() for f in futs):
                time.sleep(0.05)
            stop_at[0] = time.time() + total_s
            cpu0, load0 = server_cpu(proc.pid), os.getloadavg()[0]
            go.set()
            t_start = time.time()
            if a.flood_seconds > 0:
                time.sleep(a.duration)
                flood_on.set()
                floods = [pool.submit(flooder, k) for k in range(a.flood_threads)]
            counts = [f.result() for f in futs]
            if a.flood_seconds > 0:
                for f in floods:
                    f.result()
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
    calm = sorted(x * 1000 for x, f in lat if not f)
    flood = sorted(x * 1000 for x, f in lat if f)

    def pct(p: float, xs: list[float]) -> float:
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")

    print(f"submissions acknowledged: {len(acked)} in {wall:.1f} s ({len(acked) / wall:.1f}/s), "
          f"per annotator min {min(counts)} max {max(counts)}")
    print(f"rows in database: {len(rows)}; lost: {len(lost)}; duplicated: {duplicated}; "
          f"rows without acknowledgement: {unacked_extra}; history rows (edits): {history}; errors: {len(errors)}")
    print(f"server CPU per submission: {1000 * (cpu1 - cpu0) / max(1, len(lat)):.1f} ms; machine load average "
          f"{load0:.1f} -> {load1:.1f} on {os.cpu_count()} cores; think time {a.think:g} s")
    print(f"submit latency ms, {a.annotators} annotators, {a.duration:g} s: p50 {pct(50, calm):.1f}  "
          f"p95 {pct(95, calm):.1f}  p99 {pct(99, calm):.1f}  max {calm[-1] if calm else float('nan'):.1f}  "
          f"(n={len(calm)})")
    flood_ok = True
    if a.flood_seconds > 0:
        print(f"submit latency ms during a {a.flood_threads}-client login flood, {a.flood_seconds:g} s: "
              f"p50 {pct(50, flood):.1f}  p95 {pct(95, flood):.1f}  p99 {pct(99, flood):.1f}  "
              f"max {flood[-1] if flood else float('nan'):.1f}  (n={len(flood)})")
        print("login flood answers (HTTP status: count): "
              + ", ".join(f"{k}: {v}" for k, v in sorted(flood_codes.items())))
        flood_ok = pct(95, flood) < a.flood_p95_limit_ms
    ok = (not lost and duplicated == 0 and history == 0 and not errors and pct(95, calm) < a.p95_limit_ms
          and flood_ok)
    for e in errors[:5]:
        print("error:", e)
    print("PASS" if ok else "FAIL", f"(p95 limits {a.p95_limit_ms:.0f} ms, {a.flood_p95_limit_ms:.0f} ms under the "
          "login flood)")
    db.close()
    if a.workdir is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
