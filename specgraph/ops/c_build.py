"""Compiling a small C kernel with the system's C compiler, once per source: the shared library
is cached by the hash of its source, flags and compiler, so a process after the first loads it in
microseconds (a build takes well under a second).

The cache folder is ``$SPECGRAPH_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/specgraph/kernels``, else
``~/.cache/specgraph/kernels``.  Builds are safe against concurrent ones (two training processes
starting at once): each compiles to a temporary name in that folder and renames it into place,
which is atomic, so a reader never loads a half-written file.

Flags are portable on purpose: ``-O3`` without ``-march=native`` (the CPU kind differs between the
machines that share a cache or a home folder) and without ``-ffast-math``; ``-ffp-contract=off`` so
that no multiply-add is fused where the ISA happens to have one: a kernel's results are the same
on every x86-64 and arm64 machine.

Nothing here raises for a missing compiler or a failed build: :func:`compiled_library` returns
the reason as a phrase instead, for the caller to report (and to run its plain torch ops).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ("-O3", "-std=c99", "-ffp-contract=off", "-fPIC", "-shared")
_loaded: dict[str, "ctypes.CDLL | str"] = {}  # source -> the library, or why there is none (this process)


def cache_dir() -> Path:
    explicit = os.environ.get("SPECGRAPH_KERNEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "specgraph" / "kernels"


def c_compiler() -> str | None:
    """The C compiler to use: ``$CC``, else ``cc`` or ``gcc`` or ``clang`` on the PATH; None when none."""
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def compiled_library(name: str, source: str) -> "ctypes.CDLL | str":
    """The shared library built from C ``source`` (cached; ``name`` names its file), loaded; or,
    where there is none, why not as a phrase ("no C compiler found (set CC)")."""
    known = _loaded.get(source)  # once per process: a training step asks at every call
    if known is not None:
        return known
    compiler = c_compiler()
    if compiler is None:
        result: "ctypes.CDLL | str" = "no C compiler found (cc, gcc or clang on the PATH, or $CC)"
    else:
        key = hashlib.sha256("\0".join((source, " ".join(FLAGS), compiler, sys.platform)).encode()).hexdigest()[:20]
        result = _build_and_load(name, source, compiler, key)
    _loaded[source] = result
    return result


def _build_and_load(name: str, source: str, compiler: str, key: str) -> "ctypes.CDLL | str":
    folder = cache_dir()
    target = folder / f"{name}-{key}.so"
    if not target.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                c_file, built = Path(tmp) / f"{name}.c", Path(tmp) / f"{name}.so"
                c_file.write_text(source)
                run = subprocess.run([compiler, *FLAGS, "-o", str(built), str(c_file)], capture_output=True,
                                     text=True, timeout=120)
                if run.returncode != 0:
                    first = (run.stderr.strip().splitlines() or ["no message"])[0]
                    return f"its C kernel did not compile ({Path(compiler).name}: {first})"
                os.replace(built, target)  # atomic: a concurrent build renames the same bytes
        except (OSError, subprocess.SubprocessError) as e:
            return f"its C kernel could not be built in {folder} ({e})"
    try:
        return ctypes.CDLL(str(target))
    except OSError as e:
        return f"its C kernel could not be loaded ({e})"


__all__ = ["compiled_library", "c_compiler", "cache_dir", "FLAGS"]
