"""Gradio rating campaigns whose exports feed capeval correlate."""
