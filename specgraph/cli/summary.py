"""``specgraph summary``: the table of every node, with totals, the predicted peak memory of an
inference pass and, with ``--train`` / ``--fit``, of a training step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Literal, Optional

import typer

from .app import (LimitOpt, OutputFormat, SetOpt, SpecArg, TextOpt, app, check_spec, dims, err, guarded, known_dims, one_of,
                  print_summary)

Optimizer = Literal["adam", "adamw", "sgd"]
Precision = Literal["32", "bf16-mixed", "16-mixed"]


def _budget(text: Optional[str]) -> Optional[int]:
    from ..analysis.training import parse_bytes

    if text is None:
        return None
    try:
        return parse_bytes(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--fit") from e


@app.command()
def summary(spec: str = SpecArg,
            set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt, text: bool = TextOpt,
            batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1,
                                                     help="batch size (the dim N) for the memory columns, the "
                                                          "shapes and the training step [default: 1]"),
            dim: Optional[List[str]] = typer.Option(None, "--dim", help="size of another symbolic dim: NAME=INT (repeatable)"),
            depth: Optional[int] = typer.Option(None, "--depth", min=1,
                                                help="group the rows by node path to this depth, each block "
                                                     "with the totals of what it holds (as torchinfo's depth)"),
            train: bool = typer.Option(False, "--train",
                                       help="add the memory of one training step at the batch size: parameters, "
                                            "gradients, optimizer state, saved activations, predicted peak (CPU)"),
            optimizer: Optional[Optimizer] = typer.Option(None, "--optimizer",
                                                help="the optimizer of --train / --fit: adam | adamw | sgd (with momentum) "
                                                     "[default: adam]",
                                                parser=one_of(Optimizer, "--optimizer",
                                                              "expected adam, adamw or sgd, found {found!r}")),
            precision: Optional[Precision] = typer.Option(None, "--precision",
                                                help="the precision of --train / --fit: 32 | bf16-mixed | 16-mixed "
                                                     "[default: 32]",
                                                parser=one_of(Precision, "--precision",
                                                              "expected 32, bf16-mixed or 16-mixed, found {found!r}")),
            fit: Optional[str] = typer.Option(None, "--fit", metavar="SIZE",
                                              help="also find the largest batch whose training step fits in SIZE "
                                                   "(24GiB, 16GB, 512MiB)"),
            format: OutputFormat = typer.Option("text", "--format", help="text | json",
                                                parser=one_of(OutputFormat, "--format", "expected text or json"))):
    """Table of every node: path, op, output shape, parameters, MACs, parameter and activation
    bytes; with totals and the predicted inference peak memory (see specgraph/analysis/memory/),
    and with --train / --fit the memory of a training step (specgraph/analysis/training.py)."""
    from ..analysis.memory.walk import SizeError
    from ..analysis.summary import summarize

    sizes = dims(dim, minimum=1)
    if batch_size is not None and sizes.get("N", batch_size) != batch_size:
        raise typer.BadParameter(f"--dim N={sizes['N']} contradicts --batch-size {batch_size}", param_hint="--dim")
    budget = _budget(fit)
    for given, option in ((optimizer, "--optimizer"), (precision, "--precision")):
        if given is not None and not train and budget is None:  # an option that would change nothing
            raise typer.BadParameter("applies to the training step: give --train or --fit too", param_hint=option)
    graph = guarded(lambda: check_spec(spec, set_, limit, text=text), json_errors=format == "json")
    known_dims(sizes, graph)

    def go():
        try:
            return summarize(graph, batch_size, sizes, depth=depth)
        except SizeError as e:  # sizes that do not fit the spec: a usage error
            raise typer.BadParameter(str(e), param_hint="--batch-size / --dim") from e

    s = guarded(go)
    if train or budget is not None:
        guarded(lambda: _add_training(s, graph, batch_size or 1, sizes, optimizer or "adam", precision or "32", train,
                                      budget))
    if format == "json":
        print(json.dumps(s.to_json(), indent=2))
        return
    print_summary(s)


def _add_training(s, graph, batch: int, sizes: dict, optimizer: str, precision: str, train: bool,
                  budget: Optional[int]) -> None:
    """The training step's memory (with --train) and the largest batch that fits (--fit), on ``s``."""
    from .. import api
    from ..analysis.memory.walk import SizeError
    from ..torch.train_memory import TrainingRunError

    others = {k: v for k, v in sizes.items() if k != "N"}
    try:
        if train:
            s.training = api.training_memory(graph, batch, dims=others, optimizer=optimizer, precision=precision)
        if budget is not None:
            s.fit = (budget, api.largest_training_batch(graph, budget, dims=others, optimizer=optimizer,
                                                        precision=precision))
    except SizeError as e:  # a symbolic dim without a size: a usage error, as for the memory columns
        raise typer.BadParameter(str(e), param_hint="--batch-size / --dim") from e
    except TrainingRunError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(1)
