"""Pure-Python PTB tokenization that reproduces pycocoevalcap's `PTBTokenizer` without Java.

pycocoevalcap runs Stanford CoreNLP 3.4.1's `PTBTokenizer -preserveLines -lowerCase` and then drops the tokens in
`PTB_PUNCTUATIONS`. This module emulates the JFlex lexer (longest match, trailing context counted, ties to the earlier
rule) for what captions contain: words, clitics (`'s`, `n't`), `cannot`/`gonna`, hyphenated words, numbers,
acronyms and abbreviations, slashes (`km/h`), URLs, brackets as `-lrb-`, quotes, ellipses, dashes, entities.

Verified against the Java tokenizer (tests/test_tokenize_ptb.py, tests/test_tokenize_java_parity.py): identical
tokens for all 25,010 COCO Karpathy-test references, the 20,000 captions of four real systems, and 48,851 Flickr8k /
PASCAL-50S captions. Like Java's lexer it is caseless where JFlex is (`DON'T` -> do n't, `HTTP://X.ORG` is a URL),
reads HTML entities as Java does (`&lt;` -> <, `&#39;` kept, `&nbsp;` a space), keeps smileys (`:)` -> :-rrb-),
and drops the characters Java's Unicode tables do not know (U+FE0F, newer symbols and scripts; the table in
_ptb_charsets.py is generated from the jar by benchmarks/gen_ptb_charsets.py). On seeded mutations of real captions
(benchmarks/bench_tokenize_differential.py) about 0.1% still differ, all where two constructs are glued together
without a space (`etc.a`, `skis!café`, `EXAMPLE.COM3.5`); see the README for the list.

Deliberate differences from pycocoevalcap:

* one caption always maps to one token list: ``\r``, ``\n``, ``\u2028``, ``\x0c`` and other line breaks are
  spaces (pycocoevalcap only replaces ``\n``, so Java's extra line breaks silently shift every later caption);
* characters Java cannot tokenize (emoji and other astral characters, control characters) are dropped, as Java
  does, but they separate tokens;
* Java's lexer looks one word past a caption's end in two places (a single letter + period, e.g. "Wii U.", keeps
  the period unless a sentence-start word follows); capeval assumes the next caption starts with "A ", as COCO
  references do in pycocoevalcap's joined file, so tokens never depend on neighbouring captions.

Tokens keep pycocoevalcap's granularity: the string pycocoevalcap hands to its scorers is ``" ".join(tokens)``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from capeval.text._ptb_charsets import DELETES, SEPARATES

#: tokens pycocoevalcap removes after Java tokenization (upper-case bracket names never match: -lowerCase)
PTB_PUNCTUATIONS: frozenset[str] = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

TOKENIZER_SIGNATURE = "ptb-py"

# whitespace and line breaks Java treats as separators (plus zero-width characters and NUL it skips)
_SEPARATORS = re.compile(r"[\s\u00a0\u1680\u2000-\u200f\u2028\u2029\u202f\u205f\u3000\ufeff\x00\x85]+")
_SIMPLE = re.compile(r"[A-Za-z]+|[0-9]+")

_SPLIT_WORDS = {"cannot": 3, "gonna": 3, "gotta": 3, "lemme": 3, "gimme": 3, "wanna": 3}

# JFlex emulation: every rule is tried at the current position; the longest match (trailing context included)
# wins, ties go to the earlier rule, as in Stanford's PTBLexer. Group `t` is the token, the rest is context.
_NOT_LETTER = "\\W\\d_\u00b2\u00b3\u00b9\u00bc-\u00be\u2070-\u209f\u2150-\u218f\u2460-\u24ff\u2776-\u2793"
_L = rf"[^{_NOT_LETTER}]"
_LS = rf"(?:{_L}|&[aeiouAEIOU](?i:acute|grave|uml);)"
_WORDCH = rf"(?:[^{_NOT_LETTER}]|[\u0300-\u036f\u00ad]|&[aeiouAEIOU](?i:acute|grave|uml);)"  # SPLET entities
_APOS = "(?:['\u0092\u2019]|(?i:&apos;))"
_APOSX = "(?:['\u0092\u2019\u0091\u2018\u201b]|(?i:&apos;))"
_REDAUX = rf"{_APOS}(?:[msdMSD]|(?i:re|ve|ll))"
_NUM = r"[-+]?(?:[0-9]*(?:[.:,\u00ad][0-9]+)+|[0-9]+)"
_HYPH = r"[-_\u058a\u2010\u2011]"
_THING_PART = rf"(?:[dDoOlL]{_APOSX}(?:{_L}|[0-9]))?(?:{_WORDCH}|[0-9])+"
_ACRO = r"[A-Za-z](?:\.[A-Za-z])+"
_ABBREV1 = (r"(?i:(?:ed|ph)\.d|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|mon|tues?|wed|thu|thurs|fri|ala|ariz|calif|colo|conn"
            r"|dak|fla|ga|ind|kans?|ky|md|mich|minn|mo|mont|neb|nev|okla|penn|tenn|va|vt|wisc?|wyo|inc|cos?|corp"
            r"|ptys?|ltd|plc|bancorp|dept|bhd|assn|univ|intl|sys|ph|tel|est|ext|sq|ft|jr|sr|bros|blvd|rd|esq|etc"
            r"|al|seq)|Ark|Ill|Mass|Miss|Ore|Wash|Pa|La|Del|Tex")
_ABBREV4 = (r"(?i:mrs?|ms|drs?|profs?|sens?|reps?|attys?|lt|col|gen|messrs|govs?|adm|rev|maj|sgt|cpl|pvt|mt|capt"
            r"|ste?|ave|pres|lieut|hon|brig|co?mdr|pfc|spc|supts?|det|vs|alex|wm|jos|cie|cf|treas|invt|elec|natl"
            r"|m[ft]g)")
_APOWORD = (rf"{_APOS}(?i:n){_APOS}?|[lLdDjJ]{_APOS}|(?i:dunkin|somethin|ol){_APOS}|{_APOS}(?i:em|till?|cause|[2-9]0s)"
            rf"|[A-HJ-XZn]{_APOSX}{_L}{{2}}{_L}*|{_L}+[aeiouyAEIOUY]{_APOSX}[aeiouA-Z]{_L}*"
            r"|(?i:cont'd\.?|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l|ma'am)")
_SENT_START = (r"[ \n]+(?:About|According|Additionally|After|An|A|As|At|But|Earlier|He|Her|Here|However|If|In|It|Last"
               r"|Many|More|Mr\.|Ms\.|Now|Once|One|Other|Our|She|Since|So|Some|Such|That|The|Then|There|These|They"
               r"|This|We|When|While|What|Yet|You)[ \n]")
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(rx, re.DOTALL))
    for name, rx in [
        ("split3", r"(?P<t>(?i:can))(?i:not)|(?P<t2>(?i:gon|wan))(?i:na)|(?P<t3>(?i:got))(?i:ta)|(?P<t4>(?i:lem|gim))(?i:me)"),
        ("sgml", r"(?P<t></?[A-Za-z!][^>\s]*>)"),
        ("dash", r"(?P<t>&(?i:MD|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015])"),
        ("amp", r"(?P<t>(?i:&amp;))"),
        ("sppunc", r"(?P<t>&(?i:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);)"),
        ("wordaux", rf"(?P<t>{_WORDCH}+){_REDAUX}"),
        ("wordnt", rf"(?P<t>[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*)(?i:n){_APOSX}(?i:t)"),
        ("word", rf"(?P<t>{_WORDCH}+)"),
        ("apoword", rf"(?P<t>{_APOWORD})"),
        ("apoword2", rf"(?P<t>[yY]{_APOS}){_L}"),
        ("tis", rf"(?P<t>{_APOS}[tT])(?i:is|was)\b"),
        ("url", r"(?P<t>(?i:https?)://[^\s\"<>|()]*[^\s\"<>|.!?(){},-])"),
        # JFlex reads `,-_` in Java's class as the range U+002C-U+005F (digits, capitals, ':' and '/' excluded)
        ("likelyurl", r"(?P<t>(?:(?i:www)\.(?:[^\s\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4}|(?:[^\s\"`'<>|.!?(){}\x2c-\x5f$]+\.)+"
                      r"(?i:com|net|org|edu))(?:/[^\s\"<>|()]+[^\s\"<>|.!?(){},\-])?)"),
        ("email", r"(?P<t>[a-zA-Z0-9][^\s\"<>|()\u00a0]*@(?:[^\s\"<>|().\u00a0]+\.)*[^\s\"<>|().\u00a0]+)"),
        ("redaux_ctx", rf"(?P<t>{_REDAUX})[^A-Za-z]"),
        ("sredaux", rf"(?P<t>(?i:n){_APOSX}(?i:t))"),
        ("date", r"(?P<t>[0-9]{1,2}[-/][0-9]{1,2}[-/][0-9]{2,4})"),
        ("number", rf"(?P<t>{_NUM})"),
        ("frac", r"(?P<t>(?:[0-9]{1,4}-)?[0-9]{1,4}(?:\\?/|\u2044)[0-9]{1,4})"),
        ("tbspec", r"(?P<t>-(?i:RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|(?i:pro|anti)-|S(?:&|&amp;)P-500|S(?:&|&amp;)Ls)"),
        ("thing3", r"(?P<t>[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2})"),
        ("hashtag", r"(?P<t>[#@][A-Za-z_][A-Za-z0-9_]*)"),
        ("dolsign", r"(?P<t>[A-Z]*\$|#)"),
        ("abbrev1", rf"(?P<t>(?:{_ABBREV1})\.)"),
        ("letter_end", rf"(?P<t>[A-Za-z])\.{_SENT_START}"),
        ("abbrevnum", r"(?P<t>(?i:nos?|prop|figs?)\.)[ \n]?[0-9]"),
        ("abbrev2", rf"(?P<t>(?:{_ACRO}|{_ABBREV4}|[A-Za-z])\.)"),
        ("acro", rf"(?P<t>{_ACRO})[ \n]"),
        ("dotword", rf"(?P<t>{_LS}+(?:\.{_LS}+)+)"),
        ("tbspec2", r"(?P<t>'[0-9][0-9])[ \n]"),
        ("wordp", rf"(?P<t>{_WORDCH}+\.)[,;:]"),
        ("smiley", r"(?P<t>[<>]?[:;=][-o*']?[()DPdpO\\{@|\[\]])[^A-Za-z0-9]"),
        ("dblquot", r"(?P<t>\"|(?i:&quot;))"),
        ("sym", r"(?P<t>[+%&\u2030\u2031~^|\\=/])"),
        ("brk", r"(?P<t>[()\[\]{}<>]|(?i:&lt;|&gt;))"),
        ("hyphens", r"(?P<t>-+)"),
        ("ldots", r"(?P<t>\.{3,5}|[\u0085\u2026])"),
        ("fnmarks", r"(?P<t>@+|#+|_+|\*+)"),
        ("insentp", r"(?P<t>[,;:])"),
        ("qe", r"(?P<t>[?!]+)"),
        ("period", "(?P<t>[.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa])"),
        ("hthingp", r"(?P<t>[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:[A-Za-z0-9\u00ad]+|" + _ACRO + r"\.))+\.)[,;:]"),
        ("hthing", r"(?P<t>[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:[A-Za-z0-9\u00ad]+|" + _ACRO + r"\.))+)"),
        ("thingp", rf"(?P<t>{_THING_PART}(?:{_HYPH}{_THING_PART})*\.)[,;:]"),
        ("thing", rf"(?P<t>{_THING_PART}(?:{_HYPH}{_THING_PART})*)"),
        ("thinga", r"(?P<t>[A-Z]+(?:(?:[+&]|&amp;)[A-Z]+)+)"),
        ("quote_left", r"(?P<t>')[A-Za-z][^\s]"),
        ("redaux", rf"(?P<t>{_REDAUX})"),
        ("quotes", rf"(?P<t>{_APOS}|''|[`\u2018\u2019\u201a\u201b\u201c\u201d\u0091\u0092\u0093\u0094\u201e\u201f"
                   r"\u2039\u203a\u00ab\u00bb]{1,2})"),
        ("cur", "(?P<t>[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6])"),
        ("frac2", "(?P<t>[\u00bc\u00bd\u00be\u2153-\u215e])"),
        ("any", r"(?P<t>.)"),
    ]
]
_LATEX_QUOTES = str.maketrans({"\u0091": "`", "\u2018": "`", "\u201b": "`", "\u2039": "`", "\u0092": "'", "\u2019": "'",
                               "\u203a": "'", "\u0093": "``", "\u201c": "``", "\u00ab": "``", "\u0094": "''",
                               "\u201d": "''", "\u00bb": "''"})
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
_CURRENCY = {"\u00a2": "cents", "\u00a3": "#", "\u00a4": "$", "\u20a0": "$", "\u20ac": "$", "\u0080": "$"}
_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"}
_KEPT_CURRENCY = frozenset("$\u00a5\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6")


#: token kinds whose &apos;/&quot; Java leaves as written (&apos;n&apos;, URLs, e-mail addresses)
_ENTITIES_KEPT = frozenset({"apoword", "url", "likelyurl", "email"})


def _droppable(ch: str) -> bool:
    """Characters Java's lexer does not know at all (emoji and other astral characters, controls, scripts and symbols
    newer than its Unicode tables, variation selectors such as U+FE0F): deleted, and they split a word in two."""
    o = ord(ch)
    if o > 0xFFFF:
        return True
    if o < 0x21:
        return unicodedata.category(ch) == "Cc"
    return SEPARATES.match(ch) is not None


def _deleted_alone(ch: str) -> bool:
    """What the lexer drops when no rule takes it into a longer token: the unknown characters above, plus a few only
    valid inside a word (U+2010/U+2011/U+058A hyphens: `well\u2010known` is one token, a lone U+2010 is nothing)."""
    return _droppable(ch) or DELETES.match(ch) is not None


def _lex_chunk(chunk: str, follow: str) -> list[str]:
    """Tokenize one whitespace-free chunk; `follow` is what comes after it (a space and the next character)."""
    text = chunk + follow
    n = len(chunk)
    out: list[str] = []
    i = 0
    while i < n:
        best_len, best_kind, best_tok = 0, "any", text[i]
        for kind, rx in _RULES:
            m = rx.match(text, i)
            if m is None:
                continue
            length = m.end() - i
            if length > best_len:
                tok = m.group("t") if m.group("t") is not None else next(g for g in m.groups() if g)
                best_len, best_kind, best_tok = length, kind, tok
        i += len(best_tok)
        tok = best_tok
        if best_kind in ("word", "wordaux", "wordnt", "hthing", "hthingp", "number"):
            tok = tok.replace("\u00ad", "")
        elif best_kind == "brk":
            tok = _BRACKETS.get(tok, tok) if len(tok) == 1 else "<" if tok[1] in "lL" else ">"
        elif best_kind == "smiley":
            tok = tok.replace("(", "-lrb-").replace(")", "-rrb-")
        elif best_kind in ("dash", "ldots"):
            tok = "--"
        elif best_kind == "amp":
            tok = "&"
        elif best_kind == "hyphens":
            tok = "--" if 3 <= len(tok) <= 4 else tok
        elif best_kind in ("dblquot", "quote_left"):
            tok = "'" if tok in ('"', "&quot;", "'") else tok  # Java normalises only the lower-case entity
        elif best_kind in ("quotes", "redaux", "redaux_ctx", "sredaux"):
            tok = tok.translate(_LATEX_QUOTES)
        elif best_kind == "cur":
            tok = _CURRENCY.get(tok, tok)
        elif best_kind == "frac2":
            tok = _FRACTIONS.get(tok, tok)
        elif best_kind == "any":
            if tok == "\u00ad":
                tok = "-"
            elif _deleted_alone(tok) or tok.isspace():
                continue
        if "&" in tok and best_kind not in _ENTITIES_KEPT:
            tok = tok.replace("&apos;", "'").replace("&quot;", "''")
        tok = tok.lower()
        if tok and tok not in PTB_PUNCTUATIONS:
            out.append(tok)
    return out


# cross-space constructs the chunk lexer cannot see: "5 7/8", spaced dots ". . .", phone numbers
_CROSS = re.compile(r"[0-9] [0-9]{1,4}/[0-9]|\. \.|\([0-9]{3}\) ?[0-9]{3}|[0-9]{3} [0-9]{3}[- .][0-9]{4}")
_FRAC_SPACE = re.compile(r"(?<!\S)([0-9]{1,4}) ([0-9]{1,4}/[0-9]{1,4})(?![0-9/])")
_SPACED_DOTS = re.compile(r"(?<!\S)\.(?: \.){2,4}(?!\S)")
_PHONE = re.compile(r"(?<![0-9])(?:(\([0-9]{3}\)) ?|([0-9]{3})[- .])([0-9]{3}[- .][0-9]{4})(?![0-9])")
#: what follows the last chunk of a caption: a line break and a capital, as in pycocoevalcap's joined file
#: where the next COCO caption starts with a capital letter
_END_FOLLOW = "\nA "


# Java reads &nbsp; as a space, except where AT&T-style capitals glue it to the word before (ON&NBSP;)
_NBSP = re.compile(r"(?<![A-Z])&(?i:nbsp);|(?<=[A-Z])&n(?i:bsp);")
_FAST = re.compile(r"\s*(?:[A-Za-z]+|[0-9]+),?(?:\s+(?:[A-Za-z]+|[0-9]+),?)*\.?\s*")
_FAST_STOP = frozenset(_SPLIT_WORDS)
#: words whose final period the lexer may keep (abbreviations, single letters): leave them to the lexer
_PERIOD_KEEP = frozenset(
    """jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri ala ariz calif colo conn dak fla
    ga ind kan kans ky md mich minn mo mont neb nev okla penn tenn va vt wis wisc wyo inc co cos corp pty ptys ltd plc
    bancorp dept bhd assn univ intl sys ph tel est ext sq ft jr sr bros blvd rd esq etc al seq ark ill mass miss ore
    wash pa la del tex mr mrs ms dr drs prof profs sen sens rep reps atty attys lt col gen messrs gov govs adm rev maj
    sgt cpl pvt mt capt st ste ave pres lieut hon brig cmdr comdr pfc spc supt supts det vs alex wm jos cie cf treas
    invt elec natl mfg mtg no nos prop""".split()
) | frozenset("abcdefghijklmnopqrstuvwxyz")


class PTBTokenizer:
    """Java-free PTB tokenizer with a per-chunk cache (caption vocabularies are small, so most chunks repeat)."""

    def __init__(self, max_cache: int = 1_000_000) -> None:
        self._cache: dict[object, list[str]] = {}
        self._max_cache = max_cache

    def tokenize(self, text: str) -> list[str]:
        """One caption -> its token list, exactly as pycocoevalcap's PTBTokenizer would split it on spaces."""
        if not text:
            return []
        if "&" in text and "nbsp;" in text.lower():
            text = _NBSP.sub(" ", text)  # Java reads the entity as a space
        if not text.isascii():
            text = "".join(" " if (c != "\u00ad" and _droppable(c)) else c for c in text)
        elif _FAST.fullmatch(text):
            # plain words, numbers, commas and one final period (most captions): no lexer needed
            toks = text.lower().replace(",", " ").replace(".", " ").split()
            if _FAST_STOP.isdisjoint(toks) and not (text.rstrip()[-1:] == "." and toks and toks[-1] in _PERIOD_KEEP):
                return toks
        chunks = [c for c in _SEPARATORS.split(text) if c]
        if len(chunks) > 1 and _CROSS.search(" ".join(chunks)):
            return self._tokenize_cross(" ".join(chunks))
        return self._tokenize_chunks(chunks)

    def _tokenize_chunks(self, chunks: list[str], end_follow: str = _END_FOLLOW) -> list[str]:
        out: list[str] = []
        cache = self._cache
        last = len(chunks) - 1
        for k, chunk in enumerate(chunks):
            if chunk[-1] != ".":
                # without a final period, no rule looks past the chunk's end further than "a space follows"
                toks = cache.get(chunk)
                if toks is None:
                    toks = self._lex_plain(chunk)
                    if len(cache) < self._max_cache:
                        cache[chunk] = toks
            else:
                # a final period may belong to an abbreviation or a single letter, depending on the next word
                follow = end_follow if k == last else " " + chunks[k + 1] + " "
                key = (chunk, follow)
                toks = cache.get(key)
                if toks is None:
                    toks = _lex_chunk(chunk, follow)
                    if len(cache) < self._max_cache:
                        cache[key] = toks
            out.extend(toks)
        return out

    @staticmethod
    def _lex_plain(chunk: str) -> list[str]:
        if chunk.isascii() and (chunk.isalpha() or chunk.isdigit()):
            low = chunk.lower()
            cut = _SPLIT_WORDS.get(low)
            return [low] if cut is None else [low[:cut], low[cut:]]
        return _lex_chunk(chunk, " ")

    def _tokenize_cross(self, text: str) -> list[str]:
        """Slow path for the few constructs that span a space; each becomes one token like Java's."""
        text = _SPACED_DOTS.sub("...", text)
        spans: list[tuple[int, int, str]] = []
        for m in _PHONE.finditer(text):
            head = m.group(1) or m.group(2)
            tok = head.replace("(", "-lrb-").replace(")", "-rrb-")
            sep = "\u00a0" if m.group(1) else text[m.start(2) + 3]
            sep = "\u00a0" if sep == " " else sep
            spans.append((m.start(), m.end(), (tok + sep + m.group(3).replace(" ", "\u00a0")).lower()))
        for m in _FRAC_SPACE.finditer(text):
            if not any(a <= m.start() < b for a, b, _ in spans):
                spans.append((m.start(), m.end(), m.group(1) + "\u00a0" + m.group(2)))
        spans.sort()
        out: list[str] = []
        pos = 0
        for a, b, tok in spans:
            if a < pos:
                continue
            seg = [c for c in text[pos:a].split(" ") if c]
            out.extend(self._tokenize_chunks(seg, " " + text[a]))
            out.append(tok)
            pos = b
        out.extend(self._tokenize_chunks([c for c in text[pos:].split(" ") if c]))
        return out


def ptb_tokenize(text: str) -> list[str]:
    """Tokenize one caption like pycocoevalcap's PTBTokenizer (lower-cased, punctuation removed)."""
    return PTBTokenizer().tokenize(text)


def tokenize_many(texts: Iterable[str]) -> list[list[str]]:
    """Tokenize many captions with one shared cache; always one token list per input, in order."""
    tok = PTBTokenizer()
    return [tok.tokenize(t) for t in texts]
