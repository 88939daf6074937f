"""Transfer learning: partial weight loading by name (``--init-from``) and freezing (``--freeze``).

``--init-from FILE`` accepts a Lightning checkpoint of a specgraph run, any checkpoint dict
with a ``state_dict`` or ``model`` entry, or a plain state_dict (``torch.save(model.state_dict())``,
e.g. torchvision's weights, whose names the specs in specs/ share). Every tensor whose name
and shape match is loaded; the rest is reported, never silently dropped.

``--freeze GLOB`` (repeatable; fnmatch, so ``layer1.*`` or ``c1.conv.weight``) matches
parameter names and module names. Matched parameters get ``requires_grad = False``; matched
batch-norm modules (and those whose parameters are all frozen) stay in eval mode during
training, so their running statistics do not move either.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..diagnostics import Diagnostic, SpecError, did_you_mean

LIGHTNING_PREFIX = "model."  # specgraph's LightningModule keeps the built model as `.model`


@dataclass
class LoadReport:
    """What ``--init-from`` did: loaded names, and skipped ones with why."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file: kept as initialised
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (name, model shape, file shape)
    unused: list[str] = field(default_factory=list)  # in the file, not in the model

    def format(self, limit: int = 8) -> str:
        def names(items: list[str]) -> str:
            more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more

        lines = [f"init-from {self.source}: loaded {len(self.loaded)} tensors"]
        if self.missing:
            lines.append(f"  skipped {len(self.missing)} (missing from the file): {names(self.missing)}")
        if self.mismatched:
            shown = [f"{n} {list(m)} vs {list(f)}" for n, m, f in self.mismatched]
            lines.append(f"  skipped {len(self.mismatched)} (shape mismatch, model vs file): {names(shown)}")
        if self.unused:
            lines.append(f"  unused {len(self.unused)} (not in the model): {names(self.unused)}")
        return "\n".join(lines)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint or state_dict file, named as the built model names them."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SpecError(Diagnostic("E706", f"init-from: file not found: {path}")) from None
    except Exception as e:  # not a torch file, or one holding arbitrary objects
        raise SpecError(Diagnostic("E706", f"init-from: cannot read {path} as weights ({type(e).__name__})",
                                   hint="give a checkpoint (.ckpt) or a file saved with torch.save(model.state_dict())")) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SpecError(Diagnostic("E706", f"init-from: {path} holds no state_dict"))
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if tensors and all(k.startswith(LIGHTNING_PREFIX) for k in tensors):
        tensors = {k[len(LIGHTNING_PREFIX):]: v for k, v in tensors.items()}
    return tensors


def load_partial(model: nn.Module, path: str | Path) -> LoadReport:
    """Copy every tensor of ``path`` whose name and shape match into ``model``."""
    source = read_state_dict(path)
    report = LoadReport(str(path))
    own = model.state_dict()
    update = {}
    for name, tensor in own.items():
        if name not in source:
            report.missing.append(name)
        elif tuple(source[name].shape) != tuple(tensor.shape):
            report.mismatched.append((name, tuple(tensor.shape), tuple(source[name].shape)))
        else:
            update[name] = source[name].to(dtype=tensor.dtype)
            report.loaded.append(name)
    report.unused = [n for n in source if n not in own]
    model.load_state_dict(update, strict=False)
    return report


@dataclass
class Frozen:
    """What ``--freeze`` froze."""

    params: list[str] = field(default_factory=list)
    eval_modules: list[str] = field(default_factory=list)  # batch-norm modules kept in eval mode


def freeze(model: nn.Module, globs: list[str]) -> Frozen:
    """Freeze the parameters and modules matching ``globs``; an unmatched glob is an error (E707)."""
    frozen = Frozen()
    if not globs:
        return frozen
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    unmatched = []
    chosen_params: set[str] = set()
    chosen_modules: set[str] = set()
    for glob in globs:
        p = {n for n in params if fnmatch.fnmatchcase(n, glob)}
        m = {n for n in modules if n and fnmatch.fnmatchcase(n, glob)}
        if not p and not m:
            unmatched.append(glob)
        chosen_params |= p
        chosen_modules |= m
    if unmatched:
        tops = sorted({n.split(".")[0] + ".*" for n in params})
        raise SpecError([Diagnostic("E707", f"freeze: '{g}' matches no parameter or module of the model",
                                    hint=did_you_mean(g, tops) or f"top-level names: {', '.join(tops)}")
                         for g in unmatched])
    for name in chosen_modules:  # a module matched: all of its parameters
        chosen_params |= {f"{name}.{n}" for n, _ in modules[name].named_parameters()}
    for name in sorted(chosen_params):
        params[name].requires_grad_(False)
    frozen.params = sorted(chosen_params)
    for name, module in modules.items():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            own = [f"{name}.{n}" for n, _ in module.named_parameters()]
            inside = name in chosen_modules or any(name.startswith(c + ".") for c in chosen_modules)
            if inside or (own and all(n in chosen_params for n in own)):
                frozen.eval_modules.append(name)
    return frozen


def keep_frozen_in_eval(model: nn.Module, frozen: Frozen) -> None:
    """After ``model.train()``: put the frozen batch-norm modules back in eval mode."""
    modules = dict(model.named_modules())
    for name in frozen.eval_modules:
        modules[name].eval()
