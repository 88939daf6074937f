"""Image files checked before training: every one decodes, and what fitting them to the spec changes.

A folder of images is read lazily, one batch at a time, so a damaged file used to surface in the
middle of an epoch as an internal error. :func:`check_images` decodes every file once, before
the first step, in a thread pool (Pillow releases the GIL while it decodes), with a progress bar
in a terminal, and reports every file that fails by its path. It keeps the sizes and colour
modes it saw, so that :func:`describe_fit` can say in one line what the run changes to fit the
spec's input (a resize, grey made RGB) instead of doing it silently.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from . import DataError

GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
CHUNK = 64  # files per task: a task per file would cost more than decoding a small image


@dataclass
class ImageFacts:
    """What the images are: their sizes (W, H) and colour modes, as Pillow reads them."""

    sizes: set[tuple[int, int]] = field(default_factory=set)
    modes: set[str] = field(default_factory=set)
    count: int = 0

    @property
    def grey(self) -> bool:
        return bool(self.modes) and self.modes <= GREY_MODES


def _check_chunk(paths: Sequence[str]) -> tuple[list[tuple[str, str]], set, set]:
    from PIL import Image

    failed, sizes, modes = [], set(), set()
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()  # the whole image, as training will read it
                sizes.add(image.size)
                modes.add(image.mode)
        except Exception as e:  # OSError (truncated, unidentified), DecompressionBombError, SyntaxError ...
            failed.append((path, str(e) or type(e).__name__))
    return failed, sizes, modes


def check_images(paths: Sequence[str], root: Path, progress: bool = False) -> ImageFacts:
    """Decode every file in ``paths``; a DataError naming (relative to ``root``) those that fail."""
    facts, failed = ImageFacts(count=len(paths)), []
    chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
    workers = max(1, min(8, os.cpu_count() or 1, len(chunks)))
    bar = _bar(progress, len(paths))
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for chunk, (bad, sizes, modes) in zip(chunks, pool.map(_check_chunk, chunks)):
                failed += bad
                facts.sizes |= sizes
                facts.modes |= modes
                if bar is not None:
                    bar.advance(bar.task_ids[0], len(chunk))
    finally:
        if bar is not None:
            bar.stop()
    if failed:
        shown = "; ".join(f"{_relative(p, root)} ({why})" for p, why in failed[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise DataError(f"{len(failed)} of {len(paths)} images do not decode: {shown}{more}",
                        hint="remove or replace them (every image is decoded once before training starts)")
    return facts


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def _bar(progress: bool, total: int):
    if not progress or total < 256:  # a few images are checked before a bar could be read
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("checking images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   transient=True)
    bar.add_task("check", total=total)
    bar.start()
    return bar


def describe_fit(facts: ImageFacts, size: tuple[int, int], channels: int) -> list[str]:
    """What fitting images like ``facts`` to [channels, H, W] = ``size`` changes, one line each."""
    notes = []
    hw = {(h, w) for w, h in facts.sizes}
    if hw and hw != {tuple(size)}:
        if len(hw) == 1:
            (h, w), = hw
            notes.append(f"images resized from {h}×{w} to {size[0]}×{size[1]} (the spec's input)")
        else:
            small, large = min(hw, key=lambda s: s[0] * s[1]), max(hw, key=lambda s: s[0] * s[1])
            notes.append(f"images of {len(hw)} sizes ({small[0]}×{small[1]} to {large[0]}×{large[1]}) resized to "
                         f"{size[0]}×{size[1]} (the spec's input)")
    if channels == 3 and facts.grey:
        notes.append("grey images repeated into 3 channels (the spec's input is RGB)")
    elif channels == 1 and facts.modes and not facts.grey:
        notes.append("colour images made grey, the mean of R, G and B (the spec's input has 1 channel)")
    return notes


def describe_arrays(found: tuple[int, int], found_channels: int, size: tuple[int, int], channels: int) -> list[str]:
    """:func:`describe_fit` for in-memory images of one size (H, W) and channel count."""
    facts = ImageFacts({(found[1], found[0])}, {"L"} if found_channels == 1 else {"RGB"})
    return describe_fit(facts, size, channels)


__all__ = ["check_images", "describe_fit", "describe_arrays", "ImageFacts"]
