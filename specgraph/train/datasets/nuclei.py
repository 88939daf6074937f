"""Segmentation crops: ``nuclei`` (stardist's 2-D nuclei image) and ``segfolder:PATH`` (your own pairs).

Items are (image [C, S, S] float32, mask [S, S] int64 class ids), task "segmentation".

* ``nuclei`` — the fluorescence image of nuclei that stardist ships for its tests
  (``stardist/data/images/img2d.tif`` and ``mask2d.tif``, 512 x 512, from the 2018 Data
  Science Bowl; Caicedo et al., Nature Methods 16, 2019).  The files are read with tifffile
  straight from the installed package -- stardist itself is not imported (it would pull in
  numba).  The instance mask (0 = background, 1..183 = one id per nucleus) becomes a binary
  mask: 0 background, 1 nucleus (2 classes). Split by position: the image is cut across into
  three horizontal bands, ``split`` giving their heights as fractions (default 0.5 / 0.25 /
  0.25: rows 0-255 train, 256-383 validation, 384-511 test); crops are taken inside each band
  (see crops.py), so no pixel is in two splits. With the defaults (128, 64): 21 train crops,
  7 val crops and 7 test crops. Intensities scaled to about [0, 1] by the train band's
  1st/99.8th percentiles.
* ``segfolder:PATH`` — a folder of image/mask pairs (``NAME.png`` + ``NAME_mask.png``, or
  ``images/`` + ``masks/`` with matching names; crops.py reads them); masks binary (any
  non-zero pixel is foreground). Three or more pairs split by file (70/15/15, shuffled with
  the seed); one or two split into horizontal bands of every image.

The crop size S is the spec's input H (= W) when it is a fixed number; otherwise 128. Crops
are taken every S/2 pixels. When the spec's fixed size is larger than the data allows (a
nuclei band is 128 rows high), the crops are the largest size that fits and the spec's
``size`` param is set to it (unet_padded's input size). The spec also gets ``num_classes``
and ``in_channels`` from the data.

Options (``data_options`` / ``--data-option``): ``size`` (the crop size; a spec that declares
a ``size`` param gets it, unless ``--set`` gives one), ``stride`` (default size // 2) and
``split`` (nuclei: the band heights, default 0.5, 0.25, 0.25; segfolder: 0.7, 0.15, 0.15).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from . import DataBundle, DataError, DataOption, DataRequest, register_dataset
from .crops import (CropSplits, _assemble, _bands, _check_size, _crops, _normalise, _percentiles,
                    image_folder_crops)
from .sources import check_split, import_package, packaged_file

IMAGE_FILE = "data/images/img2d.tif"
MASK_FILE = "data/images/mask2d.tif"
DEFAULT_SIZE = 128
NUCLEI_LIMIT = 128  # the height of the nuclei image's val and test bands (with the default split)
NUCLEI_HEIGHT = 512
NUCLEI_SPLIT = (0.5, 0.25, 0.25)
FOLDER_SPLIT = (0.7, 0.15, 0.15)


def nuclei_image() -> tuple[np.ndarray, np.ndarray]:
    """stardist's 2-D nuclei test image (uint16 [512, 512]) and its instance mask (uint16, 0 = background)."""
    tifffile = import_package("tifffile", "nuclei")
    image = tifffile.imread(packaged_file("stardist", IMAGE_FILE, "nuclei"))
    mask = tifffile.imread(packaged_file("stardist", MASK_FILE, "nuclei"))
    return np.asarray(image), np.asarray(mask)


def nuclei_crops(size: int = 128, stride: int = 64, split: Sequence[float] = (0.5, 0.25, 0.25)) -> CropSplits:
    """The nuclei image tiled into crops, split by position into horizontal bands (see the module doc)."""
    _check_size(size, stride)
    fractions = check_split(split)
    image, instances = nuclei_image()
    bands = _bands(image.shape[0], fractions, size, "nuclei image")
    lo, hi = bands["train"]
    scale = _percentiles(image[lo:hi])
    image = _normalise(image, scale)[None]
    mask = (instances > 0).astype(np.int64)
    crops = {name: _crops(image, mask, size, stride, rows, 0) for name, rows in bands.items()}
    info = {"source": "stardist data/images/img2d.tif + mask2d.tif", "image_size": list(instances.shape),
            "size": size, "stride": stride, "split": list(fractions), "split_by": "horizontal bands (rows)",
            "bands": {k: list(v) for k, v in bands.items()}, "nuclei": int(instances.max()),
            "normalisation": f"(x - {scale[0]:g}) / {scale[1] - scale[0]:g}: 1st/99.8th percentiles of the "
                             "train band", "mask": "binary: 0 background, 1 nucleus"}
    return _assemble(crops, info, num_classes=2, in_channels=1, size=size)


def load_segmentation(name: str, size: int = 128, stride: int = 64, **kwargs) -> CropSplits:
    """``nuclei`` or ``images:PATH``."""
    if name == "nuclei":
        return nuclei_crops(size, stride, **kwargs)
    if name.startswith("images:"):
        return image_folder_crops(name[len("images:"):], size, stride, **kwargs)
    raise DataError(f"unknown segmentation data '{name}': use nuclei or images:PATH")


# ---------------------------------------------------------------- the datasets

def crop_options(split: tuple[float, float, float], split_help: str) -> dict[str, DataOption]:
    return {"size": DataOption("int", None, f"crop size S (default: the spec's input H = W when fixed, else "
                                            f"{DEFAULT_SIZE}); sets the spec's `size` param", min=1),
            "stride": DataOption("int", None, "pixels between crops (default: size // 2)", min=1),
            "split": DataOption("split", split, split_help)}


def _band_limit(split) -> int:
    """The smallest band height of the nuclei image under ``split`` (the largest crop that fits)."""
    cuts = [0, round(NUCLEI_HEIGHT * split[0]), round(NUCLEI_HEIGHT * (split[0] + split[1])), NUCLEI_HEIGHT]
    return max(1, min(b - a for a, b in zip(cuts[:-1], cuts[1:])))


def crop_size(req: DataRequest) -> Optional[int]:
    """The spec's input H when it is fixed and equal to W, else None."""
    first = next(iter(req.inputs.values()), None)
    if first is None or first.rank != 4:
        return None
    h, w = first.shape[2], first.shape[3]
    return int(h) if isinstance(h, int) and h == w else None


def _check_rank(req: DataRequest) -> None:
    first = next(iter(req.inputs.items()), None)
    if first is not None and first[1].rank != 4:
        raise DataError(f"segmentation crops are images [N, C, H, W]; the spec's input '{first[0]}' is {first[1]}",
                        code="E704")


def _bundle(req: DataRequest, name: str, make: Callable[[int, int, list], object], limit: Optional[int],
            split: list) -> DataBundle:
    _check_rank(req)
    wanted = crop_size(req)
    size = req.options.get("size") or wanted or DEFAULT_SIZE
    if limit is not None and size > limit and req.options.get("size") is None:
        size = limit
    stride = req.options.get("stride") or max(1, size // 2)
    try:
        splits = make(size, stride, split)
    except DataError as e:
        given = "crop size" in e.message and "size" in req.given
        raise DataError(e.message, option="size" if given else None, code="E709" if given else "E702") from None
    params = {"num_classes": splits.num_classes, "in_channels": splits.in_channels}
    if wanted is not None and wanted != size:
        params["size"] = size
    meta = {**splits.info, "mean": 0.0, "std": 1.0}  # already scaled to about [0, 1]: augmentation sees it as is
    return DataBundle(splits.train, splits.val, splits.test, task="segmentation", num_classes=splits.num_classes,
                      spec_params=params, meta=meta, name=name,
                      options={"size": size, "stride": stride, "split": list(split)})


@register_dataset("nuclei", help="stardist's 2-D nuclei image and mask, tiled into crops (segmentation, 2 classes)",
                  options=crop_options(NUCLEI_SPLIT, "heights of the train, val, test bands of the image"))
def load_nuclei(req: DataRequest) -> DataBundle:
    if req.arg:
        raise DataError(f"nuclei takes no argument, got '{req.arg}'",
                        hint="for your own image/mask pairs use --data segfolder:PATH")
    split = req.options.get("split") or list(NUCLEI_SPLIT)
    return _bundle(req, "nuclei", nuclei_crops, _band_limit(split), split)


@register_dataset("segfolder", help="segfolder:PATH — a folder of image/mask pairs (NAME.png + NAME_mask.png, "
                                    "or images/ + masks/), tiled into crops",
                  options=crop_options(FOLDER_SPLIT, "train, val, test fractions of the files (1-2 pairs: of "
                                                     "every image's rows)"))
def load_segfolder(req: DataRequest) -> DataBundle:
    if not req.arg:
        raise DataError("needs a folder: --data segfolder:PATH")
    split = req.options.get("split") or list(FOLDER_SPLIT)
    return _bundle(req, f"segfolder:{req.arg}",
                   lambda size, stride, split: image_folder_crops(req.arg, size, stride, split, seed=req.seed), None,
                   split)


__all__ = ["nuclei_image", "nuclei_crops", "load_segmentation", "crop_size", "crop_options", "DEFAULT_SIZE"]
