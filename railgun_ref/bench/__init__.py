"""Benchmarks (not tests): each prints JSON comparing us with a named peer in the same run."""
