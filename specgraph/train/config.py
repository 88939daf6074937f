"""Training settings: one pydantic model, merged from three layers (later ones win):

    the spec's ``train:`` section  <  a separate YAML file (``--config``)  <  the command line

Each layer is validated on its own first, so an unknown key or a wrong type is reported at
its place in the spec or the file (E201 unknown key, E203 wrong type/value), like any other
spec mistake. Relative paths (``out``, ``init_from``, ``data: imagefolder:PATH``) are read
from the current folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import Diagnostic, SpecError, did_you_mean
from ..loader import Source, load_yaml_file
from ..spec import pydantic_diagnostics

Precision = Literal["32", "bf16-mixed", "16-mixed"]


class TrainConfig(BaseModel):
    """Every setting of a training run, with its default."""

    model_config = ConfigDict(extra="forbid")

    data: Optional[str] = None  # a registered dataset name, `name:ARG` for a loader taking a path
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    momentum: float = Field(0.9, ge=0)  # sgd only
    weight_decay: float = Field(0.0, ge=0)
    early_stop: Optional[int] = Field(None, ge=1)  # patience: validation checks without improvement
    monitor: str = "val_loss"  # what early stopping and the best checkpoint watch
    grad_clip: Optional[float] = Field(None, gt=0)  # max gradient norm
    precision: Precision = "32"
    accelerator: Literal["cpu", "gpu", "auto"] = "auto"
    devices: Union[int, Literal["auto"]] = 1
    num_nodes: int = Field(1, ge=1)
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    init_from: Optional[str] = None  # a checkpoint or a plain state_dict file
    freeze: list[str] = Field(default_factory=list)  # fnmatch globs over parameter and module names
    augment: list[Union[str, dict[str, Any]]] = Field(default_factory=list)  # see augment.py
    aux_weight: float = Field(0.3, ge=0)  # weight of each training-only auxiliary output
    out: Optional[str] = None  # the run folder (default: runs/<spec name>)
    resume: bool = False  # continue from <out>/checkpoints/last.ckpt
    seed: int = 0
    workers: int = Field(0, ge=0)  # DataLoader worker processes
    limit_train_batches: Optional[Union[int, float]] = None  # Lightning's: batches (int) or a fraction
    limit_val_batches: Optional[Union[int, float]] = None
    progress: bool = True  # the rich progress bar

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("freeze", mode="before")
    @classmethod
    def _one_glob(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("augment", mode="before")
    @classmethod
    def _one_augment(cls, v: Any) -> Any:
        return [v] if isinstance(v, (str, dict)) else v

    @property
    def monitor_mode(self) -> str:
        """min for losses and errors, max for scores (accuracy, dice, iou)."""
        return "max" if any(k in self.monitor for k in ("acc", "dice", "iou")) else "min"

    def run_dir(self, spec_name: str) -> Path:
        return Path(self.out) if self.out else Path("runs") / spec_name


FIELDS = tuple(TrainConfig.model_fields)


def _layer_diagnostics(data: dict, source: Optional[Source], base: tuple, what: str) -> list[Diagnostic]:
    try:
        TrainConfig.model_validate(data)
    except ValidationError as e:
        if source is not None:
            return pydantic_diagnostics(e, data, source, base, what, allowed=FIELDS)
        out = []
        for err in e.errors():
            key = ".".join(map(str, err["loc"]))
            if err["type"] == "extra_forbidden":
                out.append(Diagnostic("E201", f"unknown training setting '{key}'",
                                      hint=did_you_mean(key, FIELDS) or f"settings: {', '.join(FIELDS)}"))
            else:
                out.append(Diagnostic("E203", f"training setting '{key}': {err['msg']}; found {err.get('input')!r}"))
        return out
    return []


def read_config_file(path: str | Path) -> tuple[dict, Source]:
    """A YAML file of training settings (a mapping, or a spec-like file with a `train:` key)."""
    data, source = load_yaml_file(path)
    if not isinstance(data, dict):
        raise SpecError(Diagnostic("E106", f"training settings are a YAML mapping; found {type(data).__name__}",
                                   source.location(())))
    return data, source


def resolve_config(spec_train: Optional[dict] = None, spec_source: Optional[Source] = None,
                   config_file: Optional[str | Path] = None, overrides: Optional[dict] = None) -> TrainConfig:
    """Merge the layers (spec < file < overrides) into one TrainConfig; raises SpecError.

    ``overrides`` holds only what the user set (None values are ignored), e.g. the CLI flags.
    """
    layers: list[dict] = []
    diags: list[Diagnostic] = []
    if spec_train:
        diags += _layer_diagnostics(spec_train, spec_source, ("train",), "the train settings")
        layers.append(spec_train)
    if config_file is not None:
        data, source = read_config_file(config_file)
        base: tuple = ()
        if "train" in data and isinstance(data["train"], dict):  # a spec file given as --config
            data, base = data["train"], ("train",)
        diags += _layer_diagnostics(data, source, base, "the train settings")
        layers.append(data)
    cli = {k: v for k, v in (overrides or {}).items() if v is not None}
    diags += _layer_diagnostics(cli, None, (), "")
    layers.append(cli)
    if diags:
        raise SpecError(diags)
    merged: dict = {}
    for layer in layers:
        merged.update(layer)
    return TrainConfig.model_validate(merged)


def config_yaml(config: TrainConfig, extra: Optional[dict] = None) -> str:
    """The resolved settings as YAML, for the run folder."""
    import yaml

    data = config.model_dump(mode="json")
    if extra:
        data.update(extra)
    return yaml.safe_dump(data, sort_keys=False)
