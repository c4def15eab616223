"""capeval.io."""
