"""SPICE through pycocoevalcap's spice-1.0.jar, run from where it is installed but writing nothing there.

Needs Java and the Stanford CoreNLP 3.6.0 jars (not shipped by pycocoevalcap and never downloaded here): searched in
pycocoevalcap's `spice/lib`, then `$CAPEVAL_SPICE_LIB` (or the `spice_lib` option), then `$CAPEVAL_HOME/spice-lib`.
Temporary files go to a temp dir, the parse cache to `$CAPEVAL_HOME/spice-cache`; results are matched by image id.

Java versions: SPICE's parse cache serialises with FST 2.47, which on Java 16+ dies with InaccessibleObjectException
unless six `java.base` packages are opened (`JAVA17_OPENS`, found by running its LmdbTupleDB on Java 17 and 25).
SPICE also pretty-prints its JSON with the Nashorn JavaScript engine, removed from the JDK in Java 15: there it
needs the standalone `nashorn-core` jar (and its asm jars) in the lib folder, or Java 8/11.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from capeval import __version__
from capeval.errors import CapevalError, MetricUnavailable
from capeval.metrics.base import Metric, MetricResult, Signature, check_inputs
from capeval.metrics.java import JAVA_MISSING, find_java, java_version
from capeval.metrics.meteor import _tokenizer_name, pycocoevalcap_dir

ENV_LIB = "CAPEVAL_SPICE_LIB"
CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
MAVEN = "https://repo1.maven.org/maven2/edu/stanford/nlp/stanford-corenlp/3.6.0/"
#: packages FST 2.47 (SPICE's cache serialiser) reflects into; each one is needed on Java 16+ (checked one by one)
JAVA17_OPENS = ("java.lang", "java.util", "java.math", "java.net", "java.text", "java.util.concurrent")
MAIN_CLASS = "edu.anu.spice.SpiceScorer"
SUBSETS = ("All", "Object", "Attribute", "Relation", "Cardinality", "Color", "Size")


def java_major(version: str) -> int | None:
    """'1.8.0_312' -> 8, '17.0.15' -> 17, '21' -> 21; None when unknown."""
    m = re.match(r"(\d+)(?:\.(\d+))?", version or "")
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def _capeval_home() -> Path:
    env = os.environ.get("CAPEVAL_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "capeval"


def _float(x: object) -> float:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def parse_spice_output(results: object, image_ids: Sequence[str]) -> tuple[np.ndarray, list[dict[str, dict[str, float]]]]:
    """SPICE's `-out` JSON -> (F per image in `image_ids` order, per-image subset scores), matched by image id.

    Raises CapevalError when the output is not a list of {image_id, scores}, misses an id or has unknown/duplicate ids.
    """
    if not isinstance(results, list):
        raise CapevalError(f"SPICE: output is not a JSON list (got {type(results).__name__})")
    by_id: dict[str, dict[str, dict[str, float]]] = {}
    for k, item in enumerate(results):
        if not isinstance(item, dict) or "image_id" not in item or not isinstance(item.get("scores"), dict):
            raise CapevalError(f"SPICE: output item [{k}] has no image_id/scores")
        key = str(item["image_id"])
        if key in by_id:
            raise CapevalError(f"SPICE: output has image_id {key!r} twice")
        by_id[key] = {cat: {m: _float(v) for m, v in vals.items()} for cat, vals in item["scores"].items()
                      if isinstance(vals, dict)}
    wanted = [str(i) for i in image_ids]
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise CapevalError(f"SPICE: output lacks {len(missing)} image ids, e.g. {missing[:3]}")
    extra = set(by_id) - set(wanted)
    if extra:
        raise CapevalError(f"SPICE: output has unexpected image ids, e.g. {sorted(extra)[:3]}")
    details = [by_id[i] for i in wanted]
    f = np.array([d.get("All", {}).get("f", math.nan) for d in details], dtype=float)
    return f, details


class Spice(Metric):
    """SPICE F-score per caption (all tuples), corpus = mean over captions as pycocoevalcap reports it."""

    name = "spice"
    outputs = ("spice",)

    def __init__(
        self,
        *,
        spice_lib: str | os.PathLike[str] | None = None,
        java: str | None = None,
        timeout: float = 600.0,
        timeout_per_item: float = 1.0,
        max_memory: str = "8G",
        threads: int | None = None,
        use_cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        tokenize: bool = True,
    ) -> None:
        self.spice_lib = spice_lib
        self.java = java
        self.timeout = float(timeout)
        self.timeout_per_item = float(timeout_per_item)
        self.max_memory = max_memory
        self.threads = threads
        self.use_cache = use_cache
        self.cache_dir = cache_dir
        self.tokenize = tokenize
        self._java_version: str | None = None

    # -- locating the pieces -------------------------------------------------------------------------------------
    def spice_jar(self) -> Path | None:
        root = pycocoevalcap_dir()
        jar = root / "spice" / "spice-1.0.jar" if root else None
        return jar if jar is not None and jar.is_file() else None

    def lib_dirs(self) -> list[Path]:
        """Where the CoreNLP jars are looked for, in order."""
        dirs: list[Path] = []
        root = pycocoevalcap_dir()
        if root is not None:
            dirs.append(root / "spice" / "lib")
        chosen = self.spice_lib if self.spice_lib is not None else os.environ.get(ENV_LIB)
        if chosen:
            dirs.append(Path(chosen).expanduser())
        dirs.append(_capeval_home() / "spice-lib")
        return dirs

    def corenlp_jars(self) -> list[Path] | None:
        found: list[Path] = []
        for name in CORENLP_JARS:
            hit = next((d / name for d in self.lib_dirs() if (d / name).is_file()), None)
            if hit is None:
                return None
            found.append(hit)
        return found

    def _java(self) -> tuple[str | None, int | None]:
        java = find_java(self.java)
        if java is None:
            return None, None
        if self._java_version is None:
            self._java_version = java_version(java)
        return java, java_major(self._java_version)

    def _extra_jars(self) -> list[Path]:
        """Every jar in the lib folders (CoreNLP, pycocoevalcap's SPICE deps, a standalone Nashorn if present)."""
        jars: list[Path] = []
        for d in self.lib_dirs():
            if d.is_dir():
                jars += sorted(p for p in d.glob("*.jar") if p.name not in {j.name for j in jars})
        return jars

    def _has_nashorn(self) -> bool:
        return any(p.name.startswith("nashorn-core") for p in self._extra_jars())

    def unavailable_reason(self) -> str | None:
        java, major = self._java()
        if java is None:
            return f"SPICE {JAVA_MISSING}"
        if self.spice_jar() is None:
            return "SPICE needs pycocoevalcap's spice-1.0.jar, which was not found; `pip install pycocoevalcap`"
        if self.corenlp_jars() is None:
            where = ", ".join(str(d) for d in self.lib_dirs())
            return (
                f"SPICE needs Stanford CoreNLP 3.6.0 ({' and '.join(CORENLP_JARS)}), not found in: {where}. "
                f"Get them from Maven Central (edu.stanford.nlp:stanford-corenlp:3.6.0 and its 'models' classifier): "
                f"{MAVEN}{CORENLP_JARS[0]} and {MAVEN}{CORENLP_JARS[1]} (about 400 MB), put both in one folder and "
                f"set {ENV_LIB}=FOLDER (or pass spice_lib=FOLDER, or use {_capeval_home() / 'spice-lib'}). "
                "capeval never downloads them itself."
            )
        if major is not None and major >= 15 and not self._has_nashorn():
            return (
                f"SPICE on Java {major} needs the standalone Nashorn JavaScript engine (removed from the JDK in Java 15; "
                "spice-1.0.jar uses it to write its JSON): put nashorn-core-15.4.jar and its asm 7.3.1 jars "
                "(org.openjdk.nashorn:nashorn-core:15.4; org.ow2.asm:asm, asm-commons, asm-tree, asm-util, asm-analysis) "
                f"from Maven Central next to the CoreNLP jars, or run with Java 8 or 11 (java={java})"
            )
        return None

    # -- running -------------------------------------------------------------------------------------------------
    def command(self, in_file: Path, out_file: Path, cache: Path | None) -> list[str]:
        """The java command line (class path + main class, so jars outside site-packages can be used)."""
        java, major = self._java()
        spice = self.spice_jar()
        if java is None or spice is None:
            raise MetricUnavailable(self.unavailable_reason() or "SPICE is unavailable")
        cmd = [java, f"-Xmx{self.max_memory}", "-Dfile.encoding=UTF-8"]
        if major is None or major >= 9:
            cmd += [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in JAVA17_OPENS]
        cmd += ["-cp", os.pathsep.join(str(p) for p in [spice, *self._extra_jars()]), MAIN_CLASS,
                str(in_file), "-out", str(out_file), "-subset", "-silent"]
        if cache is not None:
            cmd += ["-cache", str(cache)]
        if self.threads:
            cmd += ["-threads", str(int(self.threads))]
        return cmd

    def _inputs(self, candidates: Sequence[str], references: Sequence[Sequence[str]]
                ) -> tuple[list[str], list[dict[str, object]]]:
        if self.tokenize:
            from capeval.text.tokenize import tokenize_many

            flat = [*candidates, *(r for rs in references for r in rs)]
            toks = [" ".join(t) for t in tokenize_many(flat)]
        else:
            toks = [*candidates, *(r for rs in references for r in rs)]
        ids = [str(i) for i in range(len(candidates))]
        items: list[dict[str, object]] = []
        pos = len(candidates)
        for i, rs in enumerate(references):
            items.append({"image_id": ids[i], "test": toks[i], "refs": toks[pos: pos + len(rs)]})
            pos += len(rs)
        return ids, items

    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[MetricResult]:
        check_inputs(candidates, references, "SPICE")
        reason = self.unavailable_reason()
        if reason:
            raise MetricUnavailable(reason)
        if not candidates:
            return [MetricResult("spice", math.nan, np.zeros(0), self._signature(references))]
        ids, items = self._inputs(candidates, references)
        cache: Path | None = None
        if self.use_cache:
            cache = Path(self.cache_dir).expanduser() if self.cache_dir else _capeval_home() / "spice-cache"
            cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="capeval-spice-") as tmp:
            in_file, out_file = Path(tmp) / "input.json", Path(tmp) / "output.json"
            in_file.write_text(json.dumps(items), encoding="utf-8")
            cmd = self.command(in_file, out_file, cache)
            budget = self.timeout + self.timeout_per_item * len(items)
            try:
                run = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, errors="replace", timeout=budget)
            except subprocess.TimeoutExpired:
                raise MetricUnavailable(f"SPICE: no result within {budget:.0f} s for {len(items)} captions") from None
            if run.returncode != 0 or not out_file.is_file():
                tail = "\n".join(run.stderr.strip().splitlines()[-15:])
                hint = ""
                if "InaccessibleObjectException" in run.stderr:
                    hint = " (a Java module-access error: run SPICE with Java 8 or 11)"
                raise MetricUnavailable(
                    f"SPICE failed (exit code {run.returncode}){hint}; Java stderr (last lines):\n{tail}")
            raw = json.loads(out_file.read_text(encoding="utf-8"))
        f, subsets = parse_spice_output(raw, ids)
        corpus = float(np.mean(f))  # as pycocoevalcap: NaN if any caption's F is undefined
        details = {"subsets": subsets, "undefined_f": int(np.isnan(f).sum()),
                   "corpus": "mean of per-caption F (All tuples), as pycocoevalcap"}
        return [MetricResult("spice", corpus, f, self._signature(references), details)]

    def _signature(self, references: Sequence[Sequence[str]]) -> Signature:
        counts = {len(r) for r in references}
        nrefs = str(min(counts)) if len(counts) == 1 else f"{min(counts)}-{max(counts)}"
        return Signature.make("spice", v="1.0", jar="pycocoevalcap", corenlp="3.6.0", synsets="yes",
                              tok=_tokenizer_name() if self.tokenize else "none", nrefs=nrefs,
                              java=self._java_version or "unknown", capeval=__version__)
