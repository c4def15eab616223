"""The long-lived line-protocol process helper behind METEOR, exercised with `cat` standing in for the JVM."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from capeval.errors import CapevalError, MetricUnavailable
from capeval.metrics.java import JavaProcess

pytestmark = pytest.mark.skipif(shutil.which("cat") is None or os.name == "nt", reason="needs POSIX cat")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a reaped zombie cannot exist here: JavaProcess waits for it
    return True


def test_large_batch_does_not_deadlock_the_pipes() -> None:
    p = JavaProcess([], name="CAT", java="cat")
    lines = [f"SCORE ||| line {i} " + "word " * 40 for i in range(20000)]  # ~4 MB, far beyond a pipe buffer
    t0 = time.monotonic()
    out = p.request(lines, len(lines), timeout=60)
    assert out == [ln.strip() for ln in lines]
    assert time.monotonic() - t0 < 30
    p.close()


def test_missing_reply_times_out_and_kills_the_process() -> None:
    p = JavaProcess([], name="CAT", java="cat")
    p.request(["warm"], 1, timeout=10)
    pid = p.pid
    t0 = time.monotonic()
    with pytest.raises(CapevalError, match=r"CAT: no reply within 1 s \(1/2 lines read\)"):
        p.request(["only one"], 2, timeout=1)
    assert time.monotonic() - t0 < 5
    assert not p.running and not _alive(pid)
    assert p.request(["again"], 1, timeout=10) == ["again"]  # a fresh process on the next request
    p.close()


def test_process_that_exits_reports_exit_code_and_stderr() -> None:
    p = JavaProcess(["-c", "echo boom-on-stderr >&2; exit 3"], name="SH", java="sh")
    with pytest.raises(CapevalError, match=r"(?s)SH: the Java process exited unexpectedly.*exit code 3.*boom-on-stderr"):
        p.request(["x"], 1, timeout=10)


def test_close_stops_the_process_and_is_idempotent() -> None:
    p = JavaProcess([], name="CAT", java="cat")
    p.request(["x"], 1, timeout=10)
    pid = p.pid
    p.close()
    p.close()
    assert not _alive(pid)


def test_garbage_collected_owner_stops_its_process() -> None:
    p = JavaProcess([], name="CAT", java="cat")
    p.request(["x"], 1, timeout=10)
    pid = p.pid
    del p
    import gc

    gc.collect()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_line_breaks_inside_a_protocol_line_are_refused() -> None:
    p = JavaProcess([], name="CAT", java="cat")
    with pytest.raises(ValueError, match="line break"):
        p.request(["a\nb"], 1, timeout=5)
    assert p.pid is None  # never started


def test_missing_executable_is_unavailable() -> None:
    p = JavaProcess([], name="METEOR", java="/nonexistent/java")
    with pytest.raises(MetricUnavailable, match="java not found on PATH"):
        p.request(["x"], 1, timeout=5)
