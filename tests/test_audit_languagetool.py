"""The LanguageTool adapter against LanguageTool's documented /v2/check JSON, served by a local http.server; live
against a real server only when CAPEVAL_LT_URL is set."""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("language_tool_python")

from capeval.audit import audit_captions  # noqa: E402
from capeval.audit.languagetool import batches, check_with_languagetool  # noqa: E402
from capeval.records import CaptionSet  # noqa: E402

CAPTIONS = {
    "10": ["a dog sitting on teh couch", "A dog on a couch with a a pillow"],
    "11": ["Two giraffes by a tree", "a cat\nsleeping on teh bed."],
}


def _match(message, offset, length, replacements, rule_id, category, text):
    """One match as LanguageTool's /v2/check documents it."""
    return {"message": message, "shortMessage": "", "offset": offset, "length": length,
            "replacements": [{"value": r} for r in replacements],
            "context": {"text": text[max(0, offset - 20):offset + length + 20], "offset": min(offset, 20),
                        "length": length},
            "sentence": text, "type": {"typeName": "Other"},
            "rule": {"id": rule_id, "description": message, "issueType": "misspelling",
                     "category": {"id": category, "name": category.title()}}}


class _FakeLanguageTool(BaseHTTPRequestHandler):
    """Finds 'teh' (TYPOS), doubled words (GRAMMAR), and the caption-misfiring rules LanguageTool really fires:
    lowercase sentence start (CASING) and a paragraph without final punctuation (PUNCTUATION)."""

    requests: list[dict] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def _json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/v2/languages"):
            self._json([{"name": "English (US)", "code": "en", "longCode": "en-US"}])
        else:
            self.send_error(404)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        text = form["text"][0]
        type(self).requests.append({"language": form["language"][0], "text": text})
        matches = []
        for m in re.finditer(r"\bteh\b", text):
            matches.append(_match("Possible spelling mistake found.", m.start(), 3, ["the", "ten"],
                                  "MORFOLOGIK_RULE_EN_US", "TYPOS", text))
        for m in re.finditer(r"\b(\w+) \1\b", text):
            matches.append(_match("Possible typo: you repeated a word", m.start(), len(m.group()), [m.group(1)],
                                  "ENGLISH_WORD_REPEAT_RULE", "MISC", text))
        pos = 0
        for para in text.split("\n\n"):
            if para[:1].islower():
                matches.append(_match("This sentence does not start with an uppercase letter.", pos, 1,
                                      [para[0].upper()], "UPPERCASE_SENTENCE_START", "CASING", text))
            if para and para[-1] not in ".!?":
                matches.append(_match("Please add a punctuation mark at the end of paragraph.", pos + len(para) - 1,
                                      1, [para[-1] + "."], "PUNCTUATION_PARAGRAPH_END", "PUNCTUATION", text))
            pos += len(para) + 2
        self._json({"software": {"name": "LanguageTool", "version": "6.4"}, "language": {"code": "en-US"},
                    "matches": matches})


@pytest.fixture()
def lt_server():
    _FakeLanguageTool.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeLanguageTool)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_matches_map_to_findings_in_original_captions(lt_server):
    caps = CaptionSet.from_mapping(CAPTIONS)
    findings = check_with_languagetool(caps, url=lt_server)
    texts = caps.by_id()
    got = {(f.caption_id, f.category, f.text, f.suggestion) for f in findings}
    assert got == {("10#0", "spelling", "teh", "the"), ("10#1", "grammar", "a a", "a"),
                   ("11#1", "spelling", "teh", "the")}
    for f in findings:
        assert texts[f.caption_id].text[f.start:f.end] == f.text
        assert f.backend == "languagetool" and f.rule.startswith("lt.")


def test_caption_misfiring_rules_are_filtered(lt_server):
    findings = check_with_languagetool(CaptionSet.from_mapping(CAPTIONS), url=lt_server)
    assert not any(f.rule in ("lt.UPPERCASE_SENTENCE_START", "lt.PUNCTUATION_PARAGRAPH_END") for f in findings)


def test_captions_are_batched_not_sent_one_by_one(lt_server):
    check_with_languagetool(CaptionSet.from_mapping(CAPTIONS), url=lt_server)
    assert len(_FakeLanguageTool.requests) == 1
    assert _FakeLanguageTool.requests[0]["language"] == "en-US"
    assert "\n" not in _FakeLanguageTool.requests[0]["text"].replace("\n\n", "")  # newlines inside captions


def test_batches_respect_size_and_offsets():
    caps = CaptionSet.from_mapping({str(i): f"caption number {i}" for i in range(50)})
    seen = 0
    for text, starts, idx in batches(caps, max_chars=120):
        assert len(text) <= 120 + 40
        for s, k in zip(starts, idx):
            assert text[s:s + len(caps[k].text)] == caps[k].text
        seen += len(idx)
    assert seen == 50


def test_audit_with_languagetool_backend_via_env(lt_server, monkeypatch):
    monkeypatch.setenv("CAPEVAL_LT_URL", lt_server)
    result = audit_captions(CaptionSet.from_mapping(CAPTIONS), backend="languagetool", progress=False)
    assert result.backend == "languagetool"
    assert {f.category for f in result.findings if f.backend == "languagetool"} == {"spelling", "grammar"}


def test_unreachable_server_is_a_clear_error():
    from capeval.errors import CapevalError

    with pytest.raises(CapevalError, match="LanguageTool"):
        check_with_languagetool(CaptionSet.from_mapping(CAPTIONS), url="http://127.0.0.1:9")


@pytest.mark.skipif(not os.environ.get("CAPEVAL_LT_URL"), reason="set CAPEVAL_LT_URL to a LanguageTool server")
def test_live_languagetool_finds_a_typo():
    findings = check_with_languagetool(CaptionSet.from_mapping({"1": "A dog sitting on teh couch."}))
    assert any(f.category == "spelling" and f.text == "teh" for f in findings)
