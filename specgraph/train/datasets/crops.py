"""Image/mask pairs tiled into crops: a folder of the user's pairs, and the tiling nuclei.py shares.

``image_folder_crops(PATH)`` reads a folder of pairs, either ``NAME.png`` next to
``NAME_mask.png`` or two subfolders ``images/`` and ``masks/`` with matching names (the mask
may also be called ``NAME_mask``).  PNG, TIFF, JPEG (images only) and BMP are read.  With
three or more pairs the split is by file (shuffled with ``seed``); with one or two, every image
is cut across into three horizontal bands, ``split`` giving their heights as fractions.  Crops
of ``size`` x ``size`` are taken every ``stride`` pixels inside each band (plus a last crop
flush with the band's right/bottom edge when the stride does not land on it), so no crop
straddles two bands and no pixel of one split appears in another.  Each image is scaled by its
own 1st/99.8th percentiles.  Masks are made binary (any non-zero value is foreground) unless
``binary=False``, which keeps their integer values as class ids.

The tiling (bands, crops, percentile scaling; the underscored helpers) is shared with
nuclei.py, which cuts stardist's image the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import TensorDataset

from . import DataError
from .sources import Splits, check_split, import_package

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
MASK_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class CropSplits(Splits):
    """Train/val/test TensorDatasets of (image [C, size, size] float32, mask [size, size] int64).

    ``positions[split]`` holds, per crop, (image number, top row, left column) in the source
    images; ``num_classes`` and ``in_channels`` are what a segmentation model needs.
    """

    num_classes: int = 2
    in_channels: int = 1
    size: int = 0
    positions: dict[str, np.ndarray] = field(default_factory=dict)


def image_folder_crops(path: str | Path, size: int = 128, stride: int = 64,
                       split: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0,
                       binary: bool = True) -> CropSplits:
    """Crops of the user's image/mask pairs in ``path`` (layouts and splits: see the module doc)."""
    _check_size(size, stride)
    fractions = check_split(split)
    pairs = image_mask_pairs(path)
    loaded = []
    for image_file, mask_file in pairs:
        image, mask = read_image(image_file), read_mask(mask_file, binary)
        if image.shape[1:] != mask.shape:
            raise DataError(f"{image_file} is {image.shape[2]}x{image.shape[1]} but its mask {mask_file} is "
                            f"{mask.shape[1]}x{mask.shape[0]}")
        if min(mask.shape) < size:
            raise DataError(f"{image_file} is {mask.shape[1]}x{mask.shape[0]}, smaller than the crop size {size}; "
                            "use a smaller size")
        loaded.append((_normalise(image, _percentiles(image)), mask))
    channels = {image.shape[0] for image, _ in loaded}
    if len(channels) > 1:
        raise DataError(f"{path}: the images mix channel counts {sorted(channels)}; convert them to one "
                        "(all greyscale or all RGB)")

    crops: dict[str, list] = {name: [] for name in SPLIT_NAMES}
    if len(loaded) >= 3:
        counts = _file_counts(len(loaded), fractions)
        order = np.random.default_rng(seed).permutation(len(loaded))
        assignment = {}
        start = 0
        for name, count in zip(SPLIT_NAMES, counts):
            for number in order[start:start + count]:
                assignment[int(number)] = name
            start += count
        for number, (image, mask) in enumerate(loaded):
            crops[assignment[number]].append(_crops(image, mask, size, stride, (0, mask.shape[0]), number))
        split_by = "file"
        files = {name: [str(pairs[n][0]) for n in sorted(k for k, v in assignment.items() if v == name)]
                 for name in SPLIT_NAMES}
    else:
        for number, (image, mask) in enumerate(loaded):
            bands = _bands(mask.shape[0], fractions, size, str(pairs[number][0]))
            for name, rows in bands.items():
                crops[name].append(_crops(image, mask, size, stride, rows, number))
        split_by = "horizontal bands (rows) of every image"
        files = {name: [str(p[0]) for p in pairs] for name in SPLIT_NAMES}
    merged = {name: _concat(parts) for name, parts in crops.items()}
    num_classes = 2 if binary else int(max(int(mask.max()) for _, mask in loaded)) + 1
    info = {"source": str(path), "pairs": len(pairs), "size": size, "stride": stride, "split": list(fractions),
            "split_by": split_by, "files": files, "seed": seed,
            "normalisation": "each image by its own 1st/99.8th percentiles",
            "mask": "binary: 0 background, 1 foreground" if binary else "class ids as stored"}
    return _assemble(merged, info, num_classes=num_classes, in_channels=loaded[0][0].shape[0], size=size)


# ---------------------------------------------------------------- files

def image_mask_pairs(path: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) files of a folder: NAME.ext + NAME_mask.ext, or images/ + masks/ subfolders."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(f"image folder not found: {folder}")
    if not folder.is_dir():
        raise DataError(f"not a folder: {folder} (images:PATH wants a folder of image/mask pairs)")
    image_dir = next((folder / n for n in ("images", "image", "imgs") if (folder / n).is_dir()), None)
    mask_dir = next((folder / n for n in ("masks", "mask", "labels") if (folder / n).is_dir()), None)
    if image_dir is not None and mask_dir is not None:
        images = _files(image_dir, IMAGE_SUFFIXES)
        masks = {m.stem: m for m in _files(mask_dir, MASK_SUFFIXES)}
        pairs, missing = [], []
        for image in images:
            mask = masks.get(image.stem) or masks.get(image.stem + "_mask")
            (pairs.append((image, mask)) if mask else missing.append(image.name))
        where = f"{mask_dir}"
    else:
        files = _files(folder, IMAGE_SUFFIXES)
        masks = {m.stem[:-len("_mask")]: m for m in files if m.stem.endswith("_mask") and m.suffix.lower()
                 in MASK_SUFFIXES}
        pairs, missing = [], []
        for image in files:
            if image.stem.endswith("_mask"):
                continue
            mask = masks.get(image.stem)
            (pairs.append((image, mask)) if mask else missing.append(image.name))
        where = f"{folder} (as NAME_mask.png)"
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(f"no mask in {where} for: {shown}")
    if not pairs:
        raise DataError(f"no image/mask pairs in {folder}: put NAME.png next to NAME_mask.png, or use "
                        "subfolders images/ and masks/ with matching names")
    return pairs


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def _read_array(file: Path, palette_to_rgb: bool = True) -> np.ndarray:
    try:
        if file.suffix.lower() in (".tif", ".tiff"):
            return np.asarray(import_package("tifffile", f"images:{file.parent}").imread(file))
        image_module = import_package("PIL.Image", f"images:{file.parent}", "pillow")
        with image_module.open(file) as img:
            if palette_to_rgb and img.mode in ("P", "PA"):  # a mask keeps its palette indices (class ids)
                img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
            return np.asarray(img)
    except DataError:
        raise
    except Exception as exc:  # a corrupt or unsupported file
        raise DataError(f"cannot read {file}: {exc}") from exc


def read_image(file: Path) -> np.ndarray:
    """An image as float64 [C, H, W] (greyscale C = 1, colour C = 3; alpha dropped)."""
    array = _read_array(file)
    if array.ndim == 2:
        return array[None].astype(np.float64)
    if array.ndim == 3:
        if array.shape[-1] in (1, 3, 4):
            array = np.moveaxis(array, -1, 0)
        if array.shape[0] in (1, 3, 4):
            return array[:3].astype(np.float64) if array.shape[0] != 1 else array.astype(np.float64)
    raise DataError(f"{file}: an image must be greyscale or RGB(A), got an array of shape {list(array.shape)}")


def read_mask(file: Path, binary: bool = True) -> np.ndarray:
    """A mask as int64 [H, W]: binary (non-zero = 1) or the stored class ids (indexed PNG: the indices)."""
    array = _read_array(file, palette_to_rgb=False)
    if array.ndim == 3:
        channels = np.moveaxis(array, -1, 0) if array.shape[-1] in (1, 3, 4) else array
        if binary:
            array = channels[:3].max(axis=0) if channels.shape[0] > 1 else channels[0]
        elif all(np.array_equal(channels[0], c) for c in channels[1:3]):
            array = channels[0]
        else:
            raise DataError(f"{file}: a colour mask cannot be read as class ids; save one class id per pixel "
                            "(a greyscale or indexed PNG)")
    if array.ndim != 2:
        raise DataError(f"{file}: a mask must be a 2-D array, got shape {list(array.shape)}")
    if binary:
        return (array > 0).astype(np.int64)
    if np.issubdtype(array.dtype, np.floating) and not np.all(array == np.round(array)):
        raise DataError(f"{file}: mask values must be integer class ids")
    if array.min() < 0:
        raise DataError(f"{file}: mask values must be class ids >= 0")
    return array.astype(np.int64)


# ---------------------------------------------------------------- tiling

def _check_size(size: int, stride: int) -> None:
    for name, value in (("size", size), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"{name} must be a positive integer, got {value!r}")


def _bands(height: int, fractions: tuple[float, float, float], size: int, what: str) -> dict[str, tuple[int, int]]:
    cuts = [0, int(round(height * fractions[0])), int(round(height * (fractions[0] + fractions[1]))), height]
    bands = {name: (lo, hi) for name, lo, hi in zip(SPLIT_NAMES, cuts[:-1], cuts[1:])}
    for name, (lo, hi) in bands.items():
        if hi - lo < size:
            raise DataError(f"{what}: the {name} band (rows {lo}..{hi - 1}, height {hi - lo}) is smaller than the "
                            f"crop size {size}; use a smaller size or a larger {name} fraction")
    return bands


def _starts(lo: int, hi: int, size: int, stride: int) -> list[int]:
    starts = list(range(lo, hi - size + 1, stride))
    if starts[-1] != hi - size:
        starts.append(hi - size)
    return starts


def _crops(image: np.ndarray, mask: np.ndarray, size: int, stride: int, rows: tuple[int, int], number: int):
    positions = [(number, r, c) for r in _starts(rows[0], rows[1], size, stride)
                 for c in _starts(0, mask.shape[1], size, stride)]
    images = np.stack([image[:, r:r + size, c:c + size] for _, r, c in positions]).astype(np.float32)
    masks = np.stack([mask[r:r + size, c:c + size] for _, r, c in positions]).astype(np.int64)
    return images, masks, np.array(positions, dtype=np.int64)


def _concat(parts):
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def _percentiles(pixels: np.ndarray, low: float = 1.0, high: float = 99.8) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.percentile(pixels, [low, high]))
    return lo, hi if hi > lo else lo + 1.0


def _normalise(image: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    return ((image.astype(np.float64) - scale[0]) / (scale[1] - scale[0])).astype(np.float32)


def _assemble(crops: dict, info: dict, num_classes: int, in_channels: int, size: int) -> CropSplits:
    datasets = {name: TensorDataset(torch.from_numpy(images), torch.from_numpy(masks))
                for name, (images, masks, _) in crops.items()}
    info["sizes"] = {name: len(ds) for name, ds in datasets.items()}
    return CropSplits(datasets["train"], datasets["val"], datasets["test"], info, num_classes, in_channels, size,
                      {name: positions for name, (_, _, positions) in crops.items()})


def _file_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    val = max(1, int(round(n * fractions[1]))) if fractions[1] > 0 else 0
    test = max(1, int(round(n * fractions[2]))) if fractions[2] > 0 else 0
    train = n - val - test
    if train < 1:
        raise DataError(f"{n} image/mask pairs are too few for the split {list(fractions)}")
    return train, val, test


__all__ = ["CropSplits", "image_folder_crops", "image_mask_pairs", "read_image", "read_mask"]
