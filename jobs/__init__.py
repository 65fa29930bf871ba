"""Thin RQ entry points: translate a job into an engine call and record the outcome."""
