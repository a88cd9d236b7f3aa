"""Logs and metrics: declared once, free of child personal data."""
