"""The real public files read as they are: counts, ids, raw text, detection and speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from capeval.io import InputWarning, check_candidates, detect_format, load_captions

pytestmark = pytest.mark.shared_data

SYSTEMS = ["m2_transformer.json", "blip2_results_xe.json", "llava-1.5-7b_briefly.json", "llava-1.5-7b_default.json"]


@pytest.fixture(scope="module")
def karpathy(shared_datasets: Path):
    return load_captions(shared_datasets / "coco-karpathy-test" / "coco_test.json")


def test_karpathy_albef_test_file_has_5000_images_and_25010_captions(karpathy) -> None:
    assert karpathy.format == "albef"
    assert len(karpathy) == 25010
    assert len(karpathy.image_ids()) == 5000
    first = karpathy[0]
    assert (first.caption_id, first.image_id) == ("391895#0", "391895")
    assert first.text == "A man with a red helmet on a small moped on a dirt road. "  # trailing space kept raw
    assert len(karpathy.by_id()) == 25010  # ids unique


@pytest.mark.parametrize("name", SYSTEMS)
def test_each_system_output_has_one_caption_for_each_test_image(shared_datasets: Path, karpathy, name: str) -> None:
    path = shared_datasets / "coco-system-outputs" / name
    assert detect_format(path) == "dict"
    cands = load_captions(path)
    assert len(cands) == 5000
    assert set(cands.image_ids()) == set(karpathy.image_ids())
    check_candidates(cands, karpathy, require_all=True)


def test_coco_val2017_annotations_keep_annotation_ids(shared_datasets: Path) -> None:
    caps = load_captions(shared_datasets / "coco-val2017" / "captions_val2017.json")
    assert caps.format == "coco-annotations"
    assert (len(caps), len(caps.image_ids())) == (25014, 5000)
    assert (caps[0].caption_id, caps[0].image_id) == ("38", "179765")
    assert caps[0].text == "A black Honda motorcycle parked in front of a garage."


def test_val2017_and_karpathy_share_593_images(shared_datasets: Path, karpathy) -> None:
    val2017 = load_captions(shared_datasets / "coco-val2017" / "captions_val2017.json")
    assert len(set(val2017.image_ids()) & set(karpathy.image_ids())) == 593


def test_flickr8k_tokens_read_with_one_warning_for_the_bogus_key(shared_datasets: Path) -> None:
    with pytest.warns(InputWarning, match=r"line 6731: malformed Flickr8k key '2258277193_586949ec62\.jpg\.1#0'"):
        caps = load_captions(shared_datasets / "flickr8k" / "Flickr8k.token.txt")
    assert caps.format == "flickr8k-token"
    assert (len(caps), len(caps.image_ids())) == (40460, 8092)
    assert caps.by_id()["2258277193_586949ec62#0"].text == "people waiting for the subway"
    assert caps.by_id()["1000268201_693b08cb0e#4"].text == "A little girl in a pink dress going into a wooden cabin ."


def test_flickr8k_expert_caption_ids_resolve_to_token_captions(shared_datasets: Path) -> None:
    from capeval.io import flickr8k_caption_id

    with pytest.warns(InputWarning):
        caps = load_captions(shared_datasets / "flickr8k" / "Flickr8k.token.txt").by_id()
    for judgments in ("ExpertAnnotations.txt", "CrowdFlowerAnnotations.txt"):
        rows = (shared_datasets / "flickr8k" / judgments).read_text(encoding="utf-8").splitlines()
        ids = {flickr8k_caption_id(r.split("\t")[1]) for r in rows}
        assert ids <= set(caps), judgments
    assert len(ids) > 900
