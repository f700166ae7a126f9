"""Notebook helpers: live localhost networks, traces to pandas, altair charts."""
