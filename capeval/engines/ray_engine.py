"""The Ray engine: each pass is a Ray Data job over the same shard functions as the local engine. Shards go into the
object store (so a cluster's workers need no shared disk), every shard is one block mapped whole, and the shared
input of a pass (the merged summary) is put once and fetched by each task.

`address=None` starts a local Ray instance with `num_cpus` workers (and stops it afterwards); `address="auto"` or
`"ray://host:10001"` joins an existing cluster (started with `ray start --head`), which is left running.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from capeval.engines.shards import ShardSet, read_shard
from capeval.errors import CapevalError


def _apply(batch: pa.Table, fn: Callable[..., Any], shared: list[Any], kwargs: dict[str, Any]) -> pa.Table:
    """Ray Data UDF: one whole shard in, one row out (shard index, pickled result of `fn`)."""
    import ray

    shard = batch.column("shard")[0].as_py()
    table = batch.drop_columns(["shard"])
    value = ray.get(shared[0])
    result = fn(table, value, **kwargs)
    return pa.table({"shard": pa.array([shard], pa.int32()),
                     "payload": pa.array([pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)], pa.binary())})


class RayEngine:
    """Runs each pass as a Ray Data `map_batches` job, one task per shard."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.workers = num_cpus or 0
        self._started = False
        self._refs: dict[int, list[tuple[int, Any]]] = {}
        self._progress: bool | None = None
        self._log_level = logging.NOTSET

    def __enter__(self) -> RayEngine:
        try:
            import ray
        except ImportError:
            raise CapevalError("--engine ray needs Ray: pip install 'capeval[ray]' (ray[data])") from None
        import ray.data

        if not ray.is_initialized():
            try:
                if self.address is None:
                    ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                             logging_level="error", configure_logging=True)
                else:
                    ray.init(address=self.address, log_to_driver=False, logging_level="error")
            except ConnectionError as exc:
                raise CapevalError(f"cannot connect to the Ray cluster at {self.address!r} ({exc}); start one with "
                                   "`ray start --head` or leave out --ray-address for a local Ray") from None
            self._started = True
        self.workers = int(ray.cluster_resources().get("CPU", 0)) or self.workers
        log = logging.getLogger("ray.data")  # per-job INFO lines on stderr; restored on exit
        self._log_level = log.level
        log.setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        self._progress = ctx.enable_progress_bars
        ctx.enable_progress_bars = False
        return self

    def __exit__(self, *exc: object) -> None:
        import ray
        import ray.data

        self._refs.clear()
        if self._progress is not None:
            ray.data.DataContext.get_current().enable_progress_bars = self._progress
            logging.getLogger("ray.data").setLevel(self._log_level)
        if self._started:
            ray.shutdown()
            self._started = False

    def describe(self) -> str:
        where = f"cluster {self.address}" if self.address else "local Ray"
        return f"ray ({where}, {self.workers} CPUs)"

    def _tables(self, shards: ShardSet) -> list[tuple[int, Any]]:
        """Object refs of the non-empty shards (put once per ShardSet, one shard in driver memory at a time)."""
        import ray

        key = id(shards)
        if key not in self._refs:
            refs = []
            for i, (path, n) in enumerate(zip(shards.paths, shards.captions)):
                if n:
                    t = read_shard(path)
                    t = t.append_column("shard", pa.array(np.full(t.num_rows, i, dtype=np.int32)))
                    refs.append((i, ray.put(t)))
            self._refs[key] = refs
        return self._refs[key]

    def map(self, fn: Callable[..., Any], shards: ShardSet, shared: Any = None, **kwargs: Any
            ) -> Iterator[tuple[int, Any]]:
        """`fn(table, shared, **kwargs)` for every non-empty shard on the cluster: (shard index, result) as they
        finish."""
        import ray
        import ray.data

        refs = self._tables(shards)
        if not refs:
            return
        ds = ray.data.from_arrow_refs([r for _, r in refs])
        # tasks, not actors: the worker processes Ray starts stay warm between the passes (lexicon, tokenizer
        # loaded once per process); each task fetches the shared summary from the object store
        # one task per shard and CPU at once: left to itself Ray Data's streaming executor starts these coarse tasks
        # nearly one after another (4 two-second tasks on 2 CPUs took 8.0 s, 5.2 s with concurrency=2, 4.0 s as
        # plain Ray tasks)
        out = ds.map_batches(_apply, batch_size=None, batch_format="pyarrow", zero_copy_batch=True, num_cpus=1,
                             concurrency=max(1, min(self.workers or 1, len(refs))),
                             fn_kwargs={"fn": fn, "shared": [ray.put(shared)], "kwargs": kwargs})
        seen: set[int] = set()
        for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
            for i, payload in zip(batch.column("shard").to_pylist(), batch.column("payload").to_pylist()):
                if i in seen:
                    raise CapevalError(f"shard {i} came back twice from Ray Data (a block was split)")
                seen.add(i)
                yield i, pickle.loads(payload)
        missing = {i for i, _ in refs} - seen
        if missing:
            raise CapevalError(f"{len(missing)} shards did not come back from Ray Data (e.g. shard {min(missing)})")
