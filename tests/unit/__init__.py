"""Unit tests of the sans-IO protocol cores (one module per core module)."""
