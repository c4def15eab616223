"""A self-contained example campaign (generated images, caption files, YAML, logins) for tests, benchmarks and demos."""

from __future__ import annotations

import json
import subprocess
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

_OBJECTS = ["dog", "cat", "man", "woman", "bus", "train", "pizza", "horse", "boat", "clock", "kite", "bench"]
_PLACES = ["on a street", "in a field", "next to a table", "near the water", "in a kitchen", "under a tree"]


@dataclass(frozen=True)
class ExampleCampaign:
    path: Path
    image_ids: list[str]
    systems: dict[str, dict[str, str]]  # system -> image_id -> caption
    passwords: dict[str, str]


def make_campaign(root: str | Path, *, n_images: int = 10, systems: Sequence[str] = ("sysAlpha", "sysBeta"),
                  rubric: str = "flickr8k", annotators: Sequence[str] = ("ann1", "ann2"), admins: Sequence[str] = (
                      "boss",), raters_per_item: int = 2, gold: int = 0, seed: int = 7,
                  real_captions: Sequence[tuple[str, Sequence[str]]] | None = None,
                  extra_captions: dict[str, dict[str, str]] | None = None, create_users: bool = True,
                  password: str = "correct-horse-1", image_size: tuple[int, int] = (320, 240)) -> ExampleCampaign:
    """Write images/, one COCO-results JSON per system, campaign.yaml (and logins) under `root`.

    `real_captions` ([(image_id, [captions])]) supplies real caption text; system k uses caption k of each image.
    `extra_captions` overrides single captions: {system: {image_id: text}}.
    """
    from PIL import Image, ImageDraw

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    if real_captions:
        pool = list(real_captions)[:n_images]
        ids = [str(i) for i, _ in pool]
    else:
        pool = []
        ids = [str(100000 + 37 * k) for k in range(n_images)]
    caps: dict[str, dict[str, str]] = {s: {} for s in systems}
    for k, img in enumerate(ids):
        color = tuple(rng.randrange(40, 230) for _ in range(3))
        im = Image.new("RGB", image_size, color)
        d = ImageDraw.Draw(im)
        d.rectangle([10 + k % 50, 20, 120 + k % 70, 140], fill=(255 - color[0], 80, 120))
        d.text((15, image_size[1] - 30), f"image {img}", fill=(255, 255, 255))
        im.save(root / "images" / f"COCO_val2014_{int(img):012d}.jpg", quality=85)
        for j, s in enumerate(systems):
            if pool:
                texts = list(pool[k][1])
                caps[s][img] = texts[j % len(texts)].strip()
            else:
                caps[s][img] = f"a {rng.choice(_OBJECTS)} {rng.choice(_PLACES)} (no. {rng.randrange(10**6)})"
    for s, over in (extra_captions or {}).items():
        caps[s].update(over)
    (root / "systems").mkdir(exist_ok=True)
    for s in systems:
        rows = [{"image_id": int(i), "caption": c} for i, c in caps[s].items()]
        (root / "systems" / f"{s}.json").write_text(json.dumps(rows), encoding="utf-8")
    doc: dict = {
        "name": "example-study",
        "images": {"folder": "images"},
        "systems": {s: f"systems/{s}.json" for s in systems},
        "rubric": rubric,
        "raters_per_item": raters_per_item,
        "annotators": list(annotators),
        "admins": list(admins),
        "seed": seed,
        "database": "ratings.db",
    }
    if rubric == "pairwise":
        doc["pairs"] = [[systems[0], systems[1]]]
    if gold:
        g = []
        for k in range(gold):
            img = ids[k % len(ids)]
            if rubric == "pairwise":
                g.append({"image_id": img, "captions": ["a photo", f"image {img} with a coloured rectangle"],
                          "expect": {"preference": "B"}})
            elif rubric == "thumb":
                g.append({"image_id": img, "caption": "a plate of spaghetti with meatballs",
                          "expect": {"precision": [1, 2]}})
            else:
                g.append({"image_id": img, "caption": "a plate of spaghetti with meatballs", "expect": {"rating": [1]}})
        doc["gold"] = g
    path = root / "campaign.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    passwords = {u: password for u in [*annotators, *admins]}
    if create_users:
        from annotation.service import add_user

        for u in annotators:
            add_user(path, u, password)
        for u in admins:
            add_user(path, u, password, admin=True)
    return ExampleCampaign(path, ids, caps, passwords)


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on the loopback interface (for test and benchmark servers)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve_in_subprocess(campaign: str | Path, port: int, log: str | Path, *, host: str = "127.0.0.1",
                        append: bool = False) -> subprocess.Popen:
    """`capeval annotate serve` as a separate process (so tests and benchmarks can SIGKILL it), logging to `log`."""
    import os
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONPATH=str(repo))
    cmd = [sys.executable, "-m", "capeval.cli", "annotate", "serve",
           str(campaign), "--host", host, "--port", str(port)]
    out = Path(log).open("a" if append else "w")
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=Path(campaign).parent)


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Terminate a served app, killing it if it does not exit within `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
