"""Registers the explain fixtures; helpers live in explain_fixtures.py (a unique module name, unlike conftest)."""

from explain_fixtures import sim_folder, study  # noqa: F401
