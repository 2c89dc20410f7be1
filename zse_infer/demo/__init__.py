"""Bundled demo: concept table, data building, and the zse-demo command."""
