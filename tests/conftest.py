"""Shared test fixtures: the real public datasets (read from the mirror, never copied) and offline settings."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The folder of real public test data (`../shared/datasets` or `$CAPEVAL_DATA_MIRROR`); skips when absent."""
    root = _mirror()
    if not (root / "coco-karpathy-test" / "coco_test.json").is_file():
        pytest.skip(f"real test data not found at {root} (set CAPEVAL_DATA_MIRROR to a folder laid out like ../shared/datasets)")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's downloads and caches out of the user's home."""
    monkeypatch.setenv("CAPEVAL_HOME", str(tmp_path_factory.getbasetemp() / "capeval-home"))
