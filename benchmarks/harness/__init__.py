"""Helpers of ``benchmarks/run.py``: setup, child measurement, tool configs and the report."""
