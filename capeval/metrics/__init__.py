"""capeval metrics."""
