"""capeval.audit."""
