"""Shared fixtures: the spec folder and the list of buildable specs in it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def spec_files() -> list[Path]:
    """Every buildable spec under specs/ (block libraries in specs/lib/ are included by others)."""
    return sorted(p for p in SPECS.rglob("*.yaml") if "lib" not in p.relative_to(SPECS).parts)


@pytest.fixture
def specs_dir() -> Path:
    return SPECS
