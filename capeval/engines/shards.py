"""Image shards: captions streamed from their files are spilled to disk in buckets by a hash of the image id, so
every caption of an image lands in the same shard whatever the input order, and no process ever holds the corpus.

A shard is an Arrow IPC file with one row per caption: `pos` (the caption's position in the input, which orders
outputs exactly as the one-process run does), `role` (-1 for the corpus or references, k for candidate system k),
`caption_id`, `image_id`, `text`. Caption ids, image ids and input errors are those of `capeval.io.stream`.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from capeval.errors import InputError
from capeval.records import Caption, CaptionSet

SCHEMA = pa.schema([("pos", pa.int64()), ("role", pa.int16()), ("caption_id", pa.string()),
                    ("image_id", pa.string()), ("text", pa.string())])
#: default shard size when the number of shards is not given, in captions (estimated from the input's bytes)
TARGET_CAPTIONS = 60_000
_BYTES_PER_CAPTION = 70  # a Karpathy reference as JSONL is about 75 bytes


@dataclass(frozen=True)
class Stream:
    """One input to partition: its files (a path, folder, glob or shard list), read under `role`."""

    sources: str | Sequence[str]
    role: int = -1
    format: str | None = None
    name: str | None = None
    allow_empty: bool = False


@dataclass
class ShardSet:
    """The shard files of a partitioned input, with what they hold."""

    paths: list[str]
    captions: list[int]  # per shard
    names: dict[int, str]  # role -> corpus or system name
    inputs: dict[int, list[str]]  # role -> files read
    formats: dict[int, str | None] = field(default_factory=dict)  # role -> format of the (first) file

    @property
    def num_captions(self) -> int:
        return sum(self.captions)


def bucket_of(image_ids: Sequence[str], num_shards: int) -> np.ndarray:
    """Shard of each image id: CRC-32 of its UTF-8 bytes modulo the shard count (the same in every process)."""
    crc = zlib.crc32
    return np.fromiter((crc(i.encode("utf-8")) for i in image_ids), dtype=np.int64, count=len(image_ids)) % num_shards


def default_num_shards(streams: Sequence[Stream], at_least: int = 1) -> int:
    """Enough shards for about TARGET_CAPTIONS captions each (estimated from file sizes), and at least `at_least`."""
    from capeval.io.stream import expand_sources

    size = 0
    for s in streams:
        for p in expand_sources(s.sources):
            try:
                size += os.path.getsize(p)
            except OSError:
                pass
    return max(at_least, math.ceil(size / _BYTES_PER_CAPTION / TARGET_CAPTIONS), 1)


def partition(streams: Sequence[Stream], workdir: str | os.PathLike[str], num_shards: int, *,
              chunk_size: int = 50_000) -> ShardSet:
    """Stream every input into `num_shards` image shards under `workdir` (created if missing)."""
    from capeval.io.stream import expand_sources, iter_captions, source_name

    if num_shards < 1:
        raise InputError(f"number of shards must be at least 1, got {num_shards}")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    paths = [str(work / f"shard-{i:05d}.arrow") for i in range(num_shards)]
    writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
    counts = [0] * num_shards
    names: dict[int, str] = {}
    inputs: dict[int, list[str]] = {}
    formats: dict[int, str | None] = {}
    try:
        for s in streams:
            names[s.role] = s.name if s.name is not None else source_name(s.sources)
            inputs[s.role] = expand_sources(s.sources)
            pos = 0
            for chunk in iter_captions(s.sources, format=s.format, name=names[s.role], allow_empty=s.allow_empty,
                                       chunk_size=chunk_size):
                formats.setdefault(s.role, chunk.format)
                caps = chunk.captions
                imgs = [c.image_id for c in caps]
                shard = bucket_of(imgs, num_shards)
                n = len(caps)
                table = pa.table({"pos": np.arange(pos, pos + n, dtype=np.int64),
                                  "role": np.full(n, s.role, dtype=np.int16),
                                  "caption_id": [c.caption_id for c in caps], "image_id": imgs,
                                  "text": [c.text for c in caps]}, schema=SCHEMA)
                pos += n
                order = np.argsort(shard, kind="stable")
                sorted_shard = shard[order]
                bounds = np.flatnonzero(np.diff(sorted_shard)) + 1
                for part in np.split(order, bounds):
                    if not len(part):
                        continue
                    i = int(shard[part[0]])
                    w = writers.get(i)
                    if w is None:
                        w = writers[i] = pa.ipc.new_stream(paths[i], SCHEMA)
                    w.write_table(table.take(pa.array(part)))
                    counts[i] += len(part)
    finally:
        for w in writers.values():
            w.close()
    for i, p in enumerate(paths):
        if i not in writers:
            with pa.ipc.new_stream(p, SCHEMA):
                pass
    return ShardSet(paths, counts, names, inputs, formats)


def read_shard(path: str) -> pa.Table:
    """One shard as an Arrow table (rows in input order within each role)."""
    with pa.ipc.open_stream(path) as r:
        return r.read_all()


def shard_captions(table: pa.Table, role: int = -1, name: str = "", path: str | None = None,
                   format: str | None = None) -> tuple[CaptionSet, np.ndarray]:
    """The captions of one role in a shard, in input order, and their input positions."""
    if table.num_rows:
        roles = table.column("role").to_numpy()
        if not (roles == role).all():
            table = table.filter(pa.array(roles == role))
    pos = table.column("pos").to_numpy()
    cids = table.column("caption_id").to_pylist()
    imgs = table.column("image_id").to_pylist()
    texts = table.column("text").to_pylist()
    caps = [Caption(c, i, t, name) for c, i, t in zip(cids, imgs, texts)]
    return CaptionSet(caps, name=name, path=path, format=format), pos
