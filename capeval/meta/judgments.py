"""Human judgments as data: one row per rater x caption, validated, with loaders for the public sets.

The *judgments format* (what `capeval annotate export` writes and what `capeval correlate --human` reads) is a CSV,
TSV, JSONL or JSON list of records with these columns:

| column     | required | meaning                                                                         |
|------------|----------|---------------------------------------------------------------------------------|
| image_id   | yes      | image id (normalised like every capeval id: `COCO_val2014_000000391895.jpg` -> `391895`) |
| caption_id | one of   | id of the judged caption in the candidates or references file                   |
| system     | these    | name of the system that wrote the caption (`reference` for a human reference)   |
| caption    | no       | the judged text; looked up from `caption_id` when absent                        |
| rating     | yes      | the human score (a number; NaN/empty is an error, never silently dropped)       |
| rater      | no       | rater id (default `rater`); several raters of one caption are several rows      |
| scale      | no       | the rating scale as `lo-hi`, e.g. `1-4` or `0-1`; one scale per file            |
| criterion  | no       | what was rated (adequacy, fluency...); several criteria -> pick one to correlate |

Any other column (dimension, timestamps, ...) is kept. Flickr8k-Expert, Flickr8k-CrowdFlower and PASCAL-50S have
their own loaders here / in `capeval.meta.pairwise` because their files use other layouts.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from capeval.errors import InputError
from capeval.records import CaptionSet, normalize_image_id

JUDGMENT_COLUMNS: tuple[str, ...] = ("image_id", "caption_id", "system", "caption", "rating", "rater", "scale")

#: what to do with a judged caption that is one of its own image's references
REFERENCE_POLICIES = {
    "drop": "judged captions that are references of their own image are dropped (Flickr8k-Expert protocol)",
    "remove-from-image-refs": "a judged reference is removed from its image's reference list for every candidate "
                              "of that image (Flickr8k-CrowdFlower protocol)",
    "leave-one-out": "a judged reference is scored against the other references of its image; other candidates "
                     "keep all references",
}


class JudgmentsWarning(UserWarning):
    """Judgments were usable but something was changed or is suspicious (rows dropped, duplicates)."""


@dataclass(frozen=True)
class Scale:
    """A rating scale `lo-hi` (inclusive)."""

    lo: float
    hi: float

    _PATTERN = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:-|\.\.|to|–)\s*(-?\d+(?:\.\d+)?)\s*$")

    @classmethod
    def parse(cls, text: object) -> Scale:
        m = cls._PATTERN.match(str(text))
        if m is None:
            raise ValueError(f"expected a scale like '1-4' or '0-1', got {text!r}")
        lo, hi = float(m[1]), float(m[2])
        if not lo < hi:
            raise ValueError(f"scale {text!r}: the low end must be below the high end")
        return cls(lo, hi)

    def __str__(self) -> str:
        def f(v: float) -> str:
            return str(int(v)) if float(v).is_integer() else str(v)

        return f"{f(self.lo)}-{f(self.hi)}"


@dataclass
class Judgments:
    """Validated human ratings: `frame` has the JUDGMENT_COLUMNS (+ extras), one row per rater x caption.

    `references` travel with sets that ship them (Flickr8k); `reference_policy` says how a judged caption that is
    one of its own image's references is scored (see REFERENCE_POLICIES); `protocol` describes the published
    evaluation protocol of the set, if any.
    """

    frame: pd.DataFrame
    name: str = ""
    scale: Scale | None = None
    references: CaptionSet | None = None
    reference_policy: str = "drop"
    source: str | None = None
    protocol: str = ""
    default_statistic: str = "tau_c"
    warnings: list[str] = field(default_factory=list)
    #: how judged captions become metric documents: "per-system" (each system scored as its own evaluation),
    #: "pooled" (every judged caption one document of one corpus: the CLIPScore protocol) or "auto" (per-system
    #: when every row names a system with at most one caption per image); see capeval.meta.protocols
    unit: str = "auto"

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_images(self) -> int:
        return int(self.frame["image_id"].nunique())

    @property
    def systems(self) -> list[str]:
        s = self.frame["system"].dropna()
        return list(dict.fromkeys(s.astype(str)))

    def with_frame(self, frame: pd.DataFrame) -> Judgments:
        return replace(self, frame=frame.reset_index(drop=True))

    def mean_by_caption(self) -> pd.DataFrame:
        """One row per judged caption (image, caption id or system) with the mean rating and the number of raters."""
        keys = [k for k in ("image_id", "caption_id", "system", "caption") if k in self.frame]
        f = self.frame.copy()
        for k in keys:
            f[k] = f[k].fillna("")
        return (f.groupby(keys, sort=False)["rating"].agg(rating="mean", n_ratings="size").reset_index()
                .replace({k: {"": None} for k in keys}))


# ----------------------------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------------------------


def _line_of(index: int, path: str | None, fmt: str) -> str:
    if fmt in ("csv", "tsv"):
        return f"line {index + 2}"
    if fmt == "jsonl":
        return f"line {index + 1}"
    return f"record {index}"


def validate_frame(frame: pd.DataFrame, *, path: str | None = None, fmt: str = "frame",
                   scale: Scale | str | None = None, on_nan: str = "error",
                   criterion: str | None = None) -> tuple[pd.DataFrame, Scale | None, list[str]]:
    """Check and normalise a judgments table; returns (frame, scale, warnings). Raises InputError naming the file,
    the line and the expected value for: missing columns, non-numeric or NaN ratings (unless on_nan='drop'),
    ratings outside the declared scale, several scales in one file, a row with neither caption_id nor system."""
    notes: list[str] = []
    f = frame.copy()
    f.columns = [str(c).strip() for c in f.columns]
    missing = [c for c in ("image_id", "rating") if c not in f]
    if missing:
        raise InputError(f"missing column(s) {missing}; a judgments file needs image_id, rating and caption_id or "
                         f"system (columns found: {list(f.columns)})", path=path)
    if "caption_id" not in f and "system" not in f:
        raise InputError("needs a caption_id or a system column to say which caption each rating is about "
                         f"(columns found: {list(f.columns)})", path=path)
    if "criterion" in f:  # the annotation app exports one row per rating criterion (adequacy 1-4, fluency 1-5...)
        crits = [str(c) for c in dict.fromkeys(f["criterion"].dropna()) if str(c).strip()]
        if criterion is not None:
            if criterion not in crits:
                raise InputError(f"no ratings for criterion {criterion!r}; the file has: {', '.join(crits) or 'none'}",
                                 path=path)
            f = f[f["criterion"].astype(str) == criterion].reset_index(drop=True)
        elif len(crits) > 1:
            raise InputError(f"ratings of several criteria ({', '.join(crits)}); correlate one at a time: pass "
                             "criterion= / --criterion", path=path)
    elif criterion is not None:
        raise InputError(f"criterion {criterion!r} asked but the file has no criterion column", path=path)
    for c in JUDGMENT_COLUMNS:
        if c not in f:
            f[c] = None
    if len(f) == 0:
        raise InputError("no judgments (the file has no rows)", path=path)

    def _txt(v: object) -> object:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        s = str(v).strip()
        return s or None

    for c in ("caption_id", "system", "caption", "rater", "scale"):  # object dtype keeps None (not NaN) for "absent"
        f[c] = pd.Series([_txt(v) for v in f[c]], index=f.index, dtype=object)
    bad_img = f["image_id"].map(_txt).isna()
    if bad_img.any():
        i = int(np.flatnonzero(bad_img)[0])
        raise InputError("empty image_id; every judgment needs the image it is about", path=path,
                         where=_line_of(i, path, fmt))
    f["image_id"] = f["image_id"].map(normalize_image_id)
    no_ref = f["caption_id"].isna() & f["system"].isna()
    if no_ref.any():
        i = int(np.flatnonzero(no_ref)[0])
        raise InputError(f"{int(no_ref.sum())} row(s) have neither caption_id nor system; expected one of them",
                         path=path, where=_line_of(i, path, fmt))
    rating = pd.to_numeric(f["rating"], errors="coerce")
    literal_nan = f["rating"].map(lambda v: isinstance(v, str) and v.strip().lower() == "nan")  # what --drop-nan drops
    not_num = rating.isna() & f["rating"].map(_txt).notna() & ~literal_nan
    if not_num.any():
        i = int(np.flatnonzero(not_num)[0])
        raise InputError(f"rating {f['rating'].iloc[i]!r} is not a number", path=path, where=_line_of(i, path, fmt))
    nan = rating.isna() | ~np.isfinite(rating.fillna(0).to_numpy(dtype=float))
    if nan.any():
        where = [_line_of(int(i), path, fmt) for i in np.flatnonzero(nan)[:5]]
        msg = f"{int(nan.sum())} empty/NaN rating(s) ({', '.join(where)}{', ...' if nan.sum() > 5 else ''})"
        if on_nan != "drop":
            raise InputError(msg + "; expected a number in every row (pass on_nan='drop' / --drop-nan to drop "
                             "them explicitly)", path=path)
        notes.append(f"{path or 'judgments'}: dropped {msg}")
        warnings.warn(notes[-1], JudgmentsWarning, stacklevel=3)
        f = f[~nan]
        rating = rating[~nan]
    f["rating"] = rating.astype(float)
    f["rater"] = pd.Series([r if r is not None else "rater" for r in f["rater"]], index=f.index, dtype=object)

    declared = {str(s) for s in f["scale"].dropna().unique()}
    scales: set[Scale] = set()
    for s in declared:
        try:
            scales.add(Scale.parse(s))
        except ValueError as exc:
            i = int(np.flatnonzero(f["scale"] == s)[0])
            raise InputError(str(exc), path=path, where=_line_of(i, path, fmt)) from None
    if len(scales) > 1:
        raise InputError(f"several rating scales in one file ({', '.join(sorted(map(str, scales)))}); correlations "
                         "over mixed scales are meaningless: rescale to one scale first", path=path)
    file_scale = next(iter(scales)) if scales else None
    want = Scale.parse(scale) if isinstance(scale, str) else scale
    if want is not None and file_scale is not None and want != file_scale:
        raise InputError(f"scale mismatch: the file declares {file_scale}, expected {want}", path=path)
    use = want or file_scale
    if use is not None:
        out = (f["rating"] < use.lo) | (f["rating"] > use.hi)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise InputError(f"scale mismatch: rating {f['rating'].iloc[i]:g} is outside the scale {use} "
                             f"({int(out.sum())} such row(s))", path=path, where=_line_of(i, path, fmt))
        f["scale"] = pd.Series([str(use)] * len(f), index=f.index, dtype=object)
    if f["rating"].nunique() < 2:
        notes.append(f"{path or 'judgments'}: every rating is {f['rating'].iloc[0]:g}; no correlation is defined")
        warnings.warn(notes[-1], JudgmentsWarning, stacklevel=3)
    key = f["caption_id"].fillna("") + "\x00" + f["system"].fillna("") + "\x00" + f["image_id"] + "\x00" + f["rater"]
    dup = key.duplicated(keep=False)
    if dup.any() and not (f["rater"] == "rater").all():
        notes.append(f"{path or 'judgments'}: {int(key.duplicated().sum())} duplicate rating(s) (same rater, same "
                     "caption); all kept — deduplicate the export if they are double submissions")
        warnings.warn(notes[-1], JudgmentsWarning, stacklevel=3)
    ordered = list(JUDGMENT_COLUMNS) + [c for c in f.columns if c not in JUDGMENT_COLUMNS]
    return f[ordered].reset_index(drop=True), use, notes


# ----------------------------------------------------------------------------------------------------------------
# generic files
# ----------------------------------------------------------------------------------------------------------------


def _read_table(path: Path) -> tuple[pd.DataFrame, str]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            sep = "\t" if suffix == ".tsv" or (suffix == ".txt" and "\t" in path.read_text(errors="replace")[:2000]) \
                else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""]), \
                "tsv" if sep == "\t" else "csv"
        if suffix == ".jsonl":
            rows = []
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"invalid JSON ({exc.msg})", path=str(path), where=f"line {n}") from None
                if not isinstance(obj, dict):
                    raise InputError("expected one JSON object per line", path=str(path), where=f"line {n}")
                rows.append(obj)
            return pd.DataFrame(rows), "jsonl"
        if suffix == ".parquet":
            return pd.read_parquet(path), "parquet"
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "judgments" in data:
                data = data["judgments"]
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise InputError("expected a JSON list of judgment records (or {\"judgments\": [...]})",
                                 path=str(path))
            return pd.DataFrame(data), "json"
    except (UnicodeDecodeError, pd.errors.ParserError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read as a judgments table ({exc})", path=str(path)) from None
    raise InputError(f"unknown judgments file type {suffix!r}; expected .csv, .tsv, .jsonl, .json or .parquet",
                     path=str(path))


def load_judgments(path: str | os.PathLike[str], *, scale: Scale | str | None = None, on_nan: str = "error",
                   name: str | None = None, reference_policy: str = "drop",
                   criterion: str | None = None) -> Judgments:
    """Read a judgments-format file (CSV/TSV/JSONL/JSON/Parquet; see the module docstring) and validate it.
    Files with a `criterion` column holding several criteria need `criterion` to pick one."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such judgments file", path=str(p))
    raw, fmt = _read_table(p)
    frame, sc, notes = validate_frame(raw, path=str(p), fmt=fmt, scale=scale, on_nan=on_nan, criterion=criterion)
    label = name or p.stem + (f"[{criterion}]" if criterion else "")
    return Judgments(frame, name=label, scale=sc, source=str(p), reference_policy=reference_policy, warnings=notes)


def write_judgments(j: Judgments | pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write judgments in the judgments format (.csv/.tsv/.jsonl by extension)."""
    frame = j.frame if isinstance(j, Judgments) else j
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".jsonl":
        with p.open("w", encoding="utf-8") as fh:
            for rec in frame.to_dict(orient="records"):
                fh.write(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                                     for k, v in rec.items()}, ensure_ascii=False) + "\n")
    else:
        frame.to_csv(p, index=False, sep="\t" if p.suffix.lower() == ".tsv" else ",")
    return p


# ----------------------------------------------------------------------------------------------------------------
# Flickr8k
# ----------------------------------------------------------------------------------------------------------------

FLICKR8K_EXPERT_PROTOCOL = (
    "Flickr8k-Expert (CLIPScore protocol, Hessel et al. 2021): the 158 pairs whose candidate is one of its own "
    "image's references are dropped; each remaining pair is expanded into 3 rows, one per expert (N = 16,992); "
    "references = the image's 5 Flickr8k captions; PTB tokenization; Kendall tau-c x 100.")
FLICKR8K_CROWDFLOWER_PROTOCOL = (
    "Flickr8k-CrowdFlower (CLIPScore protocol): rating = fraction of 'yes' votes; a judged caption that is one of "
    "its own image's references is removed from that image's reference list (for every candidate of the image); "
    "N = 47,830; PTB tokenization; Kendall tau-b x 100.")


def _flickr_tokens(tokens: str | os.PathLike[str] | CaptionSet | None) -> CaptionSet:
    if isinstance(tokens, CaptionSet):
        return tokens
    from capeval.io import load_captions

    if tokens is None:
        from capeval import datasets

        tokens = datasets.get("flickr8k-tokens", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the token file's one malformed key is not about the judgments
        return load_captions(tokens, format="flickr8k-token", name="flickr8k")


def _flickr_rows(path: str | os.PathLike[str], ncols: int, what: str) -> list[tuple[int, list[str]]]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such {what} file", path=str(p))
    rows = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\r").split("\t")
        if len(parts) != ncols:
            raise InputError(f"expected {ncols} tab-separated fields ({what} layout), got {len(parts)}", path=str(p),
                             where=f"line {n}")
        rows.append((n, parts))
    return rows


def _caption_lookup(rows: list[tuple[int, list[str]]], tokens: CaptionSet, path: str) -> tuple[list[str], list[str]]:
    from capeval.io import flickr8k_caption_id

    by_id = tokens.by_id()
    ids, texts = [], []
    for n, parts in rows:
        try:
            cid = flickr8k_caption_id(parts[1])
        except ValueError as exc:
            raise InputError(str(exc), path=path, where=f"line {n}") from None
        cap = by_id.get(cid)
        if cap is None:
            raise InputError(f"unknown caption id {parts[1]!r}: not in the Flickr8k token file", path=path,
                             where=f"line {n}")
        ids.append(cid)
        texts.append(cap.text)
    return ids, texts


def load_flickr8k_expert(path: str | os.PathLike[str] | None = None,
                         tokens: str | os.PathLike[str] | CaptionSet | None = None) -> Judgments:
    """Flickr8k `ExpertAnnotations.txt` (image, caption id, 3 expert scores 1-4) as 3 rows per pair (all 5,822 pairs;
    the published protocol's reference filtering happens when scoring, by `reference_policy='drop'`)."""
    if path is None:
        from capeval import datasets

        path = datasets.get("flickr8k-expert", progress=False)
    rows = _flickr_rows(path, 5, "Flickr8k ExpertAnnotations")
    toks = _flickr_tokens(tokens)
    ids, texts = _caption_lookup(rows, toks, str(path))
    recs = []
    for (n, parts), cid, text in zip(rows, ids, texts):
        img = normalize_image_id(parts[0])
        for k, v in enumerate(parts[2:5], start=1):
            try:
                r = float(v)
            except ValueError:
                raise InputError(f"expert score {v!r} is not a number", path=str(path), where=f"line {n}") from None
            recs.append((img, cid, None, text, r, f"expert{k}", "1-4", n))
    frame = pd.DataFrame(recs, columns=[*JUDGMENT_COLUMNS, "line"])
    frame, sc, notes = validate_frame(frame, path=str(path), scale="1-4")
    return Judgments(frame, name="flickr8k-expert", scale=sc, references=toks, reference_policy="drop",
                     source=str(path), protocol=FLICKR8K_EXPERT_PROTOCOL, default_statistic="tau_c", warnings=notes,
                     unit="pooled")


def load_flickr8k_crowdflower(path: str | os.PathLike[str] | None = None,
                              tokens: str | os.PathLike[str] | CaptionSet | None = None) -> Judgments:
    """Flickr8k `CrowdFlowerAnnotations.txt` (image, caption id, fraction yes, #yes, #no); rating = fraction yes."""
    if path is None:
        from capeval import datasets

        path = datasets.get("flickr8k-crowdflower", progress=False)
    rows = _flickr_rows(path, 5, "Flickr8k CrowdFlowerAnnotations")
    toks = _flickr_tokens(tokens)
    ids, texts = _caption_lookup(rows, toks, str(path))
    recs = []
    for (n, parts), cid, text in zip(rows, ids, texts):
        try:
            frac, yes, no = float(parts[2]), int(parts[3]), int(parts[4])
        except ValueError:
            raise InputError("expected fraction-yes, yes count, no count as numbers", path=str(path),
                             where=f"line {n}") from None
        if yes + no == 0 or abs(frac - yes / (yes + no)) > 1e-6:
            raise InputError(f"fraction yes {frac} does not match {yes} yes / {no} no", path=str(path),
                             where=f"line {n}")
        recs.append((normalize_image_id(parts[0]), cid, None, text, frac, "crowd", "0-1", yes, no, n))
    frame = pd.DataFrame(recs, columns=[*JUDGMENT_COLUMNS, "n_yes", "n_no", "line"])
    frame, sc, notes = validate_frame(frame, path=str(path), scale="0-1")
    return Judgments(frame, name="flickr8k-crowdflower", scale=sc, references=toks,
                     reference_policy="remove-from-image-refs", source=str(path),
                     protocol=FLICKR8K_CROWDFLOWER_PROTOCOL, default_statistic="tau_b", warnings=notes,
                     unit="pooled")


# ----------------------------------------------------------------------------------------------------------------
# THumB 1.0 (Kasai et al. 2022)
# ----------------------------------------------------------------------------------------------------------------

#: THumB's rated fields, usable as `criterion`; `human_score` = (P + R) / 2 + Fl + Inc + Con
THUMB_CRITERIA: dict[str, str] = {
    "human_score": "total: (P + R) / 2 + Fl + Inc + Con",
    "P": "precision 1-5 (is the content correct for the image?)",
    "R": "recall 1-5 (how much of the salient content is covered?)",
    "Fl": "fluency penalty (0 or negative)",
    "Inc": "inclusive-language penalty (0 or negative)",
    "Con": "conciseness penalty (0 or negative)",
}
_THUMB_ALIASES = {"flu": "Fl", "fluency": "Fl", "precision": "P", "recall": "R", "conciseness": "Con",
                  "inclusive": "Inc", "total": "human_score", "score": "human_score"}
THUMB_PROTOCOL = (
    "THumB 1.0 (Kasai et al. 2022, NAACL): 500 COCO Karpathy-test images x 5 systems (Up-Down, Unified-VLP, "
    "VinVL-base, VinVL-large, and Human: one COCO reference rated like a system); references = the image's other 4 "
    "COCO captions (mscoco_references.json); each system is scored as its own evaluation (its 500 captions against "
    "those references, CIDEr-D document frequencies from its 500 images: the per-system unit, as pycocoevalcap run "
    "per system); caption level: Kendall tau-b over all 2,500 rows; system level: each system's corpus score "
    "against its mean human score.")


def _read_jsonl(path: Path, what: str) -> list[tuple[int, dict[str, object]]]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the {what} file ({exc})", path=str(path)) from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg}); expected one {what} object per line", path=str(path),
                             where=f"line {n}") from None
        if not isinstance(obj, dict):
            raise InputError(f"expected one {what} object per line", path=str(path), where=f"line {n}")
        rows.append((n, obj))
    return rows


def load_thumb_references(path: str | os.PathLike[str] | None = None) -> CaptionSet:
    """THumB's `mscoco_references.json` (one `{seg_id, set_id, refs: [4 captions]}` object a line) as a CaptionSet;
    caption ids are `<seg_id>#<k>`."""
    from capeval.records import Caption

    if path is None:
        from capeval import datasets

        path = datasets.get_file("thumb", "mscoco_references.json", progress=False)
    p = Path(path)
    caps: list[Caption] = []
    for n, obj in _read_jsonl(p, "THumB reference"):
        refs = obj.get("refs")
        if "seg_id" not in obj or not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise InputError("expected {seg_id, set_id, refs: [captions]} with at least one caption", path=str(p),
                             where=f"line {n}")
        img = normalize_image_id(obj["seg_id"])
        caps += [Caption(f"{img}#{k}", img, r, "thumb-references") for k, r in enumerate(refs)]
    return CaptionSet(caps, name="thumb-references", path=str(p))


def load_thumb(path: str | os.PathLike[str] | None = None,
               references: str | os.PathLike[str] | CaptionSet | None = None, *,
               criterion: str | None = None) -> Judgments:
    """THumB 1.0 `mscoco_THumB-1.0.jsonl` (one row per system x image: SYS, seg_id, hyp, P, R, Fl, Inc, Con,
    human_score) with its references. `criterion` picks what to correlate (default `human_score`; P, R, Fl, Inc,
    Con)."""
    if path is None:
        from capeval import datasets

        path = datasets.get_file("thumb", "mscoco_THumB-1.0.jsonl", progress=False)
    crit = criterion or "human_score"
    crit = _THUMB_ALIASES.get(crit.lower(), crit) if crit not in THUMB_CRITERIA else crit
    if crit not in THUMB_CRITERIA:
        raise InputError(f"unknown THumB criterion {criterion!r}; expected one of: {', '.join(THUMB_CRITERIA)}")
    p = Path(path)
    if not p.is_file():
        raise InputError("no such THumB file", path=str(p))
    refs = references if isinstance(references, CaptionSet) else load_thumb_references(
        references if references is not None else (p.parent / "mscoco_references.json"
                                                   if (p.parent / "mscoco_references.json").is_file() else None))
    recs = []
    for n, obj in _read_jsonl(p, "THumB rating"):
        missing = [k for k in ("SYS", "seg_id", "hyp", crit) if k not in obj]
        if missing:
            raise InputError(f"missing field(s) {missing}; expected SYS, seg_id, hyp and {crit}", path=str(p),
                             where=f"line {n}")
        img = normalize_image_id(obj["seg_id"])
        recs.append((img, f"{obj['SYS']}:{img}", str(obj["SYS"]), str(obj["hyp"]), obj[crit], "thumb",
                     "1-5" if crit in ("P", "R") else None, n, *(obj.get(k) for k in ("P", "R", "Fl", "Inc", "Con",
                                                                                       "human_score"))))
    frame = pd.DataFrame(recs, columns=[*JUDGMENT_COLUMNS, "line", "P", "R", "Fl", "Inc", "Con", "human_score"])
    frame, sc, notes = validate_frame(frame, path=str(p), fmt="jsonl")
    name = "thumb" if crit == "human_score" else f"thumb[{crit}]"

    def norm(t: str) -> str:
        return " ".join(t.lower().strip().rstrip(".").split())

    ref_sets = {img: {norm(r) for r in texts} for img, texts in refs.texts_by_image().items()}
    echoed = frame[[norm(str(t)) in ref_sets.get(img, set()) for img, t in zip(frame["image_id"], frame["caption"])]]
    echo = ""
    if len(echoed):
        per = echoed.groupby("system").size().to_dict()
        echo = (" Judged captions that also appear among their own image's references (ignoring case and a final "
                "period), scored as published, which favours them on n-gram metrics: "
                + ", ".join(f"{s} {per[s]}" for s in dict.fromkeys(frame["system"]) if s in per) + ".")
    return Judgments(frame, name=name, scale=sc, references=refs, reference_policy="drop", source=str(p),
                     protocol=THUMB_PROTOCOL + f" Rating: {crit} ({THUMB_CRITERIA[crit]})." + echo,
                     default_statistic="tau_b", warnings=notes, unit="per-system")


# ----------------------------------------------------------------------------------------------------------------
# EXPERT / Polos-style JSON lists ({imgid, mt, refs, score}) and Composite's CSV
# ----------------------------------------------------------------------------------------------------------------

#: the published protocol of each set distributed as an {imgid, mt, refs, score} list (hjkim811/EXPERT annotations/)
EXPERT_JSON_PROTOCOLS: dict[str, tuple[str, str]] = {
    "nebula": ("tau_c", "Nebula (Matsuda et al. 2024, DENEB), test split as EXPERT distributes it (3,298 records): "
                        "ratings in [0, 1], each record with its own reference list (as shipped); every record "
                        "scored as one document of one pooled corpus (CLIPScore protocol); Kendall tau-c."),
    "polaris": ("tau_c", "Polaris (Wada et al. 2024, Polos): human ratings in [0, 1] of machine captions, each record "
                         "with its own reference list (as shipped); pooled corpus (CLIPScore protocol); Kendall "
                         "tau-c."),
    "composite": ("tau_c", "Composite (Aditya et al. 2015, as distributed by hjkim811/EXPERT): correctness ratings of "
                           "Flickr8k, Flickr30k and COCO captions, each record with its own reference list (as "
                           "shipped); pooled corpus (CLIPScore protocol); Kendall tau-c."),
}


def load_expert_json(path: str | os.PathLike[str], *, name: str | None = None,
                     default_statistic: str | None = None, protocol: str | None = None) -> Judgments:
    """A JSON list of `{imgid, mt, refs, score}` records (the shape EXPERT and Polos publish Flickr8k, Nebula,
    Polaris, PASCAL-50S and Composite in). Each record carries its reference list; records of one image with
    different reference lists become separate reference groups (`<imgid>~<k>`). Scored with the pooled unit."""
    from capeval.records import Caption

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read an {{imgid, mt, refs, score}} JSON list ({exc})", path=str(p)) from None
    if not isinstance(data, list) or not data:
        raise InputError("expected a non-empty JSON list of {imgid, mt, refs, score} records", path=str(p))
    key = name or p.stem
    base = next((k for k in EXPERT_JSON_PROTOCOLS if key.startswith(k)), None)
    stat, proto = EXPERT_JSON_PROTOCOLS.get(base or "", ("tau_c", f"{key}: {{imgid, mt, refs, score}} list; each "
                                                         "record with its own references; pooled corpus; Kendall "
                                                         "tau-c."))
    groups: dict[tuple[str, tuple[str, ...]], str] = {}
    per_img: dict[str, int] = {}
    ref_caps: list[Caption] = []
    recs = []
    for i, e in enumerate(data):
        where = f"record {i}"
        if not isinstance(e, dict) or not all(k in e for k in ("imgid", "mt", "refs", "score")):
            raise InputError("expected an object with imgid, mt, refs and score", path=str(p), where=where)
        refs = e["refs"]
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise InputError("refs must be a non-empty list of strings", path=str(p), where=where)
        raw_img = normalize_image_id(e["imgid"])
        g = (raw_img, tuple(refs))
        img = groups.get(g)
        if img is None:
            k = per_img.get(raw_img, 0)
            per_img[raw_img] = k + 1
            img = groups[g] = raw_img if k == 0 else f"{raw_img}~{k}"
            ref_caps += [Caption(f"{img}#ref{j}", img, r, key) for j, r in enumerate(refs)]
        recs.append((img, f"{key}:{i}", None, str(e["mt"]), e["score"], "rater", None, i))
    frame = pd.DataFrame(recs, columns=[*JUDGMENT_COLUMNS, "record"])
    frame, sc, notes = validate_frame(frame, path=str(p), fmt="json")
    return Judgments(frame, name=key, scale=sc, references=CaptionSet(ref_caps, name=f"{key}-references"),
                     reference_policy="drop", source=str(p), protocol=protocol or proto,
                     default_statistic=default_statistic or stat, warnings=notes, unit="pooled")


COMPOSITE_CSV_PROTOCOL = (
    "Composite (Aditya et al. 2015) AMT correctness files `{8k,30k,coco}_correctness.csv`: ';'-separated, a header "
    "row, the image URL in column 28 (1-based), then k candidate captions and their k ratings 1-5 (k = 3 for "
    "Flickr8k, 4 for Flickr30k and COCO); references come from the dataset's Karpathy file (--refs); a judged "
    "caption that is one of its own image's references is dropped; pooled corpus (CLIPScore protocol); Kendall "
    "tau-c.")


def _composite_image_id(url: str, split: str) -> str:
    base = url.strip().rsplit("/", 1)[-1]
    if split == "coco":
        return normalize_image_id(base)
    return normalize_image_id(base.split("_")[0].split(".")[0])


def load_composite_csv(path: str | os.PathLike[str], *, split: str | None = None) -> Judgments:
    """One of Composite's AMT correctness CSVs (see COMPOSITE_CSV_PROTOCOL). `split` (flickr8k, flickr30k, coco) is
    read from the file name (`8k_`, `30k_`, `coco_`) when not given. Trailing rows without the candidate columns
    (the files end with two summary rows) are skipped with a note."""
    import csv

    p = Path(path)
    if split is None:
        low = p.name.lower()
        split = "flickr8k" if low.startswith("8k") else "flickr30k" if low.startswith("30k") else \
            "coco" if low.startswith("coco") else None
        if split is None:
            raise InputError("cannot tell the Composite split from the file name; expected 8k_*, 30k_* or coco_* "
                             "or split=flickr8k|flickr30k|coco", path=str(p))
    k = 3 if split == "flickr8k" else 4
    try:
        lines = list(csv.reader(p.read_text(encoding="utf-8", errors="strict").splitlines(), delimiter=";"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read a Composite CSV ({exc})", path=str(p)) from None
    recs, skipped = [], 0
    for n, row in enumerate(lines[1:], start=2):
        if len(row) < 28 + 2 * k or not row[27].strip():
            skipped += 1
            continue
        img = _composite_image_id(row[27], split)
        for j in range(k):
            recs.append((img, None, f"candidate{j + 1}", row[28 + j], row[28 + k + j], "amt", "1-5", n))
    if not recs:
        raise InputError(f"no rating rows: expected ';'-separated rows with the image URL in column 28 and {k} "
                         f"captions then {k} ratings", path=str(p))
    frame = pd.DataFrame(recs, columns=[*JUDGMENT_COLUMNS, "line"])
    frame, sc, notes = validate_frame(frame, path=str(p), fmt="csv")
    if skipped:
        notes.append(f"{p.name}: skipped {skipped} row(s) without the {2 * k} candidate/rating columns")
    return Judgments(frame, name=f"composite-{split}", scale=sc, reference_policy="drop", source=str(p),
                     protocol=COMPOSITE_CSV_PROTOCOL, default_statistic="tau_c", warnings=notes, unit="pooled")


def _registered_expert(name: str, filename: str) -> Callable[..., Judgments]:
    def load(**_: object) -> Judgments:
        from capeval import datasets

        return load_expert_json(datasets.get_file(name, filename, progress=False), name=name)

    load.__doc__ = f"The registered `{name}` set ({filename}, fetched and verified through the registry)."
    return load


REGISTERED_JUDGMENTS: dict[str, Callable[..., Judgments]] = {
    "flickr8k-expert": load_flickr8k_expert, "flickr8k-crowdflower": load_flickr8k_crowdflower, "thumb": load_thumb,
    "nebula": _registered_expert("nebula", "nebula_test.json"),
    "polaris": _registered_expert("polaris", "polaris_test.json"),
    "composite": _registered_expert("composite", "composite.json"),
}
#: registered sets that take a `criterion` argument
_CRITERION_LOADERS = {"thumb"}

def resolve_judgments(spec: str | os.PathLike[str] | Judgments, *, scale: Scale | str | None = None,
                      on_nan: str = "error", criterion: str | None = None) -> Judgments:
    """A Judgments object from a registry name (flickr8k-expert, flickr8k-crowdflower) or a judgments-format file."""
    if isinstance(spec, Judgments):
        return spec
    key = os.fspath(spec)
    if key in REGISTERED_JUDGMENTS and not Path(key).exists():
        if criterion is not None and key not in _CRITERION_LOADERS:
            raise InputError(f"{key} has one rating per caption; --criterion applies to sets with several "
                             f"({', '.join(sorted(_CRITERION_LOADERS))} and annotation exports)")
        j = REGISTERED_JUDGMENTS[key](criterion=criterion) if key in _CRITERION_LOADERS else REGISTERED_JUDGMENTS[key]()
        if scale is not None and Scale.parse(str(scale)) != j.scale:
            raise InputError(f"scale mismatch: {key} is rated on {j.scale}, expected {scale}")
        return j
    if Path(key).name in ("ExpertAnnotations.txt",):
        return load_flickr8k_expert(key)
    if Path(key).name in ("CrowdFlowerAnnotations.txt",):
        return load_flickr8k_crowdflower(key)
    if Path(key).name.startswith("mscoco_THumB") and Path(key).suffix == ".jsonl":
        return load_thumb(key, criterion=criterion)
    if Path(key).name.endswith("_correctness.csv"):
        return load_composite_csv(key)
    if Path(key).suffix.lower() == ".json" and Path(key).is_file() and _looks_like_expert_json(Path(key)):
        return load_expert_json(key)
    if not Path(key).exists():
        raise InputError(f"no such judgments file, and not a registered set; expected a file or one of: "
                         f"{', '.join(REGISTERED_JUDGMENTS)}", path=key)
    return load_judgments(key, scale=scale, on_nan=on_nan, criterion=criterion)


def _looks_like_expert_json(p: Path) -> bool:
    """An {imgid, mt, refs, score} list (peeks at the first record only)."""
    head = p.read_text(encoding="utf-8", errors="replace")[:4000]
    return head.lstrip().startswith("[") and all(f'"{k}"' in head for k in ("imgid", "mt", "refs", "score"))


def judgments_from_records(records: Iterable[dict[str, object]] | pd.DataFrame, *, name: str = "",
                           scale: Scale | str | None = None, references: CaptionSet | None = None,
                           reference_policy: str = "drop") -> Judgments:
    """Validated Judgments from in-memory records (e.g. the annotation app's export before it is written)."""
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    f, sc, notes = validate_frame(frame, scale=scale)
    return Judgments(f, name=name, scale=sc, references=references, reference_policy=reference_policy,
                     warnings=notes)


__all__ = [
    "FLICKR8K_CROWDFLOWER_PROTOCOL", "FLICKR8K_EXPERT_PROTOCOL", "JUDGMENT_COLUMNS", "REFERENCE_POLICIES",
    "Judgments", "JudgmentsWarning", "Scale", "judgments_from_records", "load_flickr8k_crowdflower",
    "load_flickr8k_expert", "load_judgments", "resolve_judgments", "validate_frame", "write_judgments",
    "COMPOSITE_CSV_PROTOCOL", "EXPERT_JSON_PROTOCOLS", "THUMB_CRITERIA", "THUMB_PROTOCOL", "load_composite_csv",
    "load_expert_json", "load_thumb", "load_thumb_references",
]

