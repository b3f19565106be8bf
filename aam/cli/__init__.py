"""Command-line interface: one module per command; each only parses and calls library code."""
