"""METEOR 1.5 through pycocoevalcap's meteor-1.5.jar: one long-lived JVM, PTB-tokenized input, batched round trips.

Numbers equal pycocoevalcap's `Meteor().compute_score` on the same tokenized captions (same jar, same command, same
SCORE/EVAL lines). Unlike pycocoevalcap, inputs are sanitised (line breaks, `|||` in hypotheses *and* references),
every read has a deadline, stderr is drained, and a dead JVM becomes a clear error instead of a hang.
"""

from __future__ import annotations

import importlib.util
import os
import re
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from capeval import __version__
from capeval.errors import CapevalError, MetricUnavailable
from capeval.metrics.base import Metric, MetricResult, Signature, check_inputs
from capeval.metrics.java import JAVA_MISSING, JavaProcess, find_java, java_version

METEOR_JAR = "meteor-1.5.jar"

# Characters Java (BufferedReader / Scanner) treats as line terminators or that break the line protocol.
_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def pycocoevalcap_dir() -> Path | None:
    """The installed pycocoevalcap package folder (read-only use), or None."""
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_meteor_jar() -> Path | None:
    """pycocoevalcap's meteor-1.5.jar (with its data/ paraphrase table beside it), or None."""
    root = pycocoevalcap_dir()
    if root is None:
        return None
    jar = root / "meteor" / METEOR_JAR
    return jar if jar.is_file() else None


def sanitize(text: str) -> str:
    """Make one protocol field safe: line breaks -> space, `|||` removed, whitespace collapsed."""
    return " ".join(_BREAKS.sub(" ", text).replace("|||", "").split())


def _tokenizer_name() -> str:
    from capeval.text.tokenize import TOKENIZER_SIGNATURE

    return TOKENIZER_SIGNATURE


def _parse_floats(line: str, what: str) -> list[float]:
    try:
        return [float(x) for x in line.split()]
    except ValueError:
        raise CapevalError(f"METEOR: unexpected reply to {what}: {line[:200]!r}") from None


class Meteor(Metric):
    """METEOR 1.5 (`-l en -norm`) as in pycocoevalcap/COCOEvalCap, with PTB tokenization done here.

    One JVM per instance, started on first `score()`; `close()` (or the context manager) stops it. With `jobs=k > 1`
    large batches spread their SCORE lines over k JVMs (default: half the CPU cores, at most 4; each holds the 60 MB
    paraphrase table); the EVAL line with all statistics still goes to one JVM, so the numbers are unchanged.
    """

    name = "meteor"
    outputs = ("meteor",)

    def __init__(
        self,
        *,
        java: str | None = None,
        timeout: float = 60.0,
        timeout_per_item: float = 0.05,
        startup_timeout: float = 120.0,
        tokenize: bool = True,
        max_memory: str = "2G",
        jobs: int | None = None,
        min_items_per_job: int = 500,
    ) -> None:
        self.java = java
        self.timeout = float(timeout)
        self.timeout_per_item = float(timeout_per_item)
        self.startup_timeout = float(startup_timeout)
        self.tokenize = tokenize
        self.max_memory = max_memory
        self._jar = find_meteor_jar()
        self.jobs = max(1, int(jobs)) if jobs is not None else max(1, min(4, (os.cpu_count() or 1) // 2))
        self.min_items_per_job = int(min_items_per_job)
        self._proc: JavaProcess | None = None
        self._helpers: list[JavaProcess] = []
        self._java_version: str | None = None

    def unavailable_reason(self) -> str | None:
        if find_java(self.java) is None:
            return f"METEOR {JAVA_MISSING}"
        if self._jar is None:
            return ("METEOR needs pycocoevalcap's meteor-1.5.jar, which was not found; "
                    "install it with `pip install pycocoevalcap`")
        return None

    def _new_process(self) -> JavaProcess:
        assert self._jar is not None
        args = ["-Dfile.encoding=UTF-8", "-jar", f"-Xmx{self.max_memory}", self._jar.name,
                "-", "-", "-stdio", "-l", "en", "-norm"]
        return JavaProcess(args, name="METEOR", cwd=self._jar.parent, java=self.java,
                           startup_timeout=self.startup_timeout)

    def _process(self) -> JavaProcess:
        reason = self.unavailable_reason()
        if reason:
            raise MetricUnavailable(reason)
        if self._proc is None:
            self._proc = self._new_process()
        return self._proc

    def _score_stats(self, lines: list[str], budget: float) -> list[str]:
        """SCORE replies for `lines`, split over up to `jobs` JVMs in contiguous chunks (order kept)."""
        k = min(self.jobs, max(1, len(lines) // max(1, self.min_items_per_job)))
        if k == 1:
            return self._process().request(lines, len(lines), timeout=budget)
        while len(self._helpers) < k - 1:
            self._helpers.append(self._new_process())
        procs = [self._process(), *self._helpers[: k - 1]]
        bounds = [round(i * len(lines) / k) for i in range(k + 1)]
        chunks = [lines[a:b] for a, b in zip(bounds, bounds[1:])]
        with ThreadPoolExecutor(max_workers=k, thread_name_prefix="meteor-job") as pool:
            futures = [pool.submit(p.request, c, len(c), timeout=budget) for p, c in zip(procs, chunks)]
            parts = [f.result() for f in futures]  # re-raises the first CapevalError
        return [s for part in parts for s in part]

    def _prepare(self, candidates: Sequence[str], references: Sequence[Sequence[str]]
                 ) -> tuple[list[str], list[list[str]]]:
        if self.tokenize:
            from capeval.text.tokenize import tokenize_many

            flat = [*candidates, *(r for refs in references for r in refs)]
            toks = [" ".join(t) for t in tokenize_many(flat)]
            cands, rest = toks[: len(candidates)], toks[len(candidates):]
            refs: list[list[str]] = []
            pos = 0
            for rs in references:
                refs.append(rest[pos: pos + len(rs)])
                pos += len(rs)
        else:
            cands, refs = list(candidates), [list(r) for r in references]
        return [sanitize(c) for c in cands], [[sanitize(r) for r in rs] for rs in refs]

    def score_lines(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[str]:
        """The `SCORE ||| ref1 ||| ... ||| hyp` protocol lines, one per candidate (after tokenizing and sanitising)."""
        cands, refs = self._prepare(candidates, references)
        return [" ||| ".join(("SCORE", " ||| ".join(rs), c)) for c, rs in zip(cands, refs)]

    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[MetricResult]:
        check_inputs(candidates, references, "METEOR")
        proc = self._process()
        n = len(candidates)
        if n == 0:
            return [MetricResult("meteor", float("nan"), np.zeros(0), self._signature(references))]
        lines = self.score_lines(candidates, references)
        budget = self.timeout + self.timeout_per_item * n
        try:
            stats = self._score_stats(lines, budget)
            for s in stats:
                _parse_floats(s, "SCORE")
            replies = proc.request(["EVAL ||| " + " ||| ".join(stats)], n + 1, timeout=budget)
            values = [_parse_floats(r, "EVAL") for r in replies]
            bad = [r for r, v in zip(replies, values) if len(v) != 1]
            if bad:
                raise CapevalError(f"METEOR: unexpected reply to EVAL: {bad[0][:200]!r}")
        except CapevalError:
            self.close()  # the protocol state is unknown: the next call starts a fresh JVM
            raise
        per_item = np.array([v[0] for v in values[:n]], dtype=float)
        corpus = values[n][0]
        return [MetricResult("meteor", corpus, per_item, self._signature(references),
                             details={"aggregate": "METEOR corpus score from summed statistics (as pycocoevalcap)"})]

    def _signature(self, references: Sequence[Sequence[str]]) -> Signature:
        if self._java_version is None:
            java = find_java(self.java)
            self._java_version = java_version(java) if java else ""
        counts = {len(r) for r in references}
        nrefs = str(min(counts)) if len(counts) == 1 else f"{min(counts)}-{max(counts)}"
        return Signature.make(
            "meteor", v="1.5", jar="pycocoevalcap", lang="en", norm="yes",
            tok=_tokenizer_name() if self.tokenize else "none", nrefs=nrefs, java=self._java_version or "unknown",
            capeval=__version__,
        )

    def close(self) -> None:
        for p in [self._proc, *self._helpers]:
            if p is not None:
                p.close()
        self._proc = None
        self._helpers = []

    def __del__(self) -> None:
        for p in [getattr(self, "_proc", None), *getattr(self, "_helpers", [])]:
            if p is not None:
                p.close()
