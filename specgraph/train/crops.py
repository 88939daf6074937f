"""Segmentation crops: ``nuclei`` (stardist's 2-D nuclei image) and ``segfolder:PATH`` (your own pairs).

Both come from :mod:`specgraph.data.nuclei`; items are (image [C, S, S] float32, mask [S, S]
int64 class ids), task "segmentation".

* ``nuclei`` — stardist's 512×512 fluorescence image of nuclei and its mask, made binary
  (0 background, 1 nucleus; 2 classes). Split by position into horizontal bands: rows 0-255
  train, 256-383 validation, 384-511 test; no pixel is in two splits. Intensities scaled by
  the train band's 1st/99.8th percentiles.
* ``segfolder:PATH`` — a folder of image/mask pairs (``NAME.png`` + ``NAME_mask.png``, or
  ``images/`` + ``masks/`` with matching names); masks binary (any non-zero pixel is
  foreground). Three or more pairs split by file (70/15/15, shuffled with the seed); one or
  two split into horizontal bands of every image.

The crop size S is the spec's input H (= W) when it is a fixed number; otherwise 128. Crops
are taken every S/2 pixels. When the spec's fixed size is larger than the data allows (a
nuclei band is 128 rows high), the crops are the largest size that fits and the spec's
``size`` param is set to it (unet_padded's input size). The spec also gets ``num_classes``
and ``in_channels`` from the data.
"""

from __future__ import annotations

from typing import Callable, Optional

from ..data import DataError as CropError
from .datasets import DataBundle, DataError, DataRequest, register_dataset

DEFAULT_SIZE = 128
NUCLEI_LIMIT = 128  # the height of the nuclei image's val and test bands


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


def _bundle(req: DataRequest, name: str, make: Callable[[int], object], limit: Optional[int]) -> DataBundle:
    _check_rank(req)
    wanted = crop_size(req)
    size = wanted or DEFAULT_SIZE
    if limit is not None and size > limit:
        size = limit
    try:
        splits = make(size)
    except CropError as e:
        raise DataError(str(e)) from None
    params = {"num_classes": splits.num_classes, "in_channels": splits.in_channels}
    if wanted is not None and wanted != size:
        params["size"] = size
    meta = {**splits.info, "mean": 0.0, "std": 1.0}  # already scaled to about [0, 1]: augmentation sees it as is
    return DataBundle(splits.train, splits.val, splits.test, task="segmentation", num_classes=splits.num_classes,
                      spec_params=params, meta=meta, name=name)


@register_dataset("nuclei", help="stardist's 2-D nuclei image and mask, tiled into crops (segmentation, 2 classes)")
def load_nuclei(req: DataRequest) -> DataBundle:
    from ..data.nuclei import nuclei_crops

    if req.arg:
        raise DataError(f"nuclei takes no argument, got '{req.arg}'",
                        hint="for your own image/mask pairs use --data segfolder:PATH")
    return _bundle(req, "nuclei", lambda size: nuclei_crops(size, max(1, size // 2)), NUCLEI_LIMIT)


@register_dataset("segfolder", help="segfolder:PATH — a folder of image/mask pairs (NAME.png + NAME_mask.png, "
                                    "or images/ + masks/), tiled into crops")
def load_segfolder(req: DataRequest) -> DataBundle:
    from ..data.nuclei import image_folder_crops

    if not req.arg:
        raise DataError("needs a folder: --data segfolder:PATH")
    return _bundle(req, f"segfolder:{req.arg}",
                   lambda size: image_folder_crops(req.arg, size, max(1, size // 2), seed=req.seed), None)


__all__ = ["crop_size", "DEFAULT_SIZE"]
