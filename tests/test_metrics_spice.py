"""SPICE: clear unavailability without the CoreNLP jars, the java command line, and the output parser (fed a JSON
file written by the test, in SPICE's output layout: a parser test, not a SPICE run; the jars are not available here)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from capeval.errors import CapevalError, MetricUnavailable
from capeval.metrics.spice import CORENLP_JARS, JAVA17_OPENS, Spice, java_major, parse_spice_output

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="needs a Java runtime (java on PATH)")


def _scores(f: float | None) -> dict:
    cell = {"pr": 0.5, "re": 0.25, "f": f, "fn": 1, "numImages": 1, "fp": 2, "tp": 1}
    return {"All": cell, "Object": dict(cell, f=0.4), "Relation": dict(cell, f=None)}


@pytest.fixture()
def no_jars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    empty = tmp_path / "empty-lib"
    empty.mkdir()
    monkeypatch.setenv("CAPEVAL_SPICE_LIB", str(empty))
    monkeypatch.setenv("CAPEVAL_HOME", str(tmp_path / "home"))
    if Spice().corenlp_jars() is not None:
        pytest.skip("the CoreNLP 3.6.0 jars are installed inside pycocoevalcap here")
    return empty


@pytest.fixture()
def fake_jars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty files named like the CoreNLP jars: enough for the command line, not for a real run."""
    lib = tmp_path / "corenlp"
    lib.mkdir()
    for name in CORENLP_JARS:
        (lib / name).write_bytes(b"")
    monkeypatch.setenv("CAPEVAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CAPEVAL_SPICE_LIB", raising=False)
    return lib


@needs_java
def test_spice_without_corenlp_jars_says_what_where_and_how(no_jars: Path) -> None:
    reason = Spice().unavailable_reason()
    assert reason is not None
    for needle in (*CORENLP_JARS, str(no_jars), "edu.stanford.nlp:stanford-corenlp:3.6.0", "'models' classifier",
                   "https://repo1.maven.org/maven2/edu/stanford/nlp/stanford-corenlp/3.6.0/", "CAPEVAL_SPICE_LIB",
                   "never downloads"):
        assert needle in reason
    with pytest.raises(MetricUnavailable, match="Stanford CoreNLP 3.6.0"):
        Spice().score(["a dog"], [["a dog runs"]])


def test_spice_without_java_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert Spice().unavailable_reason().startswith("SPICE needs a Java runtime (java not found on PATH)")


@needs_java
def test_spice_command_line_uses_lib_dir_opens_modules_and_writes_outside_site_packages(fake_jars: Path,
                                                                                          tmp_path: Path) -> None:
    m = Spice(spice_lib=fake_jars, threads=2)
    assert m.corenlp_jars() == [fake_jars / n for n in CORENLP_JARS]
    cmd = m.command(tmp_path / "in.json", tmp_path / "out.json", tmp_path / "cache")
    cp = cmd[cmd.index("-cp") + 1].split(":")
    assert cp[0].endswith("pycocoevalcap/spice/spice-1.0.jar")
    assert str(fake_jars / CORENLP_JARS[0]) in cp and str(fake_jars / CORENLP_JARS[1]) in cp
    assert any(p.endswith("lmdbjni-linux64-0.4.6.jar") for p in cp)  # pycocoevalcap's own SPICE dependencies
    assert cmd[cmd.index("-cp") + 2:] == ["edu.anu.spice.SpiceScorer", str(tmp_path / "in.json"),
                                          "-out", str(tmp_path / "out.json"), "-subset", "-silent",
                                          "-cache", str(tmp_path / "cache"), "-threads", "2"]
    assert "-Xmx8G" in cmd
    assert [c for c in cmd if c.startswith("--add-opens")] == [f"--add-opens=java.base/{p}=ALL-UNNAMED"
                                                               for p in JAVA17_OPENS]


@needs_java
def test_spice_on_java15_plus_needs_nashorn_and_a_failed_run_reports_java_stderr(fake_jars: Path) -> None:
    m = Spice(spice_lib=fake_jars)
    _, major = m._java()
    if major is not None and major >= 15:
        assert "needs the standalone Nashorn JavaScript engine" in m.unavailable_reason()
        (fake_jars / "nashorn-core-15.4.jar").write_bytes(b"")
    assert m.unavailable_reason() is None
    # the CoreNLP "jars" are empty files, so the real spice-1.0.jar fails to load its classes: a clear error, no hang
    with pytest.raises(CapevalError, match=r"(?s)SPICE failed \(exit code 1\).*Java stderr.*(NoClassDefFound|Error)"):
        m.score(["a dog runs"], [["a dog is running", "a running dog"]])
    assert not list((Path(m.spice_jar()).parent).glob("tmp*")) and not (Path(m.spice_jar()).parent / "cache").exists()


def test_spice_output_parser_matches_by_image_id_not_position() -> None:
    output = [
        {"image_id": "2", "scores": _scores(0.2)},
        {"image_id": 0, "scores": _scores(0.5)},
        {"image_id": "1", "scores": _scores(None)},
    ]
    f, details = parse_spice_output(output, ["0", "1", "2"])
    assert f[0] == 0.5 and math.isnan(f[1]) and f[2] == 0.2
    assert details[0]["Object"]["f"] == 0.4 and math.isnan(details[0]["Relation"]["f"])


def test_spice_output_parser_reads_a_file_in_spice_layout(tmp_path: Path) -> None:
    path = tmp_path / "spice_out.json"
    path.write_text(json.dumps([{"image_id": str(i), "scores": _scores(i / 10)} for i in (3, 1, 2, 0)], indent=2))
    f, _ = parse_spice_output(json.loads(path.read_text()), ["0", "1", "2", "3"])
    assert np.allclose(f, [0.0, 0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"image_id": "0"}, "not a JSON list"),
        ([{"image_id": "0"}], r"output item \[0\] has no image_id/scores"),
        ([{"image_id": "0", "scores": _scores(0.1)}], "lacks 1 image ids"),
        ([{"image_id": "0", "scores": _scores(0.1)}, {"image_id": "0", "scores": _scores(0.1)}], "twice"),
        ([{"image_id": i, "scores": _scores(0.1)} for i in ("0", "1", "9")], "unexpected image ids"),
    ],
)
def test_spice_output_parser_rejects_broken_output(output: object, message: str) -> None:
    with pytest.raises(CapevalError, match=message):
        parse_spice_output(output, ["0", "1"])


@pytest.mark.parametrize(("version", "major"), [("1.8.0_312", 8), ("11.0.2", 11), ("17.0.15", 17), ("21", 21),
                                                ("", None)])
def test_java_major_version(version: str, major: int | None) -> None:
    assert java_major(version) == major
