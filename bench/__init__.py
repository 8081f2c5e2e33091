"""Benchmarks: scripts that print figures (see bench/README.md)."""
