"""The one-process engine: shards are read from disk and processed one after another, so memory holds one shard,
the merged summary and the results of one shard at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from capeval.engines.shards import ShardSet, read_shard


class LocalEngine:
    """Runs each pass as a loop over the shards in this process."""

    name = "local"

    def __init__(self) -> None:
        self.workers = 1

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def describe(self) -> str:
        return "local (one process)"

    def map(self, fn: Callable[..., Any], shards: ShardSet, shared: Any = None, **kwargs: Any
            ) -> Iterator[tuple[int, Any]]:
        """`fn(table, shared, **kwargs)` for every non-empty shard, in shard order: (shard index, result)."""
        for i, (path, n) in enumerate(zip(shards.paths, shards.captions)):
            if n:
                yield i, fn(read_shard(path), shared, **kwargs)
