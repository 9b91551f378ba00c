"""Benchmarks for the job engine (``python -m bench.engine``); not part of the test suite."""
