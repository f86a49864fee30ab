"""Benchmarks: each prints its figures; `python -m bench` runs all and writes docs/BENCHMARKS.md."""
