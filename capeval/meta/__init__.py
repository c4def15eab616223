"""Meta-evaluation: how far each metric agrees with people (judgments, statistics, PASCAL-50S, correlate)."""

from capeval.meta.judgments import (
    JUDGMENT_COLUMNS,
    Judgments,
    JudgmentsWarning,
    Scale,
    judgments_from_records,
    load_flickr8k_crowdflower,
    load_flickr8k_expert,
    load_judgments,
    resolve_judgments,
    write_judgments,
)

__all__ = [
    "JUDGMENT_COLUMNS",
    "Judgments",
    "JudgmentsWarning",
    "Scale",
    "judgments_from_records",
    "load_flickr8k_crowdflower",
    "load_flickr8k_expert",
    "load_judgments",
    "resolve_judgments",
    "write_judgments",
]
