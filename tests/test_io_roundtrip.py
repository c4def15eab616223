"""Property: any captions written by the COCO writers read back identically (ids, image ids, raw text)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from capeval.io import load_captions, write_coco_annotations, write_coco_results
from capeval.records import Caption, CaptionSet

_text = st.text(min_size=1, max_size=40).filter(lambda t: not t.isspace())
_image = st.one_of(st.integers(min_value=0, max_value=10**9).map(str),
                   st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_image, st.lists(_text, min_size=1, max_size=4), min_size=1, max_size=8))
def test_coco_annotations_round_trip_any_text(groups: dict[str, list[str]]) -> None:
    caps = CaptionSet([Caption(f"{img}#{k}", img, t) for img, texts in groups.items() for k, t in enumerate(texts)])
    with tempfile.TemporaryDirectory() as d:
        back = load_captions(write_coco_annotations(caps, Path(d) / "a.json"))
    assert [(c.caption_id, c.image_id, c.text) for c in back] == [(c.caption_id, c.image_id, c.text) for c in caps]


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_image, _text, min_size=1, max_size=8))
def test_coco_results_round_trip_any_text(single: dict[str, str]) -> None:
    caps = CaptionSet.from_mapping(single)
    with tempfile.TemporaryDirectory() as d:
        back = load_captions(write_coco_results(caps, Path(d) / "r.json"))
    assert [(c.caption_id, c.image_id, c.text) for c in back] == [(c.caption_id, c.image_id, c.text) for c in caps]
