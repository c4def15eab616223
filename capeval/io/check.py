"""Consistency checks between a system's candidates and the references it is scored against."""

from __future__ import annotations

from capeval.errors import InputError
from capeval.records import CaptionSet


def _sample(ids: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


def check_candidates(cands: CaptionSet, refs: CaptionSet, *, require_all: bool = False) -> None:
    """Raise InputError when a candidate's image has no references or an image has several candidates
    (metrics would silently drop or double-count them); with `require_all`, also when a reference image
    has no candidate (a partial test set changes every corpus score)."""
    ref_images = refs.by_image()
    by_image = cands.by_image()
    where = cands.path or cands.name or "candidates"
    ref_name = refs.path or refs.name or "the references"
    missing = [img for img in by_image if img not in ref_images]
    if missing:
        raise InputError(f"{len(missing)} of {len(by_image)} candidate images have no reference captions in "
                         f"{ref_name}: {_sample(missing)}; expected every candidate image id in the references "
                         "(ids are compared after normalisation, e.g. 'COCO_val2014_000000391895.jpg' -> '391895')",
                         path=where)
    dups = [img for img, caps in by_image.items() if len(caps) > 1]
    if dups:
        first = by_image[dups[0]]
        raise InputError(f"{len(dups)} images have more than one candidate caption: {_sample(dups)} "
                         f"(image {dups[0]!r} has {len(first)}: {_sample([c.caption_id for c in first], 3)}); "
                         "expected exactly one candidate per image", path=where)
    if require_all:
        absent = [img for img in ref_images if img not in by_image]
        if absent:
            raise InputError(f"{len(absent)} of {len(ref_images)} reference images have no candidate: "
                             f"{_sample(absent)}; expected a candidate for every reference image", path=where)
