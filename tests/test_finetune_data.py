"""InternVL tiling, `prepare` (conversation JSONL from real COCO references), format guard, bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from capeval.errors import InputError
from finetune.tiling import TileSpec, closest_grid, tile_image, to_pixel_values


def test_coco_sized_image_gets_3x2_grid_plus_thumbnail_1792_tokens():
    spec = TileSpec()  # 448 px, max_num 6, thumbnail, patch 14, downsample 0.5
    tiles = tile_image(Image.new("RGB", (640, 480), "red"), spec)
    assert closest_grid(640, 480, spec) == (3, 2)
    assert len(tiles) == 7 and all(t.size == (448, 448) for t in tiles)
    assert spec.tokens_per_tile == 256 and len(tiles) * spec.tokens_per_tile == 1792


def test_single_tile_has_no_thumbnail_and_max_num_caps_the_grid():
    assert len(tile_image(Image.new("RGB", (500, 500)), TileSpec())) == 1
    assert len(tile_image(Image.new("RGB", (4000, 500)), TileSpec(max_num=12))) == 9  # 8x1 grid + thumbnail
    assert closest_grid(4000, 500, TileSpec(max_num=4)) == (4, 1)


def test_tiles_are_cut_row_major_and_normalised_with_imagenet_stats():
    im = Image.new("RGB", (56, 28))
    im.paste((255, 0, 0), (0, 0, 28, 28))
    im.paste((0, 0, 255), (28, 0, 56, 28))
    spec = TileSpec(image_size=28, max_num=2)
    pix = to_pixel_values(tile_image(im, spec), spec)
    assert pix.shape == (3, 3, 28, 28)
    assert pix[0, 0].mean() == pytest.approx((1 - 0.485) / 0.229, abs=1e-3)  # left tile red
    assert pix[1, 2].mean() == pytest.approx((1 - 0.406) / 0.225, abs=1e-3)  # right tile blue


@pytest.fixture()
def coco_images(tmp_path, shared_datasets):
    refs = shared_datasets / "coco-karpathy-test" / "coco_test.json"
    items = json.loads(refs.read_text())[:3]
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    for i, it in enumerate(items):
        Image.new("RGB", (40, 30), (60 * i, 0, 0)).save(img_dir / Path(it["image"]).name)
    return refs, img_dir, items


def test_prepare_writes_one_conversation_per_caption(tmp_path, coco_images):
    from finetune.data import prepare, read_conversations

    refs, img_dir, items = coco_images
    with pytest.raises(InputError, match=r"4997 of 5000 images have no file"):
        prepare(refs, img_dir, tmp_path / "train.jsonl")
    res = prepare(refs, img_dir, tmp_path / "train.jsonl", allow_missing=True, prompt="Describe the image briefly.")
    assert res.n_captions == sum(len(it["caption"]) for it in items) and res.n_images == 3
    first = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])
    assert first["conversations"][0] == {"from": "human", "value": "<image>\nDescribe the image briefly."}
    assert first["conversations"][1]["value"] == items[0]["caption"][0].strip()
    samples = read_conversations(tmp_path / "train.jsonl")
    assert {s.image_id for s in samples} == {"391895", "60623", "483108"} or len({s.image_id for s in samples}) == 3


def test_prepare_uses_audit_references_keeps_ids_and_mixes_general_data(tmp_path, coco_images):
    from capeval.io import load_captions
    from finetune.data import prepare, read_conversations

    refs, img_dir, items = coco_images
    caps = [c for c in load_captions(refs).captions if c.image_id in {"391895"}]
    (tmp_path / "keep.txt").write_text("\n".join(c.caption_id for c in caps[:2]))
    from capeval.io import write_coco_annotations
    from capeval.records import CaptionSet

    audit = tmp_path / "audit"
    audit.mkdir()
    fixed_text = "A man wearing a red helmet rides a small moped on a dirt road."
    write_coco_annotations(CaptionSet.from_mapping({"391895": [fixed_text]}), audit / "references.fixed.json")
    res = prepare(refs, img_dir, tmp_path / "f.jsonl", audit=audit, use="fixed")
    assert res.n_captions == 1 and fixed_text in (tmp_path / "f.jsonl").read_text()
    with pytest.raises(InputError, match="references.kept.json not found"):
        prepare(refs, img_dir, tmp_path / "k.jsonl", audit=audit, use="kept")
    general = tmp_path / "general.jsonl"
    general.write_text(json.dumps({"id": "g0", "conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"}]}) + "\n")
    res = prepare(refs, img_dir, tmp_path / "t.jsonl", keep_ids=tmp_path / "keep.txt", general=general, mix_ratio=1.0,
                  allow_missing=True)
    assert res.n_captions == 2 and res.n_general == 2
    samples = read_conversations(tmp_path / "t.jsonl")
    assert sorted(s.image is None for s in samples) == [False, False, True, True]


def test_bad_training_data_gets_clear_errors(tmp_path):
    from finetune.data import read_conversations

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty.jsonl: training data file is empty"):
        read_conversations(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"image": "nope.jpg", "conversations": [{"from": "human", "value": "<image>\nHi"}, {"from": "gpt", "value": "A cat."}]}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl, line 1, field 'image': image file not found"):
        read_conversations(bad)
    (tmp_path / "x.jsonl").write_text("{not json\n")
    with pytest.raises(InputError, match=r"x.jsonl, line 1: not valid JSON"):
        read_conversations(tmp_path / "x.jsonl")
    with pytest.raises(InputError, match="training data file not found"):
        read_conversations(tmp_path / "missing.jsonl")


def _jsonl(path, prompt, answers):
    from finetune.data import conversation

    path.write_text("\n".join(json.dumps(conversation("img.jpg", prompt, a, str(i))) for i, a in enumerate(answers)) + "\n")
    return path


def test_format_guard_passes_matching_pair_and_flags_mismatch(tmp_path, shared_datasets):
    from capeval.io import load_captions
    from finetune.format_guard import check_format
    from finetune.models import DEFAULT_PROMPT

    refs_path = shared_datasets / "coco-karpathy-test" / "coco_test.json"
    caps = load_captions(refs_path).captions
    train_caps = [c.text.strip() for c in caps[:2000]]  # COCO-style targets, other images than most eval refs
    match = check_format(_jsonl(tmp_path / "ok.jsonl", DEFAULT_PROMPT, train_caps), DEFAULT_PROMPT, refs_path)
    assert match.ok, [(c.name, c.train, c.eval) for c in match.warnings]

    verbose = [
        f"the image shows {c.text.strip().lower().rstrip('.')} and the scene also includes several other objects in "
        "the background which suggest an everyday setting in the city with people going about their day"
        for c in caps[:300]
    ]
    bad = check_format(_jsonl(tmp_path / "bad.jsonl", "Describe this image in detail.", verbose), DEFAULT_PROMPT, refs_path)
    names = {c.name.split(" (")[0] for c in bad.warnings}
    assert {"answer length", "starts with a capital", "ends with . ! or ?", "prompt wording"} <= names
    length = next(c for c in bad.checks if c.name.startswith("answer length"))
    assert length.train > 2 * length.eval and "x the length" in length.message


def test_format_guard_rejects_empty_inputs(tmp_path, shared_datasets):
    from finetune.format_guard import check_format

    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(InputError, match="training data file is empty"):
        check_format(tmp_path / "e.jsonl", "P", shared_datasets / "coco-karpathy-test" / "coco_test.json")
