"""Data augmentation of the training split, through torchvision.transforms.v2.

Each entry of ``augment`` (spec ``train: {augment: [...]}``, or ``--augment`` repeated) is a
name, ``name:VALUE`` or a one-key mapping ``{name: VALUE}``:

| entry              | transform                                   | default |
|--------------------|---------------------------------------------|---------|
| ``flip``           | RandomHorizontalFlip(p=0.5)                 |         |
| ``vflip``          | RandomVerticalFlip(p=0.5)                   |         |
| ``crop:PAD``       | RandomCrop(to the image's size, padding=PAD)| 4       |
| ``rotation:DEG``   | RandomRotation(±DEG)                        | 15      |
| ``brightness:F``   | ColorJitter(brightness=F)                   | 0.2     |
| ``contrast:F``     | ColorJitter(contrast=F)                     | 0.2     |

Images ([C, H, W]) are un-standardised to [0, 1] around the transform (when the dataset says
its mean and std), so brightness and contrast act on real intensities. For segmentation the
mask moves with the image (flips, crops, rotations) and is left alone by colour changes.
The validation and test splits are never augmented.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch.utils.data import Dataset

from ..diagnostics import Diagnostic, SpecError, did_you_mean

DEFAULTS: dict[str, Optional[float]] = {"flip": None, "vflip": None, "crop": 4, "rotation": 15, "brightness": 0.2,
                                        "contrast": 0.2}


def parse_entry(entry: Any) -> tuple[str, Optional[float]]:
    """``"rotation:10"`` or ``{"rotation": 10}`` -> ("rotation", 10.0)."""
    if isinstance(entry, dict) and len(entry) == 1:
        name, value = next(iter(entry.items()))
    elif isinstance(entry, str):
        name, _, raw = entry.partition(":")
        value = raw or None
    else:
        raise SpecError(Diagnostic("E204", f"augmentation {entry!r}: expected a name, name:VALUE or {{name: VALUE}}"))
    name = str(name).strip()
    if name not in DEFAULTS:
        raise SpecError(Diagnostic("E204", f"unknown augmentation '{name}'",
                                   hint=did_you_mean(name, DEFAULTS) or f"augmentations: {', '.join(DEFAULTS)}"))
    if value is None:
        return name, DEFAULTS[name]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(Diagnostic("E204", f"augmentation '{name}': expected a number, found {value!r}")) from None
    if number < 0:
        raise SpecError(Diagnostic("E204", f"augmentation '{name}': expected a number >= 0, found {number}"))
    return name, number


def build_transform(entries: list, image_size: tuple[int, int]) -> Optional[Callable]:
    """A v2.Compose of the entries, or None when there are none."""
    if not entries:
        return None
    from torchvision.transforms import v2

    steps = []
    for name, value in map(parse_entry, entries):
        if name == "flip":
            steps.append(v2.RandomHorizontalFlip())
        elif name == "vflip":
            steps.append(v2.RandomVerticalFlip())
        elif name == "crop":
            steps.append(v2.RandomCrop(image_size, padding=int(value or 0)))
        elif name == "rotation":
            steps.append(v2.RandomRotation(float(value or 0)))
        elif name == "brightness":
            steps.append(v2.ColorJitter(brightness=float(value or 0)))
        elif name == "contrast":
            steps.append(v2.ColorJitter(contrast=float(value or 0)))
    return v2.Compose(steps)


class Augmented(Dataset):
    """``base`` with ``transform`` applied to each image (and its mask, for segmentation)."""

    def __init__(self, base: Dataset, transform: Callable, segmentation: bool = False,
                 mean: float = 0.0, std: float = 1.0):
        self.base, self.transform, self.segmentation = base, transform, segmentation
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i):
        from torchvision import tv_tensors

        x, y = self.base[i]
        image = tv_tensors.Image(x * self.std + self.mean)
        if self.segmentation:
            image, mask = self.transform(image, tv_tensors.Mask(y))
            y = mask.as_subclass(torch.Tensor)
        else:
            image = self.transform(image)
        return (image.as_subclass(torch.Tensor) - self.mean) / self.std, y


def augment_dataset(train: Dataset, entries: list, task: str, meta: dict) -> Dataset:
    """The training split with augmentation, checked to hold images; ``train`` itself when none."""
    if not entries:
        return train
    x = train[0][0]
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise SpecError(Diagnostic("E705", f"augmentation needs image inputs [C, H, W]; this data's inputs are {shape}",
                                   hint="remove `augment` for this dataset"))
    transform = build_transform(entries, tuple(x.shape[1:]))
    return Augmented(train, transform, segmentation=task == "segmentation",
                     mean=float(meta.get("mean", 0.0)), std=float(meta.get("std", 1.0)))
