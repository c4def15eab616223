"""capeval.report."""
