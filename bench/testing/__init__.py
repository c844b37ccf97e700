"""Fixtures shared by tests and benchmarks: small data sets in the real formats, records, a synthetic world."""
