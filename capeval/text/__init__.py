"""capeval.text."""
