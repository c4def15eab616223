"""capeval: image-caption evaluation that tells the truth about caption quality.

The Python API (imported on first use, so `import capeval` stays fast)::

    import capeval
    result = capeval.score("blip2", "coco-karpathy-test", metrics=["bleu", "cider"])
    result.to_pandas()                       # systems x scores
    report = capeval.audit("coco-karpathy-test")
    report.to_pandas()                       # one row per finding
    corr = capeval.correlate("flickr8k-expert", metrics=["bleu", "cider"])
    corr.to_pandas()                         # metric x statistic with 95% CIs

`capeval.load(source)` reads captions from a file, dataset name, URL or Python data. See `capeval.api`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("score", "correlate", "load", "ScoreResult", "AuditReport", "CorrelationReport")
__all__ = ["__version__", "audit", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from capeval import api

        return getattr(api, name)
    if name == "audit":  # the capeval.audit package, callable as the API function (capeval.api.AuditModule)
        import importlib

        return importlib.import_module("capeval.audit")
    raise AttributeError(f"module 'capeval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
