"""Benchmarks behind `ragops bench`: every figure is a ratio against a baseline measured
in the same run on the same machine, never an absolute target in a unit test."""
