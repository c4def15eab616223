"""`--drop-nan` / on_nan='drop' drops a literal `nan` rating as it drops an empty one; without it both are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from capeval.errors import InputError
from capeval.meta.judgments import load_judgments


def test_literal_nan_is_a_missing_rating(tmp_path: Path) -> None:
    p = tmp_path / "j.csv"
    p.write_text("image_id,caption_id,caption,rating\n1,1#0,a dog,3\n2,2#0,a cat,nan\n3,3#0,a cow,\n4,4#0,a pig,NaN\n"
                 "5,5#0,a hen,4\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="3 empty/NaN rating"):
        j = load_judgments(p, on_nan="drop")
    assert len(j) == 2
    with pytest.raises(InputError, match=r"3 empty/NaN rating\(s\).*--drop-nan"):
        load_judgments(p)
    p.write_text("image_id,caption_id,caption,rating\n1,1#0,a dog,three\n", encoding="utf-8")
    with pytest.raises(InputError, match="rating 'three' is not a number"):
        load_judgments(p, on_nan="drop")
