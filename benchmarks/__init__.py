"""Benchmarks: each figure measured beside its anchor in the same run."""
