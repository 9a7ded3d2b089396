"""Side-by-side benchmarks of decaylab against the tools users would otherwise use.

Each module is one benchmark, runnable as ``python -m benchmarks.NAME``; it
writes ``benchmarks/results/NAME.json``, and ``python -m benchmarks.render``
turns those files into ``docs/benchmarks.md``.
"""
