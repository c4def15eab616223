"""Reference audit: find misspellings, real-word errors, grammar slips, truncated, thin, off-consensus and duplicate
captions, write reports and corrected/filtered references, and measure what they do to the metrics."""

from capeval.audit.finding import CAPTION_LEVEL, CATEGORIES, Finding
from capeval.audit.impact import rescore_impact
from capeval.audit.outputs import write_audit
from capeval.audit.run import (
    AuditResult,
    AuditRun,
    audit_captions,
    audit_images,
    audit_references,
    compare_audits,
    preload,
)
from capeval.audit.summary import CorpusSummary

__all__ = [
    "CAPTION_LEVEL",
    "CATEGORIES",
    "CorpusSummary",
    "AuditResult",
    "AuditRun",
    "Finding",
    "audit_captions",
    "audit_images",
    "audit_references",
    "compare_audits",
    "preload",
    "rescore_impact",
    "write_audit",
]

# `capeval.audit(captions)` (the public API, capeval.api.audit): the package is callable as well
import sys as _sys  # noqa: E402

from capeval.api import AuditModule as _AuditModule  # noqa: E402

_sys.modules[__name__].__class__ = _AuditModule
