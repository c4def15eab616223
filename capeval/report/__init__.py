"""Reports: a reusable self-contained HTML + Markdown renderer (`Report`) and the meta-evaluation sections."""

from capeval.report.render import Report

__all__ = ["Report", "add_correlation_section", "add_story", "write_meta_report"]


def __getattr__(name: str) -> object:  # heavy (matplotlib) parts load on first use
    if name in ("add_correlation_section", "add_story", "write_meta_report", "correlation_bar_chart",
                "metric_vs_human_figure", "system_scores_figure", "rank_figure"):
        from capeval.report import meta

        return getattr(meta, name)
    raise AttributeError(name)
