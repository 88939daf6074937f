"""``specgraph train``: its options are generated from the fields of TrainConfig.

Each field ``some_name`` becomes ``--some-name``, typed as the field is (Optional dropped): a
Literal shows its values as the option's choices, a bool is a flag that sets the value other
than the default (``--resume``; ``--no-progress`` for a field that defaults to true), a list is a
repeatable option, a mapping a repeatable KEY=VALUE (VALUE read as YAML), a union is text read
as its members allow (``--devices <int|auto>``: digits are an int). Its help is the field's description, unless ``CLI_SAYS``
says it the command line's way (shorter, with a short flag or a path metavar). Adding a field to
TrainConfig adds its option; nothing here needs to change.

The choices are shown, not enforced here: TrainConfig validates every layer of the settings (the
spec's ``train:``, ``--config``, the command line) alike, so an unknown optimizer is the same E203
wherever it was written. An option the user does not give is None, which leaves the lower layers'
value.
"""

from __future__ import annotations

import inspect
import shlex
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Literal, Optional, Union, get_args, get_origin

import typer
from pydantic_core import PydanticUndefined

from ..train.config import TrainConfig
from .app import SetOpt, SpecArg, TextOpt, app, err, guarded, key_values, overrides, spec_source, yaml_value

_DESCRIPTION: Any = object()  # CliSays.help's default: the field's own description


@dataclass(frozen=True)
class CliSays:
    """How the command line says a TrainConfig field, where it differs from the field itself."""

    help: Optional[str] = _DESCRIPTION  # None: no help text
    flag: Optional[str] = None  # the long name, when not --field-name
    short: Optional[str] = None
    path: bool = False
    metavar: Optional[str] = None


CLI_SAYS: dict[str, CliSays] = {
    "data": CliSays(short="-d", help="dataset: fashion-mnist, digits, imagefolder:PATH, sunspots, co2, csv:PATH, "
                                     "lee, text:PATH, nuclei, segfolder:PATH"),
    "data_options": CliSays(
        flag="--data-option", short="-D", metavar="KEY=VALUE",
        help="an option of the dataset's loader (repeatable; the value is read as YAML: 5, 0.001, true, "
             "0.8,0.1,0.1). lee, text: min_count, subsample, window (word2vec), seq_len (LM), split; "
             "sunspots, co2, csv: window, horizon, split; nuclei, segfolder: size, stride, split; "
             "digits, imagefolder: split. See docs/training.md"),
    "early_stop": CliSays(help="patience: validation checks without improvement"),
    "monitor": CliSays(help="metric for early stopping and the best checkpoint (val_loss)"),
    "grad_clip": CliSays(help="clip the gradient norm to this"),
    "devices": CliSays(help="devices per node (a number, or auto)"),
    "init_from": CliSays(path=True, help="checkpoint or state_dict to start from (partial, by name)"),
    "freeze": CliSays(help="glob of parameter/module names to freeze (repeatable)"),
    "augment": CliSays(help="flip, vflip, crop[:PAD], rotation[:DEG], brightness[:F], contrast[:F] (repeatable)"),
    "out": CliSays(short="-o", path=True, help="run folder (default runs/<spec name>; taken: the next free "
                                                 "name, runs/<spec name>-2)"),
    "resume": CliSays(help="continue the run in --out (default: the spec's latest run on this data)"),
    "overwrite": CliSays(help="replace the run in --out instead of starting the next free name"),
    "workers": CliSays(help="DataLoader worker processes"),
    "threads": CliSays(help="CPU threads for torch (default: measured before the first epoch)"),
    "nan_policy": CliSays(help="a step with a NaN/inf loss or gradient: stop (error E711), skip it, or ignore it"),
    "progress": CliSays(help="no progress bar (the epoch lines stay)"),
    "quiet": CliSays(short="-q", help="print nothing but errors"),
}
CONFIG_AFTER = "data_options"  # --config sits after the dataset's options in the help, where it always was


@dataclass(frozen=True)
class ConfigOption:
    """One generated option: the field it sets, its flags, and how its value becomes the setting."""

    field: str
    param: str  # the Python parameter's name
    flags: tuple[str, ...]
    annotation: Any
    info: Any  # the typer.Option
    setting: Callable[[Any], Any]  # the option's value (None: not given) -> the setting (None: not set)


def _members(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(a for a in get_args(annotation) if a is not type(None))
    return (annotation,)


def _union_reader(members: tuple[Any, ...]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        if int in members and text.isascii() and text.isdigit():
            return int(text)
        if float in members:
            try:
                return float(text)
            except ValueError:
                pass
        return text  # TrainConfig says what is wrong with it

    return read


def config_option(name: str, field: Any) -> ConfigOption:
    """The option of TrainConfig field ``name``."""
    says = CLI_SAYS.get(name, CliSays())
    members = _members(field.annotation)
    kind = members[0] if len(members) == 1 else Union[members]  # Optional dropped
    origin = get_origin(kind)
    flag = says.flag or "--" + name.replace("_", "-")
    param, extra, read = name, {}, None
    if kind is bool:
        if field.default:  # a flag sets the value other than the default
            flag, param = says.flag or "--no-" + name.replace("_", "-"), "no_" + name
        annotation = bool
    elif origin is Literal:
        annotation, extra = Optional[kind], {"parser": str}  # shown as choices; TrainConfig validates
    elif origin is list:
        annotation = Optional[List[str]]
    elif origin is dict:
        annotation = Optional[List[str]]

        def pairs(items: list[str]) -> Optional[dict]:
            return key_values(items, flag) or None

        read = pairs
    elif len(members) > 1:  # shown as what it may be: <int|auto>, <int|float>
        annotation, read = Optional[str], _union_reader(members)
        shown = [v for m in members for v in (get_args(m) if get_origin(m) is Literal else (m.__name__,))]
        extra = {"metavar": "<" + "|".join(map(str, shown)) + ">"}
    elif says.path:
        annotation = Optional[Path]
    elif kind in (int, float, str):
        annotation = Optional[kind]
    else:  # any other type: YAML text, checked by TrainConfig
        annotation, read = Optional[str], yaml_value
    flags = (flag,) + ((says.short,) if says.short else ())
    help_text = (field.description or None) if says.help is _DESCRIPTION else says.help
    extra.setdefault("metavar", says.metavar)
    if help_text and kind is not bool and field.default not in (None, PydanticUndefined):
        help_text += f" \\[default: {field.default}]"  # TrainConfig's (the option itself defaults to "not given")
    info = typer.Option(False if kind is bool else None, *flags, help=help_text, **extra)

    def setting(value: Any) -> Any:
        if kind is bool:
            return (not field.default) if value else None
        if value is None or isinstance(value, (list, tuple)) and not value:
            return None
        if read is not None:
            return read(value)
        if says.path:
            return str(value)
        return list(value) if isinstance(value, (list, tuple)) else value

    return ConfigOption(name, param, flags, annotation, info, setting)


def config_options(model: type[TrainConfig] = TrainConfig) -> list[ConfigOption]:
    """An option for each field of ``model``, in the fields' order."""
    return [config_option(name, field) for name, field in model.model_fields.items()]


OPTIONS = config_options()
_KEYWORD = inspect.Parameter.KEYWORD_ONLY


def _signature(options: list[ConfigOption]) -> inspect.Signature:
    """What typer reads the options from: spec, the fields' options (--config after CONFIG_AFTER), --set."""
    own = {"spec", "config", "set_", "text"}
    clash = own & {o.param for o in options}
    if clash:
        raise TypeError(f"TrainConfig fields {sorted(clash)} clash with the train command's own options")
    params = [inspect.Parameter("spec", _KEYWORD, default=SpecArg, annotation=str)]
    for o in options:
        params.append(inspect.Parameter(o.param, _KEYWORD, default=o.info, annotation=o.annotation))
        if o.field == CONFIG_AFTER:
            params.append(inspect.Parameter("config", _KEYWORD, annotation=Optional[Path], default=typer.Option(
                None, "--config", "-c", help="YAML file of training settings")))
    params.append(inspect.Parameter("set_", _KEYWORD, default=SetOpt, annotation=Optional[List[str]]))
    params.append(inspect.Parameter("text", _KEYWORD, default=TextOpt, annotation=bool))
    return inspect.Signature(params)


def resume_command(given: dict[str, Any], run_dir: str) -> str:
    """The command that continues the run in ``run_dir``: the options the user gave (``given``,
    as typer parsed them), with --out set to the folder, --resume added and --overwrite dropped."""
    words = ["specgraph", "train", str(given["spec"])]
    for o in OPTIONS:
        value = given[o.param]
        if o.field in ("out", "resume", "overwrite") or value is None or value is False or value == []:
            continue
        if value is True:
            words.append(o.flags[0])
        else:
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                words += [o.flags[0], str(item)]
    if given["config"]:
        words += ["--config", str(given["config"])]
    for item in given["set_"] or []:
        words += ["--set", item]
    return shlex.join([*words, "--out", run_dir, "--resume"])


def train(**given: Any) -> None:
    """Train the spec on a dataset with Lightning: checkpoints, early stopping, metrics, curves.

    Ctrl-C ends the run with exit code 130 and the command that continues it."""
    settings = {o.field: o.setting(given[o.param]) for o in OPTIONS}
    params = overrides(given["set_"])
    config = given["config"]

    def go():
        from ..train import train as run

        return run(spec_source(given["spec"], given["text"]), config=str(config) if config else None, params=params,
                   **settings)

    from ..train.rundir import TrainingInterrupted

    try:
        guarded(go)
    except TrainingInterrupted as e:
        if e.fitted:
            err.print(e.describe(), markup=False)
        elif e.saved:
            err.print(f"{e.describe()}; continue with: {resume_command(given, str(e.run_dir))}", markup=False)
        else:
            err.print(f"{e.describe()}: start again with --overwrite --out {shlex.quote(str(e.run_dir))}",
                      markup=False)
        raise typer.Exit(130)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130)


train.__signature__ = _signature(OPTIONS)
app.command()(train)
