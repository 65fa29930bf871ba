"""Measurements to run by hand (not part of the test suite):
``python -m tools.benchmarks.<name>``."""
