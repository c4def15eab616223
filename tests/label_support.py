"""Helpers the label-set tests share: read a label CSV, load a set's `sample.py` as a module."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from types import ModuleType


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a label CSV as dicts."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_sample(path: Path, name: str) -> ModuleType:
    """A label set's draw script (`sample.py`), imported without running its main."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module
