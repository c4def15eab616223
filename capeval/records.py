"""Caption records with stable ids: the single data model every reader, metric, audit and rating points back to."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

_COCO_PREFIX = re.compile(r"^COCO_(?:train|val|test)20\d\d_", re.IGNORECASE)
_IMAGE_EXT = re.compile(r"\.(?:jpe?g|png|gif|bmp|webp|tiff?)$", re.IGNORECASE)


def normalize_image_id(raw: object) -> str:
    """Canonical image id: `COCO_val2014_000000391895.jpg`, `val2014/...391895.jpg`, 391895 and '391895' -> '391895'.

    Non-COCO names keep their stem (Flickr8k `1000268201_693b08cb0e.jpg` -> `1000268201_693b08cb0e`).
    """
    if isinstance(raw, bool):
        raise TypeError("image id must be a string or an integer, not a boolean")
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    s = str(raw).strip()
    s = s.replace("\\", "/").rsplit("/", 1)[-1]
    s = _IMAGE_EXT.sub("", s)
    s = _COCO_PREFIX.sub("", s)
    if s.isdigit():
        return str(int(s))
    return s


@dataclass(frozen=True, slots=True)
class Caption:
    """One caption. `caption_id` is stable: the annotation id where the input has one, else `<image_id>#<k>`."""

    caption_id: str
    image_id: str
    text: str
    source: str = ""


@dataclass
class CaptionSet:
    """An ordered collection of captions from one file or system, with lookups by image and by caption id."""

    captions: list[Caption]
    name: str = ""
    path: str | None = None
    format: str | None = None
    _by_image: dict[str, list[Caption]] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.captions)

    def __iter__(self) -> Iterator[Caption]:
        return iter(self.captions)

    def __getitem__(self, i: int) -> Caption:
        return self.captions[i]

    def by_image(self) -> dict[str, list[Caption]]:
        """Captions grouped by image id, images in first-seen order, captions in file order."""
        if self._by_image is None:
            groups: dict[str, list[Caption]] = {}
            for c in self.captions:
                groups.setdefault(c.image_id, []).append(c)
            self._by_image = groups
        return self._by_image

    def image_ids(self) -> list[str]:
        return list(self.by_image())

    def texts_by_image(self) -> dict[str, list[str]]:
        return {img: [c.text for c in caps] for img, caps in self.by_image().items()}

    def by_id(self) -> dict[str, Caption]:
        return {c.caption_id: c for c in self.captions}

    def without(self, caption_ids: Iterable[str]) -> CaptionSet:
        """A copy without the listed caption ids (e.g. references flagged by the audit)."""
        drop = set(caption_ids)
        return CaptionSet([c for c in self.captions if c.caption_id not in drop], name=self.name, path=self.path,
                          format=self.format)

    def subset_images(self, image_ids: Iterable[str]) -> CaptionSet:
        keep = set(image_ids)
        return CaptionSet([c for c in self.captions if c.image_id in keep], name=self.name, path=self.path,
                          format=self.format)

    @classmethod
    def from_mapping(cls, mapping: Mapping[object, str | Sequence[str]], name: str = "") -> CaptionSet:
        """Build from `{image_id: caption}` or `{image_id: [captions]}`; ids become `<image_id>#<k>`."""
        caps: list[Caption] = []
        for raw_id, value in mapping.items():
            img = normalize_image_id(raw_id)
            texts = [value] if isinstance(value, str) else list(value)
            for k, t in enumerate(texts):
                caps.append(Caption(f"{img}#{k}", img, t, name))
        return cls(caps, name=name)
