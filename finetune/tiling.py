"""InternVL dynamic-resolution tiling: 448 px tiles, a grid chosen by aspect ratio up to `max_num`, a thumbnail.

A faithful port of InternVL's `dynamic_preprocess` / `build_transform` (internvl_chat/internvl/train/dataset.py)
in PIL + numpy only, so captioning and training need no torchvision. Each tile becomes
`(image_size / patch_size)^2 * downsample_ratio^2` image tokens (256 for 448 px tiles, patch 14, ratio 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TileSpec:
    """How images become tiles and tokens (InternVL2 defaults: 448 px, max 6 tiles + thumbnail, 256 tokens/tile)."""

    image_size: int = 448
    patch_size: int = 14
    downsample_ratio: float = 0.5
    min_num: int = 1
    max_num: int = 6
    use_thumbnail: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def tokens_per_tile(self) -> int:
        side = self.image_size // self.patch_size
        return int(side * side * self.downsample_ratio**2)


def target_ratios(min_num: int, max_num: int) -> list[tuple[int, int]]:
    """All (cols, rows) grids with min_num <= cols*rows <= max_num, ordered by tile count (as InternVL)."""
    ratios = {
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    }
    return sorted(ratios, key=lambda r: r[0] * r[1])


def closest_grid(width: int, height: int, spec: TileSpec) -> tuple[int, int]:
    """The grid whose aspect ratio is closest to the image's; ties go to the larger grid when the image
    covers more than half of it (InternVL's `find_closest_aspect_ratio`)."""
    aspect = width / height
    area = width * height
    best_diff, best = float("inf"), (1, 1)
    for ratio in target_ratios(spec.min_num, spec.max_num):
        diff = abs(aspect - ratio[0] / ratio[1])
        if diff < best_diff:
            best_diff, best = diff, ratio
        elif diff == best_diff and area > 0.5 * spec.image_size * spec.image_size * ratio[0] * ratio[1]:
            best = ratio
    return best


def tile_image(image: Image.Image, spec: TileSpec) -> list[Image.Image]:
    """Cut an image into grid tiles (row-major) plus a thumbnail when there is more than one tile."""
    image = image.convert("RGB")
    cols, rows = closest_grid(image.width, image.height, spec)
    size = spec.image_size
    resized = image.resize((size * cols, size * rows), Image.Resampling.BICUBIC)
    tiles = [resized.crop((c * size, r * size, (c + 1) * size, (r + 1) * size)) for r in range(rows) for c in range(cols)]
    if spec.use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((size, size), Image.Resampling.BICUBIC))
    return tiles


def to_pixel_values(tiles: list[Image.Image], spec: TileSpec) -> np.ndarray:
    """Tiles -> float32 array (n_tiles, 3, H, W), scaled to [0, 1] and ImageNet-normalised."""
    size = spec.image_size
    arrs = []
    for tile in tiles:
        if tile.size != (size, size):
            tile = tile.resize((size, size), Image.Resampling.BICUBIC)
        a = np.asarray(tile, dtype=np.float32) / 255.0
        a = (a - np.asarray(spec.mean, dtype=np.float32)) / np.asarray(spec.std, dtype=np.float32)
        arrs.append(a.transpose(2, 0, 1))
    return np.stack(arrs).astype(np.float32)


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB, with a clear error when it is missing or unreadable."""
    from capeval.errors import InputError

    p = Path(path)
    if not p.is_file():
        raise InputError("image file not found", path=str(p))
    try:
        with Image.open(p) as im:
            return im.convert("RGB")
    except Exception as exc:  # PIL raises several types for corrupt files
        raise InputError(f"cannot read image ({exc.__class__.__name__}: {exc})", path=str(p)) from exc


def image_pixels(image: Image.Image, spec: TileSpec) -> np.ndarray:
    """One image -> pixel values of its tiles (n_tiles, 3, H, W)."""
    return to_pixel_values(tile_image(image, spec), spec)
