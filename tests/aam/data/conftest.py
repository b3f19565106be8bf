"""Registers the data-layer fixtures; helpers live in data_fixtures.py (a unique module name, unlike conftest)."""

from data_fixtures import hashed_study  # noqa: F401
