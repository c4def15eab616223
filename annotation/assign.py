"""From a campaign to items and per-annotator queues: which caption is rated, by whom, in which order.

Every non-gold item goes to exactly `raters_per_item` annotators (least-loaded first, ties broken by the seed), every
gold item to every annotator; each queue is shuffled with the annotator's recorded seed; for pairwise items the A/B
sides are counterbalanced within each annotator.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from capeval.errors import InputError
from capeval.records import CaptionSet

from annotation.campaign import MAX_CAPTION_CHARS, MAX_ITEMS, Campaign
from annotation.store import ItemSpec


@dataclass(frozen=True)
class Plan:
    items: list[ItemSpec]
    queues: dict[str, list[tuple[int, bool]]]  # annotator -> [(item index, swap)] in presentation order
    seeds: dict[str, int]


def annotator_seed(campaign_seed: int, annotator: str) -> int:
    """Stable per-annotator seed derived from the campaign seed (recorded in the database)."""
    h = hashlib.sha256(f"{campaign_seed}:{annotator}".encode()).digest()
    return int.from_bytes(h[:6], "big")


def _load(campaign: Campaign) -> dict[str, CaptionSet]:
    from capeval.io import load_captions

    sets: dict[str, CaptionSet] = {}
    for s in campaign.systems:
        if not s.path.is_file():
            raise InputError("caption file not found", path=str(s.path), where=f"systems.{s.name}")
        sets[s.name] = load_captions(s.path, format=s.format, name=s.name)
    return sets


def build_items(campaign: Campaign, sets: dict[str, CaptionSet] | None = None) -> list[ItemSpec]:
    """The campaign's items: one per (image, system), or per (image, pair) for pairwise, plus gold items."""
    sets = _load(campaign) if sets is None else sets
    rng = random.Random(campaign.seed)
    common: set[str] | None = None
    for cs in sets.values():
        ids = set(cs.image_ids())
        common = ids if common is None else common & ids
    images = sorted(common or ())
    if not images:
        raise InputError("the systems share no image id; nothing to rate", path=str(campaign.path), where="systems")
    if campaign.sample_images is not None and campaign.sample_images < len(images):
        images = sorted(rng.sample(images, campaign.sample_images))

    chosen: dict[str, dict[str, tuple[str, str]]] = {}
    for spec in campaign.systems:
        by_image = sets[spec.name].by_image()
        pick_rng = random.Random(f"{campaign.seed}:{spec.name}")
        per: dict[str, tuple[str, str]] = {}
        for img in images:
            caps = by_image[img]
            c = caps[0] if spec.pick == "first" or len(caps) == 1 else caps[pick_rng.randrange(len(caps))]
            text = c.text.strip()
            if not text:
                raise InputError(f"empty caption for image {img}", path=str(spec.path), where=f"caption {c.caption_id}")
            if len(text) > MAX_CAPTION_CHARS:
                raise InputError(f"caption of image {img} has {len(text)} characters (limit {MAX_CAPTION_CHARS})",
                                 path=str(spec.path), where=f"caption {c.caption_id}")
            per[img] = (c.caption_id, text)
        chosen[spec.name] = per

    items: list[ItemSpec] = []
    for img in images:
        if campaign.rubric.pairwise:
            for a, b in campaign.pairs:
                (ca, ta), (cb, tb) = chosen[a][img], chosen[b][img]
                items.append(ItemSpec(img, ca, a, ta, cb, b, tb))
        else:
            for spec in campaign.systems:
                cid, text = chosen[spec.name][img]
                items.append(ItemSpec(img, cid, spec.name, text))
    for k, g in enumerate(campaign.gold):
        expect = {crit: list(v) for crit, v in g.expect.items()}
        if campaign.rubric.pairwise:
            items.append(ItemSpec(g.image_id, f"gold{k}a", "gold", g.captions[0], f"gold{k}b", "gold", g.captions[1],
                                  gold_expect=expect))
        else:
            items.append(ItemSpec(g.image_id, f"gold{k}", "gold", g.captions[0], gold_expect=expect))
    if len(items) > MAX_ITEMS:
        raise InputError(f"{len(items)} items is over the limit of {MAX_ITEMS}; use sample_images",
                         path=str(campaign.path), where="sample_images")
    return items


def assign(items: Sequence[ItemSpec], annotators: Sequence[str], raters_per_item: int, seed: int,
           pairwise: bool = False) -> Plan:
    """Balanced assignment (see module doc). Items are listed in a seeded random order so their database ids carry
    no information about the system."""
    if raters_per_item > len(annotators):
        raise ValueError("more raters per item than annotators")
    rng = random.Random(seed)
    order = list(range(len(items)))
    rng.shuffle(order)
    items = [items[i] for i in order]
    load = {a: 0 for a in annotators}
    mine: dict[str, list[int]] = {a: [] for a in annotators}
    for idx, it in enumerate(items):
        if it.gold_expect is not None:
            chosen = list(annotators)
        else:
            ranked = sorted(annotators, key=lambda a: (load[a], rng.random()))
            chosen = ranked[:raters_per_item]
        for a in chosen:
            mine[a].append(idx)
            load[a] += 1
    queues: dict[str, list[tuple[int, bool]]] = {}
    seeds: dict[str, int] = {}
    for a in annotators:
        s = annotator_seed(seed, a)
        seeds[a] = s
        arng = random.Random(s)
        q = list(mine[a])
        arng.shuffle(q)
        swaps = [k % 2 == 1 for k in range(len(q))] if pairwise else [False] * len(q)
        arng.shuffle(swaps)
        queues[a] = list(zip(q, swaps))
    return Plan(items, queues, seeds)


def plan_campaign(campaign: Campaign, sets: dict[str, CaptionSet] | None = None) -> Plan:
    return assign(build_items(campaign, sets), campaign.annotators, campaign.raters_per_item, campaign.seed,
                  campaign.rubric.pairwise)
