"""Crash safety: `capeval annotate serve` killed with SIGKILL while annotators submit, then restarted.

Every acknowledged rating must be in the database and each annotator must resume at the first item they had not
rated. Runs the real CLI in a subprocess (two server starts: the slowest test of the annotation suite).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
httpx = pytest.importorskip("httpx")
pytest.importorskip("gradio")

from annotation.app import SCREEN_FIELDS  # noqa: E402
from annotation.example import free_port, make_campaign, serve_in_subprocess, stop_process  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOKEN = SCREEN_FIELDS.index("token")
PROGRESS = SCREEN_FIELDS.index("progress")
ANNOTATORS = ("ann1", "ann2", "ann3")


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, f"server exited: {log.read_text()[-2000:]}"
        try:
            if httpx.get(url + "health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(log.read_text()[-2000:])


def _session(url: str, user: str, password: str) -> tuple[httpx.Client, str]:
    h = httpx.Client(base_url=url, timeout=30)
    assert h.post("/login", data={"username": user, "password": password}).status_code == 200
    return h, f"crash-{user}-{random.randrange(10**9)}"


def _call(h: httpx.Client, session: str, api: str, data: list) -> list:
    r = h.post(f"/gradio_api/run/{api}", json={"data": data, "session_hash": session})
    r.raise_for_status()
    return r.json()["data"]


def test_sigkill_mid_campaign_loses_no_acknowledged_rating_and_resumes(tmp_path):
    ex = make_campaign(tmp_path, n_images=40, annotators=ANNOTATORS, raters_per_item=2, image_size=(96, 72))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "server.log"
    proc = serve_in_subprocess(ex.path, port, log, append=True)
    acked: dict[str, dict[str, str]] = {a: {} for a in ANNOTATORS}
    in_flight: dict[str, str | None] = {a: None for a in ANNOTATORS}
    stop = threading.Event()
    try:
        _wait(url, proc, log)
        sessions = {a: _session(url, a, ex.passwords[a]) for a in ANNOTATORS}

        def work(a: str) -> None:
            h, sid = sessions[a]
            rng = random.Random(a)
            token = _call(h, sid, "current", [])[TOKEN]
            while token and not stop.is_set():
                rating = str(rng.randint(1, 4))
                in_flight[a] = token
                try:
                    out = _call(h, sid, "submit", [token, rating, "", ""])
                except (httpx.HTTPError, ValueError):
                    return  # the server died under this request: not acknowledged
                acked[a][token] = rating
                in_flight[a] = None
                token = out[TOKEN]

        threads = [threading.Thread(target=work, args=(a,)) for a in ANNOTATORS]
        for t in threads:
            t.start()
        deadline = time.time() + 60
        while sum(len(v) for v in acked.values()) < 45 and time.time() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # mid-flight: the workers are still submitting
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(30)
        n_acked = sum(len(v) for v in acked.values())
        assert n_acked >= 45

        proc = serve_in_subprocess(ex.path, port, log, append=True)
        _wait(url, proc, log)
        from annotation.service import open_campaign

        svc = open_campaign(ex.path, materialise=False).service
        try:
            stored = {(r["annotator"], r["public_id"]): str(r["ratings"]["rating"]) for r in svc.store.all_ratings()}
            for a in ANNOTATORS:
                for token, rating in acked[a].items():
                    assert stored.get((a, token)) == rating, f"acknowledged rating lost: {a} {token}"
                extra = {t for (who, t) in stored if who == a} - set(acked[a])
                assert extra <= {in_flight[a]}, "a rating nobody submitted appeared"
                # resume: the server shows the first item of the queue without a rating
                h, sid = _session(url, a, ex.passwords[a])
                out = _call(h, sid, "current", [])
                queue = [e.public_id for e in svc.store._queue(a)]
                done = {t for (who, t) in stored if who == a}
                expected = next(t for t in queue if t not in done)
                assert out[TOKEN] == expected
                assert out[PROGRESS].startswith(f"Item {queue.index(expected) + 1} of {len(queue)} · {len(done)} done")
                nxt = _call(h, sid, "submit", [expected, "2", "", ""])  # and rating continues normally
                assert nxt[TOKEN] != expected and "Saved." in nxt[SCREEN_FIELDS.index("status")]
        finally:
            svc.close()
    finally:
        stop.set()
        stop_process(proc)
