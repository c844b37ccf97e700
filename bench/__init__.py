"""glip-bench: the harness. Tasks x regimes -> records -> tables and curves."""

__version__ = "0.1.0"
