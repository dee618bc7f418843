"""Benchmarks and soak tests (not part of the CI test run)."""
