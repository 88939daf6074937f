"""Image classification datasets: fashion-mnist, digits, imagefolder:PATH.

Splits (fixed by the seed, default 0):

* ``fashion-mnist`` — the Debian package dataset-fashion-mnist
  (/usr/share/datasets/fashion-mnist), or ``fashion-mnist:PATH``, any folder of IDX files
  (gzipped or raw) named like the originals (``train-images-idx3-ubyte[.gz]``,
  ``t10k-labels-idx1-ubyte[.gz]``): train 55,000 and validation 5,000 drawn from the 60,000
  training images, test the 10,000 test images.
* ``digits`` — scikit-learn's load_digits (1,797 8×8 images, 10 classes): test 20%, validation
  10%, train the other 70%.
* ``imagefolder:PATH`` — torchvision's ImageFolder (one subfolder per class). When PATH holds
  ``train/`` and ``val/`` (and optionally ``test/``) folders, those are the splits; otherwise
  80% / 10% / 10%.

Option (``data_options`` / ``--data-option``): ``split`` — train, val, test fractions for
``digits`` (default 0.7, 0.1, 0.2) and for an ``imagefolder`` without train/val folders
(0.8, 0.1, 0.1).

Images are resized to the spec's input H×W and converted to its channel count (1: grey,
3: RGB), then standardised with the training split's mean and standard deviation; each change
is one line of ``DataBundle.adapted``, which the run prints. Every file of an image folder is
decoded once before training (image_files.py), and a one-class folder is refused (fit.py).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from . import DataBundle, DataError, DataOption, DataRequest, register_dataset
from .image_files import check_images, describe_arrays, describe_fit

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class ImageDataset(Dataset):
    """In-memory images [N, C, H, W] (float32) and integer labels [N]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not, as a numpy array."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: damaged gzip data ({e})") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(f"{path}: header says {dims} ({expected} bytes of data) but the file has {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)


def _find_idx(folder: Path, split: str, kind: str) -> Optional[Path]:
    """The IDX file of ``split`` (train | test) and ``kind`` (images | labels) in ``folder``."""
    marks = ("train",) if split == "train" else ("t10k", "test")
    for p in sorted(folder.iterdir()):
        name = p.name.lower()
        if p.is_file() and kind in name and any(m in name for m in marks):
            return p
    return None


def fit_images(x: torch.Tensor, size: tuple[int, int], channels: int) -> torch.Tensor:
    """Float images [N, C, H, W] resized to ``size`` and converted to ``channels``."""
    if tuple(x.shape[2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=x.shape[2] > size[0])
    if x.shape[1] != channels:
        if channels == 1:
            x = x.mean(dim=1, keepdim=True)
        elif x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1).contiguous()
        else:
            raise DataError(f"the images have {x.shape[1]} channels; the spec's input has {channels}")
    return x


def split_indices(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """A seeded permutation of range(n) cut into len(fractions) + 1 parts (the last takes the rest)."""
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum([int(round(f * n)) for f in fractions])
    return np.split(order, cuts)


def _standardise(train: torch.Tensor, *others: torch.Tensor) -> tuple[list[torch.Tensor], float, float]:
    mean, std = float(train.mean()), float(train.std()) or 1.0
    return [(t - mean) / std for t in (train, *others)], mean, std


def _classification(name: str, parts: dict[str, tuple[torch.Tensor, torch.Tensor]], req: DataRequest,
                    classes: list[str] | tuple[str, ...]) -> DataBundle:
    (xtr, xva, xte), mean, std = _standardise(*(parts[k][0] for k in ("train", "val", "test")))
    n = len(classes)
    return DataBundle(train=ImageDataset(xtr, parts["train"][1]), val=ImageDataset(xva, parts["val"][1]),
                      test=ImageDataset(xte, parts["test"][1]), task="classification", num_classes=n,
                      spec_params={"num_classes": n}, meta={"classes": list(classes), "mean": mean, "std": std},
                      name=name)


@register_dataset("fashion-mnist", help="Zalando's Fashion-MNIST (Debian dataset-fashion-mnist), or :PATH to IDX files")
def load_fashion_mnist(req: DataRequest) -> DataBundle:
    folder = Path(req.arg) if req.arg else FASHION_MNIST_DIR
    if not folder.is_dir():
        hint = ("install it: apt-get install dataset-fashion-mnist (or `make setup`)" if not req.arg
                else "give a folder holding train-images/train-labels/t10k-images/t10k-labels IDX files")
        raise DataError(f"folder not found: {folder}", hint=hint)
    files = {(s, k): _find_idx(folder, s, k) for s in ("train", "test") for k in ("images", "labels")}
    missing = [f"{s} {k}" for (s, k), p in files.items() if p is None]
    if missing:
        raise DataError(f"no IDX file for {', '.join(missing)} in {folder}",
                        hint="expected names like train-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
    size, channels = req.image_size((28, 28)), req.channels(1)
    arrays = {}
    for split in ("train", "test"):
        images, labels = read_idx(files[split, "images"]), read_idx(files[split, "labels"])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
        if images.dtype.kind == "f" and not np.isfinite(images).all():
            first = int(np.argwhere(~np.isfinite(images.reshape(len(images), -1)).all(axis=1))[0, 0])
            raise DataError(f"{files[split, 'images']}: image {first} (0-based) holds values that are not finite")
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        arrays[split] = (fit_images(x, size, channels), torch.from_numpy(labels.astype(np.int64)))
        adapted = describe_arrays(tuple(images.shape[1:]), 1, size, channels)
    n_val = min(5000, len(arrays["train"][1]) // 10)
    val_idx, train_idx = split_indices(len(arrays["train"][1]), (n_val / len(arrays["train"][1]),), req.seed)
    xtr, ytr = arrays["train"]
    parts = {"train": (xtr[train_idx], ytr[train_idx]), "val": (xtr[val_idx], ytr[val_idx]), "test": arrays["test"]}
    n_classes = int(max(ytr.max(), arrays["test"][1].max())) + 1
    classes = FASHION_CLASSES if n_classes == 10 else [str(i) for i in range(n_classes)]
    bundle = _classification("fashion-mnist", parts, req, classes)
    bundle.adapted = adapted
    return bundle


DIGITS_SPLIT = (0.7, 0.1, 0.2)
FOLDER_SPLIT = (0.8, 0.1, 0.1)


@register_dataset("digits", help="scikit-learn's handwritten digits (8×8, resized to the spec's input)",
                  options={"split": DataOption("split", DIGITS_SPLIT, "train, val, test fractions (shuffled)")})
def load_digits(req: DataRequest) -> DataBundle:
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise DataError("scikit-learn is not installed", hint="pip install scikit-learn") from None
    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    size, channels = req.image_size((8, 8)), req.channels(1)
    x = fit_images(x, size, channels)
    y = torch.from_numpy(d.target.astype(np.int64))
    split = req.options.get("split") or list(DIGITS_SPLIT)
    test, val, train = split_indices(len(y), (split[2], split[1]), req.seed)
    parts = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
    bundle = _classification("digits", parts, req, [str(i) for i in range(10)])
    bundle.options = {"split": list(split)}
    bundle.adapted = describe_arrays((8, 8), 1, size, channels)
    return bundle


class _FolderImages(Dataset):
    """ImageFolder items as tensors fitted to the spec (resize, channels, standardise)."""

    def __init__(self, folder, indices, size, channels, mean: float = 0.0, std: float = 1.0):
        self.folder, self.indices, self.size, self.channels = folder, indices, size, channels
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.indices)

    def raw(self, i: int) -> tuple[torch.Tensor, int]:
        from torchvision.transforms.v2 import functional as TF

        try:
            image, label = self.folder[int(self.indices[i])]
        except OSError as e:  # checked before training; changed on disk since
            path = self.folder.samples[int(self.indices[i])][0]
            raise DataError(f"cannot read {path}: {e.strerror or e}") from None
        x = TF.to_dtype(TF.to_image(image), torch.float32, scale=True)
        return fit_images(x.unsqueeze(0), self.size, self.channels)[0], label

    def __getitem__(self, i):
        x, label = self.raw(i)
        return (x - self.mean) / self.std, torch.tensor(label)


@register_dataset("imagefolder", help="imagefolder:PATH — one subfolder of images per class (torchvision ImageFolder)",
                  options={"split": DataOption("split", FOLDER_SPLIT, "train, val, test fractions (shuffled) when "
                                                                      "PATH has no train/ and val/ folders")})
def load_imagefolder(req: DataRequest) -> DataBundle:
    if not req.arg:
        raise DataError("needs a folder: --data imagefolder:PATH")
    root = Path(req.arg)
    if not root.is_dir():
        raise DataError(f"folder not found: {root}")
    size, channels = req.image_size((224, 224)), req.channels(3)
    split = req.options.get("split") or list(FOLDER_SPLIT)
    try:
        if (root / "train").is_dir() and (root / "val").is_dir():
            if "split" in req.given:
                raise DataError(f"option 'split' does not apply: {root} has train/ and val/ folders", code="E709",
                                option="split", hint="drop the option, or put every class folder directly in PATH")
            folders = {"train": _image_folder(root / "train")}
            ids = folders["train"].class_to_idx  # val/ and test/ use the train folder's class ids
            folders.update({s: _image_folder(root / s, ids) for s in ("val", "test") if (root / s).is_dir()})
            sets = {s: _FolderImages(f, np.arange(len(f)), size, channels) for s, f in folders.items()}
            classes = folders["train"].classes
        else:
            folder = _image_folder(root)
            folders = {"all": folder}
            test, val, train = split_indices(len(folder), (split[2], split[1]), req.seed)
            sets = {s: _FolderImages(folder, idx, size, channels) for s, idx in
                    (("train", train), ("val", val), ("test", test))}
            classes = folder.classes
    except (FileNotFoundError, RuntimeError) as e:  # ImageFolder: "Couldn't find any class folder"
        raise DataError(str(e), hint="PATH/<class name>/<image files>") from None
    facts = check_images([p for f in folders.values() for p, _ in f.samples], root, req.progress)
    sample = [sets["train"].raw(i)[0] for i in range(min(len(sets["train"]), 64))]
    if not sample:
        raise DataError(f"no training images in {root}")
    stacked = torch.stack(sample)
    mean, std = float(stacked.mean()), float(stacked.std()) or 1.0
    for ds in sets.values():
        ds.mean, ds.std = mean, std
    n = len(classes)
    return DataBundle(train=sets["train"], val=sets["val"], test=sets.get("test"), task="classification",
                      num_classes=n, spec_params={"num_classes": n},
                      meta={"classes": list(classes), "mean": mean, "std": std}, name=f"imagefolder:{root}",
                      options={"split": "folders" if (root / "train").is_dir() and (root / "val").is_dir()
                               else list(split)}, adapted=describe_fit(facts, size, channels))


def _image_folder(root: Path, class_ids: Optional[dict[str, int]] = None):
    """torchvision's ImageFolder of ``root``; with ``class_ids`` (the train folder's), the same
    ids for the same class names: a val/ folder lacking a class must not shift the others' ids."""
    from torchvision.datasets import ImageFolder

    if class_ids is None:
        return ImageFolder(str(root))

    class Same(ImageFolder):
        def find_classes(self, directory):
            found, _ = super().find_classes(directory)
            unknown = [c for c in found if c not in class_ids]
            if unknown:
                raise DataError(f"{root} has class folders that train/ lacks: {', '.join(unknown[:5])}",
                                hint="every class of val/ and test/ needs a folder in train/")
            return list(class_ids), dict(class_ids)

    return Same(str(root), allow_empty=True)


__all__ = ["read_idx", "fit_images", "split_indices", "ImageDataset", "FASHION_MNIST_DIR"]
