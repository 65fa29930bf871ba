"""Fault injection against real processes: killed workers, terminated connections, a lost
or flushed Redis, a full disk, corrupted files and catalog rows, racing requests.

Every test ends with the same checker (tests/faults/invariants.py). See docs/faults.md.
"""
