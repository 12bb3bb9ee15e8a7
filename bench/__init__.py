"""Benchmark harness for Interconnect Hub. Run ``python -m bench.runner --help``; see docs/PERFORMANCE.md."""
