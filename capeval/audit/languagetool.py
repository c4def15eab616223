"""LanguageTool backend (optional): language-tool-python against a local LanguageTool or a server (`--lt-url`,
`CAPEVAL_LT_URL`), with the rules that misfire on captions filtered out and matches mapped to `Finding`s.

Captions are sent in batches joined by blank lines (one request per ~20k characters, not per caption); each
match's offset is mapped back to its caption and to a span in the ORIGINAL caption text.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Mapping
from typing import Any

from capeval.audit.finding import Finding
from capeval.errors import CapevalError
from capeval.records import CaptionSet

ENV_URL = "CAPEVAL_LT_URL"
SEPARATOR = "\n\n"
BATCH_CHARS = 20_000
# Rules that fire on perfectly good captions: noun phrases without a capital or a final period, etc.
CAPTION_MISFIRING_RULES = frozenset({
    "UPPERCASE_SENTENCE_START", "PUNCTUATION_PARAGRAPH_END", "SENTENCE_FRAGMENT", "MISSING_VERB",
    "ENGLISH_WORD_REPEAT_BEGINNING_RULE", "SENT_START_CONJUNCTIVE_LINKING_ADVERB_COMMA", "TOO_LONG_SENTENCE",
    "PASSIVE_VOICE", "EN_QUOTES", "DASH_RULE", "PLUS_MINUS", "MULTIPLICATION_SIGN", "WHITESPACE_PARAGRAPH",
    "SENTENCE_WHITESPACE", "I_LOWERCASE", "THREE_NN", "A_INFINITIVE", "COMMA_COMPOUND_SENTENCE",
    "COMMA_COMPOUND_SENTENCE_2", "EN_UNPAIRED_QUOTES",
})
CAPTION_MISFIRING_CATEGORIES = frozenset({"STYLE", "REDUNDANCY", "PLAIN_ENGLISH", "WIKIPEDIA", "CREATIVE_WRITING",
                                          "TEXT_ANALYSIS", "REPETITIONS_STYLE"})
_CATEGORY_MAP = {"TYPOS": "spelling", "CONFUSED_WORDS": "real_word", "GRAMMAR": "grammar",
                 "PUNCTUATION": "formatting", "TYPOGRAPHY": "formatting", "CASING": "formatting",
                 "COLLOCATIONS": "grammar", "SEMANTICS": "grammar", "MISC": "grammar", "NONSTANDARD_PHRASES": "grammar",
                 "COMPOUNDING": "spelling"}
_CONFIDENCE = {"spelling": 0.85, "real_word": 0.75, "grammar": 0.75, "formatting": 0.6}


def resolve_url(url: str | None) -> str | None:
    return url or os.environ.get(ENV_URL) or None


def open_tool(url: str | None = None) -> Any:
    """A `language_tool_python.LanguageTool` for US English: the server at `url` (or $CAPEVAL_LT_URL), else a
    local LanguageTool (needs Java and language-tool-python's downloaded server)."""
    try:
        import language_tool_python
    except ImportError as exc:
        raise CapevalError("the languagetool backend needs language-tool-python: "
                           "pip install 'capeval[grammar]'") from exc
    url = resolve_url(url)
    try:
        if url:
            return language_tool_python.LanguageTool("en-US", remote_server=url)
        return language_tool_python.LanguageTool("en-US")
    except Exception as exc:  # noqa: BLE001 - any failure to reach/start LanguageTool is one user-facing error
        where = f"the LanguageTool server at {url}" if url else "a local LanguageTool (Java + downloaded server)"
        raise CapevalError(f"cannot use {where}: {exc}. Start a server (java -cp languagetool-server.jar "
                           f"org.languagetool.server.HTTPServer --port 8081) and pass --lt-url "
                           f"http://localhost:8081 or set {ENV_URL}; or use --grammar-backend builtin") from exc


def batches(captions: CaptionSet, max_chars: int = BATCH_CHARS) -> Iterable[tuple[str, list[int], list[int]]]:
    """(text, start offset of each caption in the text, caption indices) for batches of captions.

    Newlines inside a caption become spaces (same length, so offsets still index the original caption)."""
    text_parts: list[str] = []
    starts: list[int] = []
    idx: list[int] = []
    pos = 0
    for k, c in enumerate(captions.captions):
        t = c.text.replace("\r", " ").replace("\n", " ")
        if text_parts and pos + len(t) > max_chars:
            yield SEPARATOR.join(text_parts), starts, idx
            text_parts, starts, idx, pos = [], [], [], 0
        starts.append(pos)
        idx.append(k)
        text_parts.append(t)
        pos += len(t) + len(SEPARATOR)
    if text_parts:
        yield SEPARATOR.join(text_parts), starts, idx


def match_fields(m: Any) -> dict[str, Any]:
    """A language_tool_python Match (or a raw /v2/check match dict) as plain fields."""
    if isinstance(m, Mapping):
        return {"rule_id": m["rule"]["id"], "category": m["rule"]["category"]["id"], "message": m.get("message", ""),
                "offset": int(m["offset"]), "length": int(m["length"]),
                "replacements": [r["value"] for r in m.get("replacements", [])]}
    return {"rule_id": m.rule_id, "category": m.category, "message": m.message, "offset": int(m.offset),
            "length": int(m.error_length), "replacements": list(m.replacements)}


def keep_match(rule_id: str, category: str) -> bool:
    return rule_id not in CAPTION_MISFIRING_RULES and category not in CAPTION_MISFIRING_CATEGORIES


def findings_from_matches(captions: CaptionSet, matches: Iterable[Any], starts: list[int],
                          idx: list[int]) -> list[Finding]:
    """Map LanguageTool matches on one batch text back to captions, dropping caption-misfiring rules."""
    out = []
    for m in matches:
        f = match_fields(m)
        if not keep_match(f["rule_id"], f["category"]):
            continue
        j = bisect.bisect_right(starts, f["offset"]) - 1
        if j < 0:
            continue
        cap = captions.captions[idx[j]]
        start = f["offset"] - starts[j]
        end = start + f["length"]
        if end > len(cap.text) or start < 0:
            continue  # a match across the caption separator
        category = _CATEGORY_MAP.get(f["category"], "grammar")
        suggestion = f["replacements"][0] if f["replacements"] else None
        conf = _CONFIDENCE.get(category, 0.7)
        if suggestion is None:
            conf -= 0.1
        out.append(Finding(cap.caption_id, cap.image_id, category, start, end, cap.text[start:end], suggestion,
                           f"lt.{f['rule_id']}", conf, "languagetool"))
    return out


def check_with_languagetool(captions: CaptionSet, *, url: str | None = None, tool: Any = None,
                            progress: bool = True) -> list[Finding]:
    """Spelling, real-word, grammar and formatting findings from LanguageTool for every caption."""
    own = tool is None
    tool = tool or open_tool(url)
    out: list[Finding] = []
    try:
        for text, starts, idx in batches(captions):
            try:
                matches = tool.check(text)
            except Exception as exc:  # noqa: BLE001 - network/server failures become one clear error
                raise CapevalError(f"LanguageTool request failed: {exc}") from exc
            out.extend(findings_from_matches(captions, matches, starts, idx))
    finally:
        if own:
            tool.close()
    return out
