"""specgraph: a declarative graph-spec compiler for neural networks.

YAML spec --load--> Spec --expand+infer--> Graph --build--> torch.fx.GraphModule
                                              \\--render--> graphviz.Digraph, --summary--> table
                     module --optimize--> faster module, --export--> ONNX / TorchScript / .pt2 / Python
"""

# The render package first, so that `specgraph.render` stays the function below: importing the
# package later (import specgraph.render.files) would rebind the name to the module.
from . import render as _render_package  # noqa: F401
from .api import build, check, export, load, optimize, render, summary
from .train import train
from .diagnostics import BackendError, Diagnostic, InputError, Location, SpecError
from .ir.graph import Graph
from .lang.limits import Limits
from .ops import Op, OpParams, ShapeError, register_op
from .lang.spec import Spec

__version__ = "0.1.0"

__all__ = ["load", "check", "build", "summary", "render", "train", "export", "optimize", "SpecError", "InputError", "BackendError", "Diagnostic", "Location", "Graph", "Spec",
           "Limits", "Op", "OpParams", "ShapeError", "register_op", "__version__"]
