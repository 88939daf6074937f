"""The flat Python export: one standalone ``nn.Module`` class holding the fx code of a module
whose graph the passes rewrote (``--optimize inference``: batch norm folded, layouts changed),
which no longer has the spec's blocks to write as classes (python.py writes those).

Its ``__init__`` creates the submodules at the node paths (plain ``nn.Module`` containers for
the middle levels), so state_dict keys are the module's, in order; its ``forward`` is the code
torch.fx generated, without fx's ``x = None`` releases.  Torch's modules are constructed from
their attributes (each call checked by rebuilding it on the meta device); other module classes,
functions and a ``scan:`` node's loop are copied in (source_file.py).  A module with training-only
outputs gets ``forward_train`` and ``forward_eval`` and a ``forward`` choosing by ``self.training``.
"""

from __future__ import annotations

from torch import fx, nn

from ..build import graph_modules
from ..passes.prepack import PrepackedConv2d
from .module_source import PythonExportError
from .source_file import SourceFile, class_text, init_lines, method


def flat_python_source(model: nn.Module, *, class_name: str | None = None, docstring: str = "") -> str:
    """The source text of one standalone module class equal to ``model`` (a module specgraph
    built, optimised or not)."""
    file = SourceFile()
    eval_gm, train_gm = graph_modules(model)
    if train_gm is not None:  # TrainEvalModule: one forward per mode
        name = class_name or type(eval_gm).__name__
        methods = [dispatch_forward(eval_gm), method(file, train_gm, "forward_train"), method(file, eval_gm, "forward_eval")]
    elif isinstance(model, fx.GraphModule):
        name = class_name or type(model).__name__
        methods = [method(file, model, "forward")]
    else:
        raise PythonExportError(f"expected a module built by specgraph (a torch.fx.GraphModule), "
                                f"found {type(model).__name__}")
    refuse_prepacked(model)
    init = ["super().__init__()"] + init_lines(file, model)
    return file.file_text(class_text(name, docstring, init, methods))


def refuse_prepacked(model: nn.Module) -> None:
    packed = next((path for path, m in model.named_modules() if isinstance(m, PrepackedConv2d)), None)
    if packed is not None:  # oneDNN's packed weights live in this process only
        raise PythonExportError(f"module {packed!r} is a prepacked oneDNN convolution, which only this process can "
                                f"run: optimise with prepack=False for export (specgraph.export does)")


def dispatch_forward(eval_gm: fx.GraphModule) -> str:
    params = [n.target for n in eval_gm.graph.nodes if n.op == "placeholder"]
    args = ", ".join(params)
    return (f"def forward(self, {args}):\n"
            f"    # training-only outputs are computed in train mode only\n"
            f"    if self.training:\n"
            f"        return self.forward_train({args})\n"
            f"    return self.forward_eval({args})")


__all__ = ["flat_python_source", "refuse_prepacked"]
