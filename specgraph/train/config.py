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

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from ..diagnostics import Diagnostic, Location, SpecError, did_you_mean
from ..lang.marked_yaml import Source, load_yaml_file
from ..lang.validation import pydantic_diagnostics

Precision = Literal["32", "bf16-mixed", "16-mixed"]


class TrainConfig(BaseModel):
    """Every setting of a training run, with its default."""

    model_config = ConfigDict(extra="forbid")

    data: Optional[str] = Field(None, description="Dataset: fashion-mnist, digits, imagefolder:PATH, ... "
                                                  "(`name:ARG` passes a path or option to the loader).")
    data_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the dataset's loader (min_count, window, seq_len, split, ...; "
                                          "docs/training.md lists each dataset's); merged key by key across "
                                          "the spec, the file and the command line.",
        json_schema_extra={"additionalProperties": {"anyOf": [{"type": ["number", "boolean", "string"]},
                                                              {"type": "array", "items": {"type": "number"}}]}})
    epochs: int = Field(10, ge=1, description="Epochs at most.")
    batch_size: int = Field(64, ge=1, description="Examples per batch (per device).")
    lr: float = Field(1e-3, gt=0, description="Learning rate.")
    optimizer: Literal["sgd", "adam", "adamw"] = Field("adam", description="sgd (with momentum), adam or adamw.")
    momentum: float = Field(0.9, ge=0, description="SGD's momentum.")
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="The learning rate over the run, stepped per optimiser step: constant, linear "
                                "(down to 0 at the last step, as word2vec) or cosine (half a cosine, down to 0).")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty (decoupled for adamw).")
    early_stop: Optional[int] = Field(None, ge=1, description="Patience: stop after this many validation checks "
                                                              "without improvement of `monitor`; the best weights are kept.")
    monitor: str = Field("val_loss", description="The metric early stopping and the best checkpoint watch "
                                                 "(val_loss, val_acc, val_dice, ...; scores are maximised).")
    grad_clip: Optional[float] = Field(None, gt=0, description="Clip the gradients' global norm to this.")
    precision: Precision = Field("32", description="32, bf16-mixed or 16-mixed.")
    accelerator: Literal["cpu", "gpu", "auto"] = Field("auto", description="cpu, gpu or auto.")
    devices: Union[int, Literal["auto"]] = Field(1, description="Devices (processes) per node, or auto.")
    num_nodes: int = Field(1, ge=1, description="Machines (with torchrun or SLURM).")
    strategy: Literal["auto", "ddp", "fsdp"] = Field("auto", description="auto, ddp or fsdp (GPUs only).")
    init_from: Optional[str] = Field(None, description="A checkpoint or state_dict file: tensors whose name and shape "
                                                       "match are loaded, the rest is reported.")
    freeze: list[str] = Field(default_factory=list, description="Globs over parameter and module names "
                                                                "(`layer1.*`): no gradient, batch norm kept in eval mode.")
    augment: list[Union[str, dict[str, Any]]] = Field(
        default_factory=list, description="Training-split augmentation: flip, vflip, crop[:PAD], rotation[:DEG], "
                                          "brightness[:F], contrast[:F] (or {name: value}).")
    aux_weight: float = Field(0.3, ge=0, description="Weight of each training-only auxiliary output in the loss.")
    out: Optional[str] = Field(None, description="The run folder (default runs/<spec name>); a folder that holds "
                                                 "something already is left alone: the run goes to the next free "
                                                 "name (runs/lenet5-2), unless `resume` or `overwrite`.")
    resume: bool = Field(False, description="Continue the run folder's run from checkpoints/last.ckpt (without "
                                            "`out`: the latest run of the spec on the same data).")
    overwrite: bool = Field(False, description="Replace the run in the run folder (its checkpoints, logs, metrics "
                                               "and model.pt) instead of starting the next free name.")
    seed: int = Field(0, description="Seed of the initial weights, the shuffles, the splits and dropout.")
    workers: int = Field(0, ge=0, description="DataLoader worker processes (0: load in the training process).")
    threads: Optional[int] = Field(None, ge=1, description="torch's CPU threads during the run (default: measured "
                                                           "before the first epoch, the fastest of 1, half and all "
                                                           "the cores).")
    nan_policy: Literal["stop", "skip", "ignore"] = Field(
        "stop", description="A step whose loss or gradients are not finite: stop the run (error E711; the best "
                            "checkpoint is kept), skip that step, or ignore it and train on.")
    limit_train_batches: Optional[Union[int, float]] = Field(
        None, description="Batches per training epoch: a count, or a fraction of the split.")
    limit_val_batches: Optional[Union[int, float]] = Field(
        None, description="Batches per validation check: a count, or a fraction of the split.")
    progress: bool = Field(True, description="Show the running epoch's progress bar (in a terminal).")
    quiet: bool = Field(False, description="Print nothing but errors: no banner, no epoch lines, no bar.")

    _option_places: dict[str, Optional[Location]] = PrivateAttr(default_factory=dict)
    _setting_places: dict[str, Optional[Location]] = PrivateAttr(default_factory=dict)

    @property
    def option_places(self) -> dict[str, Optional[Location]]:
        """Where each data option was written (None: the command line or a keyword), for errors."""
        return self._option_places

    def setting_place(self, name: str) -> tuple[Optional[Location], tuple[str, ...]]:
        """Where setting ``name`` was written, for an error about it: (its location in the spec or
        the --config file, no detail) or (None, a detail line naming its flag); (None, ()) for a default."""
        if name not in self._setting_places:
            return None, ()
        place = self._setting_places[name]
        if place is None:
            return None, (f"given with --{name.replace('_', '-')} (or {name}= in Python)",)
        return place, ()

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("data_options", mode="after")
    @classmethod
    def _scalar_options(cls, v: dict) -> dict:
        for key, value in v.items():
            scalar = isinstance(value, (bool, int, float, str))
            numbers = isinstance(value, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                      for x in value)
            if not (scalar or numbers):
                raise ValueError(f"option '{key}' must be a number, true/false, a text or a list of numbers; "
                                 f"found {value!r}")
        return v

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
        """min for losses and errors, max for scores (accuracy, dice, iou, analogy accuracy)."""
        return "max" if any(k in self.monitor for k in ("acc", "dice", "iou", "analogy")) else "min"


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
    places: dict[str, Optional[Location]] = {}
    settings: dict[str, Optional[Location]] = {}

    def note_places(layer: dict, source: Optional[Source], base: tuple) -> None:
        for key in layer:
            settings[str(key)] = source.location(base + (key,), key=True) if source else None
        options = layer.get("data_options")
        if isinstance(options, dict):
            for key in options:
                places[str(key)] = source.location(base + ("data_options", key), key=True) if source else None

    if spec_train:
        diags += _layer_diagnostics(spec_train, spec_source, ("train",), "the train settings")
        layers.append(spec_train)
        note_places(spec_train, spec_source, ("train",))
    if config_file is not None:
        data, source = read_config_file(config_file)
        base: tuple = ()
        if "train" in data and isinstance(data["train"], dict):  # a spec file given as --config
            data, base = data["train"], ("train",)
        diags += _layer_diagnostics(data, source, base, "the train settings")
        layers.append(data)
        note_places(data, source, base)
    cli = {k: v for k, v in (overrides or {}).items() if v is not None}
    diags += _layer_diagnostics(cli, None, (), "")
    layers.append(cli)
    note_places(cli, None, ())
    if diags:
        raise SpecError(diags)
    merged: dict = {}
    for layer in layers:
        options = {**merged.get("data_options", {}), **(layer.get("data_options") or {})}
        merged.update(layer)
        merged["data_options"] = options  # key by key: the command line's window keeps the spec's min_count
    config = TrainConfig.model_validate(merged)
    config._option_places, config._setting_places = places, settings
    return config


def train_schema() -> dict:
    """The JSON Schema (draft-07) of a ``train:`` section, for docs/specgraph.schema.json."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    raw = TrainConfig.model_json_schema()
    props = clean(raw["properties"])
    props["precision"] = {"description": props["precision"]["description"],
                          "anyOf": [{"enum": list(Precision.__args__)}, {"const": 32}]}
    return {"description": "Training settings (`specgraph train`, docs/training.md); the command line overrides them.",
            "type": ["object", "null"], "additionalProperties": False, "properties": props}


def config_yaml(config: TrainConfig, extra: Optional[dict] = None) -> str:
    """The resolved settings as YAML, for the run folder."""
    import yaml

    data = config.model_dump(mode="json")
    if extra:
        data.update(extra)  # e.g. data_options: the values the loader used, defaults included
    return yaml.safe_dump(data, sort_keys=False)
