"""The files and folders a command writes, checked before any work starts.

A bad output path (a folder that does not exist, a folder where a file is meant, no permission)
is found before a model is built or trained, and reported like every other problem: a located
diagnostic with a code, E109, naming the option — never an internal error after the work.

    target = writable_file(output, "-o")          # render -o, build --save, export --onnx ...
    folder = writable_folder(out, "--out")        # train --out: the run folder (made if missing)

A write that still fails (the disk filled up meanwhile) is reported the same way by
:func:`write_failed`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..diagnostics import Diagnostic, Location, SpecError

CODE = "E109"


def _error(path: Path, option: str, why: str, hint: str | None = None) -> SpecError:
    return SpecError(Diagnostic(CODE, f"{option}: cannot write here: {why}", Location(str(path), 1, 1), hint=hint))


def _existing_ancestor(path: Path) -> Path:
    """The nearest folder above ``path`` (or path itself) that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def writable_file(path: Path | str, option: str) -> Path:
    """``path`` when a file can be written there (replaced, if it exists); raises E109 otherwise.

    Its folder must exist: an output path with a typo in the folder is a mistake to report,
    not a folder to create.
    """
    path = Path(path)
    if path.is_dir():
        raise _error(path, option, "it is a folder", f"name a file in it, e.g. {path / 'out'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        above = _existing_ancestor(parent)
        if above.exists() and not above.is_dir():
            raise _error(path, option, f"'{above}' is a file, not a folder")
        raise _error(path, option, f"the folder '{parent}' does not exist", "create it first, or write elsewhere")
    if not parent.is_dir():
        raise _error(path, option, f"'{parent}' is a file, not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise _error(path, option, "the file is read-only")
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise _error(path, option, f"no permission to create files in '{parent}'")
    return path


def writable_folder(path: Path | str, option: str) -> Path:
    """``path`` when it is, or can be made, a folder to write into; raises E109 otherwise.

    A folder that does not exist yet is fine (it is made when the work writes its first file),
    as long as the nearest existing folder above it lets us create it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise _error(path, option, "it is a file, not a folder", "name a folder (it is made if missing)")
    above = _existing_ancestor(path)
    if not above.is_dir():
        raise _error(path, option, f"'{above}' is a file, not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        what = "write in" if above == path else "create folders in"
        raise _error(path, option, f"no permission to {what} '{above}'")
    return path


def write_failed(error: OSError, path: Path | str, option: str) -> SpecError:
    """E109 for a write that failed after the checks (a full disk, a folder removed meanwhile)."""
    where = Path(error.filename) if getattr(error, "filename", None) else Path(path)
    return _error(where, option, error.strerror or str(error))


__all__ = ["writable_file", "writable_folder", "write_failed"]
