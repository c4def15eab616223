"""Reading a file's bytes into text or JSON with errors that say where: byte offset and line for bad UTF-8,
line and column for malformed JSON, and which JSON objects held duplicate keys (JSON silently keeps the last)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capeval.errors import InputError


class InputWarning(UserWarning):
    """Input that was read but looks wrong (e.g. Flickr8k's malformed key); the message says what was done."""


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text, decoded as UTF-8 (a BOM is allowed); bad bytes -> InputError with byte offset, line, column."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found; expected a caption file or a dataset name (see `capeval data list`)",
                         path=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder; expected a caption file", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror})", path=str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start:exc.start + 4]
        raise InputError(
            f"byte {bad[:1]!r} at byte offset {exc.start} is not valid UTF-8; expected UTF-8 text "
            f"(re-save the file as UTF-8)", path=str(path), where=f"line {line}, column {col}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


@dataclass
class ParsedJSON:
    """A parsed JSON document plus the ids (`id()`) of objects that had duplicate keys, mapped to those keys."""

    value: Any
    duplicate_keys: dict[int, list[str]] = field(default_factory=dict)

    def duplicates_in(self, obj: object) -> list[str]:
        return self.duplicate_keys.get(id(obj), [])


def parse_json(text: str, path: str) -> ParsedJSON:
    """Parse a JSON document; malformed JSON -> InputError with line and column and what the parser expected."""
    dups: dict[int, list[str]] = {}

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(pairs)
        if len(d) != len(pairs):
            seen: set[str] = set()
            dup = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
            dups[id(d)] = list(dict.fromkeys(dup))
        return d

    try:
        value = json.loads(text, object_pairs_hook=hook)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}; expected a valid JSON document", path=path,
                         where=f"line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise InputError("JSON nested too deeply; expected a caption file", path=path) from None
    # keep the objects alive while their id()s are in use: they are reachable from `value`
    return ParsedJSON(value, dups)


def json_path(*parts: str | int) -> str:
    """`json_path("annotations", 17, "caption")` -> 'annotations[17].caption'; a leading index gives '[3].image'."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p.isidentifier():
            out += f".{p}" if out else p
        else:
            out += f"[{json.dumps(p, ensure_ascii=False)}]"
    return out or "top level"


def type_name(value: object) -> str:
    """JSON-flavoured type name for messages ('string', 'number', 'object', ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
