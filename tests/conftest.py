"""Shared test fixtures: the real public datasets (read from the mirror, never copied) and offline settings."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def _mirror() -> Path:
    env = os.environ.get("CAPEVAL_DATA_MIRROR")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


# Tests that fetch registry datasets read them from the local mirror, never from the internet.
if _mirror().is_dir():
    os.environ.setdefault("CAPEVAL_DATA_MIRROR", str(_mirror()))


#: CI sets CAPEVAL_REQUIRE_DATA=1 (.ci/run): then a test that would skip for want of the data mirror, Java or
#: Chromium fails instead, so a green CI run proves the claims that rest on them
REQUIRE_DATA = os.environ.get("CAPEVAL_REQUIRE_DATA", "") not in ("", "0")
#: skip reasons that mean "the real data / Java / Chromium is missing" (what CAPEVAL_REQUIRE_DATA turns into failures)
NEEDS_PATTERN = re.compile(r"real test data|data mirror|CAPEVAL_DATA_MIRROR|\bmirror\b|\bjava\b|JVM|chromium|"
                           r"make browser|PTBTokenizer", re.IGNORECASE)


def skip_or_fail(reason: str) -> None:
    """Skip (locally, where the mirror, Java or Chromium may be absent) or fail (under CAPEVAL_REQUIRE_DATA=1)."""
    if REQUIRE_DATA:
        pytest.fail(f"CAPEVAL_REQUIRE_DATA=1 and {reason}", pytrace=False)
    pytest.skip(reason)


def _required(reason: str) -> bool:
    return REQUIRE_DATA and NEEDS_PATTERN.search(reason) is not None


def _skip_reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under CAPEVAL_REQUIRE_DATA=1 every skip for a missing mirror / Java / Chromium (pytest.skip in a test or
    fixture, skipif markers, importorskip) becomes a failure naming what is missing."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report.longrepr)
        if _required(reason):
            report.outcome = "failed"
            report.longrepr = f"CAPEVAL_REQUIRE_DATA=1 but this test would skip: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    """The same for module-level skips (a whole test file skipped at import)."""
    outcome = yield
    report = outcome.get_result()
    if report.outcome == "skipped":
        reason = _skip_reason(report.longrepr)
        if _required(reason):
            report.outcome = "failed"
            report.longrepr = f"CAPEVAL_REQUIRE_DATA=1 but this module would skip: {reason}"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The folder of real public test data (`../shared/datasets` or `$CAPEVAL_DATA_MIRROR`); skips when absent (fails
    under CAPEVAL_REQUIRE_DATA=1)."""
    root = _mirror()
    if not (root / "coco-karpathy-test" / "coco_test.json").is_file():
        skip_or_fail(f"real test data not found at {root} (set CAPEVAL_DATA_MIRROR to a folder laid out like "
                     "../shared/datasets)")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's downloads and caches out of the user's home."""
    monkeypatch.setenv("CAPEVAL_HOME", str(tmp_path_factory.getbasetemp() / "capeval-home"))
