"""Where the raw data comes from, and the splits it is cut into (nothing downloads).

The data sets that ship inside packages (install them with ``pip install 'specgraph[data]'``)
are found without importing their package where that would be slow (:func:`package_dir`,
:func:`packaged_file`); the user's files are checked with :func:`existing_file`. Every
problem the user can fix (a missing file, a missing package, a bad argument) is a
:class:`DataError` with a message that says what to do. The readers of each source return
plain numpy arrays or ``torch.utils.data.TensorDataset`` objects in a :class:`Splits`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import DataError

INSTALL_HINT = "pip install 'specgraph[data]'"


def package_dir(package: str, dataset: str) -> Path:
    """The folder of an installed package, found without importing it (a clear DataError if absent)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"data set '{dataset}' needs the Python package '{package}', which is not "
                        f"installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def import_package(module: str, dataset: str, package: str | None = None) -> Any:
    """Import ``module`` for ``dataset``; a missing package becomes a DataError with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DataError(f"data set '{dataset}' needs the Python package '{package or module.split('.')[0]}', "
                        f"which could not be imported ({exc}): {INSTALL_HINT}") from exc


def packaged_file(package: str, relative: str, dataset: str) -> Path:
    """A data file shipped inside an installed package; a DataError if the package or the file is missing."""
    path = package_dir(package, dataset) / relative
    if not path.is_file():
        raise DataError(f"data set '{dataset}': the file {relative} is missing from the installed package "
                        f"'{package}' (looked for {path}); reinstall it: {INSTALL_HINT}")
    return path


def existing_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as a Path, or a DataError saying that it does not exist / is not a file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{what} not found: {p}")
    if not p.is_file():
        raise DataError(f"{what} is not a file: {p}")
    return p


def check_split(split: tuple[float, float, float] | list[float]) -> tuple[float, float, float]:
    """Three non-negative fractions (train, val, test) that sum to 1."""
    try:
        fractions = tuple(float(f) for f in split)
    except (TypeError, ValueError) as exc:
        raise DataError(f"split must be three fractions (train, val, test), got {split!r}") from exc
    if len(fractions) != 3 or any(f < 0 for f in fractions) or fractions[0] <= 0:
        raise DataError(f"split must be three fractions (train, val, test) >= 0 with train > 0, got {split!r}")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(f"split fractions must sum to 1, got {split!r} (sum {sum(fractions):g})")
    return fractions  # type: ignore[return-value]


@dataclass
class Splits:
    """Train, validation and test datasets (``train, val, test = splits`` unpacks them)."""

    train: Any
    val: Any
    test: Any
    info: dict[str, Any] = field(default_factory=dict)  # how the data was split, for the run folder

    def __iter__(self) -> Iterator[Any]:
        return iter((self.train, self.val, self.test))

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


__all__ = ["Splits", "INSTALL_HINT", "package_dir", "import_package", "packaged_file",
           "existing_file", "check_split"]
