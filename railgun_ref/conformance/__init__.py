"""Conformance: JSON test vectors, their schemas and generator, in-process and wire runners."""
