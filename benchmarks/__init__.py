"""Benchmarks of hailuo_async against what users write today (see ``benchmarks/README.md``).

Run everything with ``python -m benchmarks.run`` (``--smoke`` for a tiny, fast run).
"""
