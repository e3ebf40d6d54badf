"""Reusable widgets (DEFAULT_CSS), one per file."""
