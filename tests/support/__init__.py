"""Helpers shared by the test suite and the benchmarks (numpy only; not packaged: imported from the repository root)."""
