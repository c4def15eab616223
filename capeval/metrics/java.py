"""A long-lived Java process talking a line protocol on stdin/stdout, with timeouts, drained stderr and clean shutdown.

Used by METEOR (one JVM per metric instance, started lazily). Every read has a deadline, a writer thread feeds stdin
so large batches cannot deadlock the pipes, and a dead or stuck JVM becomes a `MetricUnavailable` (a CapevalError)
carrying its stderr tail.
"""

from __future__ import annotations

import collections
import os
import queue
import shutil
import subprocess
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

from capeval.errors import MetricUnavailable

JAVA_MISSING = (
    "needs a Java runtime (java not found on PATH); install OpenJDK 11+ e.g. `apt-get install default-jre`"
)

_EOF = object()


def find_java(java: str | None = None) -> str | None:
    """Path of the `java` executable: the given one, else `$JAVA_HOME/bin/java`, else `java` on PATH; None if absent."""
    if java:
        return shutil.which(java) or (java if Path(java).is_file() and os.access(java, os.X_OK) else None)
    home = os.environ.get("JAVA_HOME")
    if home:
        cand = Path(home) / "bin" / ("java.exe" if os.name == "nt" else "java")
        if cand.is_file():
            return str(cand)
    return shutil.which("java")


def java_version(java: str, timeout: float = 30.0) -> str:
    """The runtime's version string (e.g. '17.0.15'), or '' when it cannot be determined."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return ""
    for line in (out.stderr + out.stdout).splitlines():
        if "version" in line and '"' in line:
            return line.split('"')[1]
    return ""


def _terminate(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Close stdin so the JVM exits by itself; kill it if it does not within `grace` seconds."""
    if proc.poll() is not None:
        return
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass


class JavaProcess:
    """One lazily started subprocess answering lines with lines. Thread-safe; `request` never blocks past its deadline.

    `name` prefixes error messages (e.g. "METEOR"). The process is stopped by `close()`, by garbage collection and at
    interpreter exit (a `weakref.finalize`), so no JVM outlives its owner.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        name: str,
        cwd: str | os.PathLike[str] | None = None,
        java: str | None = None,
        env: dict[str, str] | None = None,
        stderr_lines: int = 200,
        startup_timeout: float = 120.0,
    ) -> None:
        self.args = list(args)
        self.name = name
        self.cwd = str(cwd) if cwd is not None else None
        self.java = java
        self.env = env
        self.startup_timeout = float(startup_timeout)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[object] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._finalizer: weakref.finalize | None = None
        self._write_error: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stderr_tail(self, n: int = 20) -> str:
        """The last `n` lines the process wrote to stderr."""
        return "\n".join(list(self._stderr)[-n:])

    def _start(self) -> subprocess.Popen[bytes]:
        java = find_java(self.java)
        if java is None:
            raise MetricUnavailable(f"{self.name} {JAVA_MISSING}")
        self._lines = queue.Queue()
        self._stderr.clear()
        try:
            proc = subprocess.Popen(
                [java, *self.args],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise MetricUnavailable(f"{self.name}: could not start Java ({java}): {exc}") from exc
        threading.Thread(target=self._pump_stdout, args=(proc, self._lines), daemon=True,
                         name=f"{self.name}-stdout").start()
        threading.Thread(target=self._pump_stderr, args=(proc, self._stderr), daemon=True,
                         name=f"{self.name}-stderr").start()
        self._finalizer = weakref.finalize(self, _terminate, proc)
        self._proc = proc
        return proc

    @staticmethod
    def _pump_stdout(proc: subprocess.Popen[bytes], lines: queue.Queue[object]) -> None:
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                lines.put(raw)
        except (OSError, ValueError):
            pass
        finally:
            lines.put(_EOF)

    @staticmethod
    def _pump_stderr(proc: subprocess.Popen[bytes], tail: collections.deque[str]) -> None:
        assert proc.stderr is not None
        try:
            for raw in proc.stderr:
                tail.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
        except (OSError, ValueError):
            pass

    def _writer(self, proc: subprocess.Popen[bytes], payload: bytes) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(payload)
            proc.stdin.flush()
        except (OSError, ValueError) as exc:  # BrokenPipe: the JVM died; the reader reports it with stderr
            self._write_error = exc

    def _fail(self, why: str) -> MetricUnavailable:
        """Stop the process (its protocol state is unknown now) and build an error carrying its stderr tail.

        It is a MetricUnavailable (a CapevalError), so a batch run reports this metric and keeps the others."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.05)  # let the stderr pump catch the last lines
        tail = self.stderr_tail()
        code = proc.returncode if proc is not None else None
        self._proc = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        msg = f"{self.name}: {why}"
        if code is not None:
            msg += f" (exit code {code})"
        if tail:
            msg += f"; Java stderr (last lines):\n{tail}"
        return MetricUnavailable(msg)

    # -- protocol ------------------------------------------------------------------------------------------------
    def request(self, lines: Sequence[str], n_replies: int, *, timeout: float) -> list[str]:
        """Write `lines` (no newlines inside) and read `n_replies` reply lines, all within `timeout` seconds.

        Starts the process on first use (then `startup_timeout` is added to the deadline). On timeout, EOF or a broken
        pipe the process is killed (the next request starts a fresh one) and `MetricUnavailable` (a CapevalError)
        with the stderr tail is raised.
        """
        for ln in lines:
            if "\n" in ln or "\r" in ln:
                raise ValueError(f"{self.name}: protocol line contains a line break: {ln[:80]!r}")
        payload = "".join(ln + "\n" for ln in lines).encode("utf-8")
        with self._lock:
            fresh = not self.running
            proc = self._start() if fresh else self._proc
            assert proc is not None
            if fresh:
                timeout += self.startup_timeout
            self._write_error = None
            writer = threading.Thread(target=self._writer, args=(proc, payload), daemon=True,
                                      name=f"{self.name}-stdin")
            writer.start()
            deadline = time.monotonic() + timeout
            replies: list[str] = []
            while len(replies) < n_replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._fail(f"no reply within {timeout:.0f} s ({len(replies)}/{n_replies} lines read)")
                try:
                    item = self._lines.get(timeout=remaining)
                except queue.Empty:
                    continue
                if item is _EOF:
                    raise self._fail(f"the Java process exited unexpectedly ({len(replies)}/{n_replies} lines read)")
                assert isinstance(item, bytes)
                replies.append(item.decode("utf-8", "replace").strip())
            writer.join(timeout=max(0.0, deadline - time.monotonic()))
            return replies

    def close(self) -> None:
        """Stop the process (close stdin, then kill after a grace period). Safe to call twice."""
        got = self._lock.acquire(timeout=30)
        try:
            if self._finalizer is not None:
                self._finalizer()
                self._finalizer = None
            self._proc = None
        finally:
            if got:
                self._lock.release()

    def __del__(self) -> None:  # the finalizer also runs at interpreter exit
        fin = getattr(self, "_finalizer", None)
        if fin is not None:
            fin()
