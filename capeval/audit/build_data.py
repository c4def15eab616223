"""Rebuild `capeval/audit/data/extra_words.txt` from the `wordfreq` package (run once by maintainers, not at run time).

pyspellchecker's English dictionary lacks many common modern words (selfie, smartphone, countertop, tv) and British
spellings. This adds the words that wordfreq's English list rates as common, minus web misspellings: a word is kept
only when no dictionary word one (long words: two) edits away is far more frequent (drops "teh", "thats",
"goin") and it is not a contraction or run-on written without its apostrophe or space ("dont", "alot", "womens").
Usage: `pip install wordfreq && python -m capeval.audit.build_data`.
"""

from __future__ import annotations

import re
from pathlib import Path

OUT = Path(__file__).with_name("data") / "extra_words.txt"


def build() -> list[str]:
    import wordfreq  # build-time only
    from rapidfuzz import process
    from rapidfuzz.distance import OSA
    from spellchecker import SpellChecker

    base = SpellChecker().word_frequency.dictionary
    known = [w for w, n in base.items() if n >= 200 and w.isalpha()]
    zipf_known = {w: wordfreq.zipf_frequency(w, "en") for w in known}
    common = {w for w, z in zipf_known.items() if z >= 5.0}
    keep: list[str] = []
    for w in wordfreq.iter_wordlist("en", "large"):
        z = wordfreq.zipf_frequency(w, "en")
        if z < 2.5:
            break
        if w in base or not re.fullmatch(r"[a-z]+(?:'[a-z]+)?", w):
            continue
        if len(w) <= 3:
            if z >= 4.0:
                keep.append(w)
            continue
        if z < 3.0 and len(w) < 5:
            continue
        if any(f"{w[:i]}'{w[i:]}" in base for i in range(1, len(w))):
            continue  # dont, isnt, womens: a known word once the apostrophe is restored
        if any(w[:i] in common and w[i:] in common for i in range(1, len(w))):
            continue  # alot, infront: two common words run together
        close = process.extract(w, known, scorer=OSA.distance, score_cutoff=2 if len(w) >= 7 else 1, limit=10)
        if any(zipf_known[k] >= z + (1.5 if d <= 1 else 2.0) for k, d, _ in close):
            continue  # a much commoner word is one or two edits away: a misspelling of it
        keep.append(w)
    return sorted(set(keep))


def main() -> None:
    words = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(words) + "\n", encoding="utf-8")
    print(f"wrote {len(words)} words to {OUT}")


if __name__ == "__main__":
    main()
