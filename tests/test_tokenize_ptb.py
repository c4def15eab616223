"""The Java-free PTB tokenizer: identical tokens to pycocoevalcap's Java PTBTokenizer on all real COCO captions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ptb_support import java_ptb_tokenize

from capeval.text.tokenize import PTB_PUNCTUATIONS, PTBTokenizer, ptb_tokenize, tokenize_many

java = pytest.mark.skipif(shutil.which("java") is None, reason="needs a Java runtime for Stanford PTBTokenizer")


def _load_all_captions(root: Path) -> list[str]:
    refs = [c for e in json.loads((root / "coco-karpathy-test" / "coco_test.json").read_text()) for c in e["caption"]]
    cands: list[str] = []
    for f in sorted((root / "coco-system-outputs").glob("*.json")):
        d = json.loads(f.read_text())
        if isinstance(d, list):  # llava "briefly": a list of one-entry dicts
            d = {k: v for e in d for k, v in e.items()}
        cands += list(d.values())
    return refs + cands


def _load_other_captions(root: Path) -> list[str]:
    """Flickr8k and PASCAL-50S captions (used by the meta-evaluation), deduplicated."""
    texts: list[str] = []
    tok_file = root / "flickr8k" / "Flickr8k.token.txt"
    if tok_file.is_file():
        texts += [line.split("\t", 1)[1] for line in tok_file.read_text(encoding="utf-8").splitlines() if "\t" in line]
    pascal = root / "pascal50s" / "expert_repo_pascal_50s.json"
    if pascal.is_file():
        for items in json.loads(pascal.read_text(encoding="utf-8")).values():
            for it in items:
                texts += it["captions"] + it["references"]
    return list(dict.fromkeys(texts))


QUIRKS = [
    "A (red) [box] {x}", "Wow!!! really?! ... yes.", "u.s.a. and U.S. army.", "e-mail 3.5 1,000 10% km/h",
    "don't can't won't cannot gonna", "it's the dog's bone, they're here, I'm I'd we've we'll",
    "\u201cquoted\u201d \u2018single\u2019 \"dbl\" 'sgl'", "emoji \U0001F600 here \U0001F436.", "o'clock rock'n'roll y'all '90s",
    "a dog., a cat.; ok", "mr. smith st. john etc. a.m.", "http://x.com/a?b=1 www.foo.com bob@x.org",
    "dash -- \u2014 \u2013 - --- -----", "a*b a\\b a|b a~b a^b a+b a=b a&b a&amp;b", "#hashtag @user _under_",
    "na\u00efve caf\u00e9", "\u00b0\u00b2 \u00d7 \u00a7 \u2605", "x\u00a0y z\u200bw", "(800) 555-1212", "12:30 1-2-2003 5-6",
    "AT&T R&D M&Ms", "dogs' toys", "\u2026 ellipsis . . . dots ok.....", "x-ray 4-car 3.5-inch", "he said,\"hi\"",
    "I'll ain't Y'know d'ye l'amour 'em 'till 'cause 'tis", "Fig. 3 no. 5 No. sq. ft. Ph.D.", "\u00abguillemets\u00bb",
    "a/b/c and/or 24/7 1/2/3 5 7/8 \u00bd", "lying I. The step", "lying I. the step", "Washington D.C. at night",
    "N. Astor and E. Division St.", "fork.A pipe", "UMBRELLA'S umbrella's", "\u00ad soft\u00adhyphen", "", "   ", "...",
    "!!!", "-lrb-", "a dog ||| on a mat", "tab\tsep", "\u20ac5 \u00a35 \u00a2", "\u0130stanbul \u03a3\u0391\u03a3 \u65e5\u672c\u8a9e",
    "they &apos;ve a horse &apos;s &quot;x&quot;",
]


@java
@pytest.mark.java
@pytest.mark.slow
def test_tokens_identical_to_java_ptbtokenizer_on_all_real_captions(shared_datasets: Path) -> None:
    coco = _load_all_captions(shared_datasets)
    assert len(coco) == 25_010 + 20_000
    texts = coco + QUIRKS + _load_other_captions(shared_datasets)
    # each text is followed by a capitalised line, the context pycocoevalcap's joined COCO file gives Java
    interleaved = [x for t in texts for x in (t, "A")]
    expected = java_ptb_tokenize(interleaved)[0::2]
    got = tokenize_many(texts)
    bad = [(t, g, e) for t, g, e in zip(texts, got, expected) if g != e]
    assert not bad, f"{len(bad)} mismatches, first: {bad[:3]}"


def test_brackets_are_kept_lowercased_like_pycoco() -> None:
    assert ptb_tokenize("A (red) box") == ["a", "-lrb-", "red", "-rrb-", "box"]


def test_repeated_exclamations_kept_single_punctuation_dropped() -> None:
    assert ptb_tokenize("Wow!!! really? yes... ok!") == ["wow", "!!!", "really", "yes", "ok"]


def test_clitics_are_split() -> None:
    assert ptb_tokenize("The dog's toy isn't here, I can't.") == ["the", "dog", "'s", "toy", "is", "n't", "here", "i",
                                                                     "ca", "n't"]


def test_curly_quotes_removed_and_emoji_dropped() -> None:
    assert ptb_tokenize("\u201cHi\u201d \U0001F600 there") == ["hi", "there"]


def test_numbers_units_acronyms_hyphens_kept_whole() -> None:
    assert ptb_tokenize("3.5 km/h u.s.a. e-mail 1,000") == ["3.5", "km/h", "u.s.a.", "e-mail", "1,000"]


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n", "\u2028", "\u2029", "\x0c", "\x0b", "\x85", "\t", "\u00a0"])
def test_line_breaks_are_spaces_never_new_captions(sep: str) -> None:
    texts = [f"a dog{sep}on a mat", "a cat", f"{sep}", f"two{sep}{sep}words{sep}"]
    assert tokenize_many(texts) == [["a", "dog", "on", "a", "mat"], ["a", "cat"], [], ["two", "words"]]


def test_only_whitespace_or_punctuation_gives_empty_list() -> None:
    assert tokenize_many(["", "   ", "...", " . , ; ", "\U0001F600"]) == [[], [], [], [], []]


def test_no_output_token_is_in_the_punctuation_list_or_has_a_space() -> None:
    toks = [t for q in QUIRKS for t in PTBTokenizer().tokenize(q)]
    assert toks and not set(toks) & PTB_PUNCTUATIONS and not any(" " in t or t == "" for t in toks)


def test_cache_does_not_change_results() -> None:
    tok = PTBTokenizer()
    first = [tok.tokenize(q) for q in QUIRKS]
    assert [tok.tokenize(q) for q in QUIRKS] == first == [PTBTokenizer().tokenize(q) for q in QUIRKS]


def test_random_text_never_crashes_nor_yields_empty_spaced_or_punctuation_tokens() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    alphabet = st.sampled_from(list("abcXYZ019 .,;:!?'\"-/()[]{}<>&@#$%*_|\\\r\n\t") +
                               ["\u2028", "\x0c", "\x00", "\u00a0", "\u2019", "\u201c", "\u2014", "\u2026", "\u00ad",
                                "\u00e9", "\u00bd", "\U0001F600", "&apos;", "n't", "'s", "cannot", "Mr.", "U.S.",
                                "http://x.org/a", "5 7/8", "(800) 555-1212", ". . ."])

    @settings(max_examples=200, deadline=None)
    @given(st.lists(alphabet, max_size=25).map("".join))
    def check(text: str) -> None:
        toks = PTBTokenizer().tokenize(text)
        assert all(t and not any(c in t for c in " \r\n\t\u2028\x0c") and t not in PTB_PUNCTUATIONS for t in toks)
        assert tokenize_many([text, "a dog"])[1] == ["a", "dog"]

    check()
