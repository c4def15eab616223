"""METEOR: equality with pycocoevalcap's Meteor on real captions, hostile input that hangs pycocoevalcap, no-Java path."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from capeval.errors import CapevalError, MetricUnavailable
from capeval.metrics.meteor import Meteor, sanitize
from capeval.text.tokenize import tokenize_many

java = pytest.mark.java
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="needs a Java runtime (java on PATH)")

HOSTILE = [
    ("a dog\nrunning on the grass", ["a dog runs on grass", "the dog is\r\non the lawn"]),
    ("a cat ||| sitting", ["a cat sits ||| on a mat", "cat on a mat"]),
    ("   ", ["a man riding a horse", "a person on a horse"]),
    ("", ["a red bus", "a bus on the street"]),
    ("a pizza \U0001F355 with cheese", ["a cheese pizza \U0001F600", "pizza\u2028on a plate"]),
    ("two birds\x0bon a wire\x0c", ["birds\x85on a wire", "two birds\u2029perched"]),
    ("a train", ["", "a train at the station"]),
]


def _karpathy(root: Path, n: int) -> tuple[list[str], list[list[str]]]:
    refs = json.loads((root / "coco-karpathy-test" / "coco_test.json").read_text())[:n]
    system = json.loads((root / "coco-system-outputs" / "m2_transformer.json").read_text())
    ids = [str(int(e["image"].rsplit("_", 1)[1].split(".")[0])) for e in refs]
    return [system[i] for i in ids], [list(e["caption"]) for e in refs]


def _pycoco_on_tokens(pycoco, cands: list[str], refs: list[list[str]]) -> tuple[float, list[float]]:
    """pycocoevalcap's Meteor fed exactly as COCOEvalCap feeds it: PTB-tokenized, space-joined strings by image id."""
    toks = [" ".join(t) for t in tokenize_many([*cands, *(r for rs in refs for r in rs)])]
    res, gts, pos = {}, {}, len(cands)
    for i, rs in enumerate(refs):
        res[i] = [sanitize(toks[i])]
        gts[i] = [sanitize(t) for t in toks[pos: pos + len(rs)]]
        pos += len(rs)
    return pycoco.compute_score(gts, res)


@pytest.fixture(scope="module")
def meteor():
    m = Meteor(jobs=1)
    yield m
    m.close()


@pytest.fixture(scope="module")
def pycoco_meteor():
    from pycocoevalcap.meteor.meteor import Meteor as PycocoMeteor

    m = PycocoMeteor()
    yield m
    m.lock.acquire(timeout=5)  # its own __del__ would take the lock again; stop the JVM here
    m.meteor_p.kill()
    m.meteor_p.wait()
    m.lock.release()


@java
@needs_java
@pytest.mark.slow
def test_meteor_equals_pycocoevalcap_on_300_karpathy_images(shared_datasets, meteor, pycoco_meteor) -> None:
    cands, refs = _karpathy(shared_datasets, 300)
    (res,) = meteor.score(cands, refs)
    corpus, per_item = _pycoco_on_tokens(pycoco_meteor, cands, refs)
    assert res.corpus == corpus
    assert np.array_equal(res.per_item, np.array(per_item))
    assert 0.2 < res.corpus < 0.4
    assert res.signature.format().startswith("meteor|v:1.5|jar:pycocoevalcap|lang:en|norm:yes|tok:ptb-py|nrefs:5-6|java:")


@java
@needs_java
def test_meteor_hostile_captions_finish_and_equal_pycocoevalcap_on_sanitised_input(meteor, pycoco_meteor) -> None:
    cands = [c for c, _ in HOSTILE]
    refs = [r for _, r in HOSTILE]
    t0 = time.monotonic()
    (res,) = meteor.score(cands, refs)
    assert time.monotonic() - t0 < 60
    corpus, per_item = _pycoco_on_tokens(pycoco_meteor, cands, refs)
    assert res.corpus == corpus
    assert np.array_equal(res.per_item, np.array(per_item))
    assert res.per_item[2] == 0.0 and res.per_item[3] == 0.0  # whitespace-only and empty candidates score 0
    assert res.per_item[0] > 0.3


@java
@needs_java
def test_meteor_references_with_triple_bar_are_not_split(meteor) -> None:
    (line,) = meteor.score_lines(["a cat |||"], [["a cat ||| on a mat", "x"]])
    assert line.count(" ||| ") == 3  # SCORE, two references, hypothesis: PTB splits `|||` into `| | |`
    (raw,) = Meteor(tokenize=False).score_lines(["a cat |||"], [["a cat ||| on a mat", "x"]])
    assert raw == "SCORE ||| a cat on a mat ||| x ||| a cat"


@java
@needs_java
def test_meteor_one_caption_and_reuse_of_the_same_jvm(meteor) -> None:
    (a,) = meteor.score(["a man riding a horse"], [["a man rides a horse", "a person on a horse"]])
    pid = meteor._proc.pid
    (b,) = meteor.score(["a man riding a horse"], [["a man rides a horse", "a person on a horse"]])
    assert meteor._proc.pid == pid
    assert a.corpus == b.corpus == a.per_item[0] > 0.5


@java
@needs_java
def test_meteor_dead_jvm_raises_with_its_stderr(meteor) -> None:
    meteor.score(["a red bus"], [["a red bus"]])  # make sure the JVM is up
    with pytest.raises(CapevalError, match=r"(?s)exited unexpectedly.*Exception in thread \"main\""):
        meteor._proc.request(["EVAL ||| not numbers"], 1, timeout=60)  # malformed EVAL makes the JVM exit
    assert not meteor._proc.running  # restarting on the next request is tested with `cat` in test_metrics_meteor_java_process


@pytest.mark.skipif(shutil.which("cat") is None, reason="needs POSIX cat")
def test_meteor_jobs_split_score_lines_over_processes_and_keep_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SCORE phase over k processes (`cat` stands in for the JVMs: it echoes each line back)."""
    from capeval.metrics.java import JavaProcess

    started: list[JavaProcess] = []

    def fake_process(self: Meteor) -> JavaProcess:
        started.append(JavaProcess([], name="CAT", java="cat"))
        return started[-1]

    monkeypatch.setattr(Meteor, "_new_process", fake_process)
    monkeypatch.setattr(Meteor, "unavailable_reason", lambda self: None)
    m = Meteor(jobs=3, min_items_per_job=10)
    lines = [f"SCORE ||| ref {i} ||| hyp {i}" for i in range(100)]
    assert m._score_stats(lines, budget=30) == lines
    assert len(started) == 3 and all(p.running for p in started)
    assert m._score_stats(lines[:15], budget=30) == lines[:15]  # 15 lines < 2 x 10: one process only
    m.close()
    assert not any(p.running for p in started)


def test_meteor_without_java_is_unavailable_with_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    m = Meteor()
    reason = m.unavailable_reason()
    assert reason == ("METEOR needs a Java runtime (java not found on PATH); install OpenJDK 11+ "
                      "e.g. `apt-get install default-jre`")
    with pytest.raises(MetricUnavailable, match="java not found"):
        m.score(["a cat"], [["a cat"]])


def test_meteor_rejects_mismatched_inputs() -> None:
    with pytest.raises(CapevalError, match="METEOR: expected one reference list per candidate; got 2 candidates and 1 reference lists"):
        Meteor().score(["a", "b"], [["a"]])
    with pytest.raises(CapevalError, match="METEOR: candidate 1 has no reference list"):
        Meteor().score(["a", "b"], [["a"], []])


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("a\nb", "a b"), ("a\r\nb", "a b"), ("a ||| b", "a b"), ("a|||b", "ab"), ("x\u2028y\u2029z\x85w", "x y z w"),
     ("\x1c\x1d\x1e", ""), ("  lots   of  space ", "lots of space")],
)
def test_sanitize_removes_protocol_breakers(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean
