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

Options (``data_options`` / ``--data-option``): ``size`` (the crop size; a spec that declares
a ``size`` param gets it, unless ``--set`` gives one), ``stride`` (default size // 2) and
``split`` (nuclei: the band heights, default 0.5, 0.25, 0.25; segfolder: 0.7, 0.15, 0.15).
"""

from __future__ import annotations

from typing import Callable, Optional

from ..data import DataError as CropError
from .datasets import DataBundle, DataError, DataOption, DataRequest, register_dataset

DEFAULT_SIZE = 128
NUCLEI_LIMIT = 128  # the height of the nuclei image's val and test bands (with the default split)
NUCLEI_HEIGHT = 512
NUCLEI_SPLIT = (0.5, 0.25, 0.25)
FOLDER_SPLIT = (0.7, 0.15, 0.15)


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
    except CropError as e:
        raise DataError(str(e), option="size" if "crop size" in str(e) and "size" in req.given else None,
                        code="E709" if "crop size" in str(e) and "size" in req.given else "E702") from None
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
    from ..data.nuclei import nuclei_crops

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
    from ..data.nuclei import image_folder_crops

    if not req.arg:
        raise DataError("needs a folder: --data segfolder:PATH")
    split = req.options.get("split") or list(FOLDER_SPLIT)
    return _bundle(req, f"segfolder:{req.arg}",
                   lambda size, stride, split: image_folder_crops(req.arg, size, stride, split, seed=req.seed), None,
                   split)


__all__ = ["crop_size", "crop_options", "DEFAULT_SIZE"]
