"""The package's layers import downwards only: `runtime` and `evaluation` never import the packages that
use them (training, cross-validation, explanations, the CLI)."""

import ast
from pathlib import Path

import pytest

AAM = Path(__file__).resolve().parents[2] / "aam"
ABOVE = {"runtime": ("evaluation", "training", "crossval", "explain", "cli"),
         "evaluation": ("training", "crossval", "explain", "cli")}


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` in the file names, at any depth (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_a_layer_never_imports_the_layers_above_it(package):
    files = sorted((AAM / package).glob("*.py"))
    assert files
    upward = [(f.name, m) for f in files for m in sorted(imported_modules(f))
              if any(m == f"aam.{p}" or m.startswith(f"aam.{p}.") for p in ABOVE[package])]
    assert upward == []
