"""Developer scripts: `make bench` (scripts/bench.py) and the helpers it starts."""
