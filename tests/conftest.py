"""Shared fixtures: the spec folder, the list of buildable specs in it, and the training tests' tiny spec."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test`: two workers share the two cores
    import torch

    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def spec_files() -> list[Path]:
    """Every buildable spec under specs/ (block libraries in specs/lib/ are included by others)."""
    return sorted(p for p in SPECS.rglob("*.yaml") if "lib" not in p.relative_to(SPECS).parts)


@pytest.fixture
def specs_dir() -> Path:
    return SPECS


# The training tests' model: a small classifier of 8×8 grey images (sklearn's digits).
TINY = """specgraph: 1
name: tiny
params: {num_classes: 10}
inputs:
  image: [N, 1, 8, 8]
graph:
  flatten: {op: flatten}
  hidden: {op: linear, out: 16}
  act: {op: relu}
  out: {op: linear, out: $num_classes}
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> Path:
    """TINY written to tmp_path/tiny.yaml, with tmp_path the working folder (runs/ lands there)."""
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    return spec
