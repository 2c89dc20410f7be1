"""Helpers shared by the test suite, the exporter's validation and the benchmarks (numpy only)."""
