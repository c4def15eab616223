"""Engines run capeval's two-pass jobs (pass 1: a mergeable corpus summary per image shard, merged; pass 2: the
per-image work with the merged summary) in one process (`local`) or on Ray (`ray`). An engine changes where work
runs, never what it computes: both give what the one-process functions give on the whole corpus."""

from __future__ import annotations

from capeval.errors import InputError

ENGINES = ("local", "ray")


def make_engine(name: str, *, ray_address: str | None = None, num_cpus: int | None = None):  # type: ignore[no-untyped-def]
    """An engine by name (a context manager with `map(fn, shards, shared)`)."""
    if name == "local":
        if ray_address is not None:
            raise InputError("--ray-address applies to --engine ray only")
        from capeval.engines.local import LocalEngine

        return LocalEngine()
    if name == "ray":
        from capeval.engines.ray_engine import RayEngine

        return RayEngine(ray_address, num_cpus)
    raise InputError(f"unknown engine {name!r}; expected one of: {', '.join(ENGINES)}")
