"""The house rules, checked on the source: the pipeline's dependency direction, no import
cycles, and no dispatch on op names outside specgraph/ops (see docs/architecture.md).

Imports are read from the AST, function-level (lazy) imports included: a lazy import is a
dependency all the same, only a later one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent / "specgraph"

# What each part of the package may import from specgraph (besides itself).  The pipeline:
# lang -> ir -> ops -> expand -> analysis / render; torch/ sees only ir and ops; train builds
# on those; api.py and cli/ see everything.
BASE = {"diagnostics", "gcpause"}
ALLOWED = {
    "diagnostics": set(),
    "gcpause": set(),
    "ir": {"diagnostics"},
    "lang": BASE | {"ir"},
    "ops": BASE | {"ir"},
    "expand": BASE | {"ir", "lang", "ops"},
    "analysis": BASE | {"ir", "ops"},
    "render": BASE | {"ir", "lang", "ops", "expand", "analysis"},
    "torch": BASE | {"ir", "ops"},
    "testing": BASE | {"ir", "ops"},
    "train": BASE | {"ir", "lang", "ops", "expand", "analysis", "torch", "api"},
    "api": BASE | {"ir", "lang", "ops", "expand", "analysis", "torch", "render", "train"},
    "cli": BASE | {"ir", "lang", "ops", "expand", "analysis", "torch", "render", "train", "api", "__init__"},
    "__init__": {"api", "render", "train", "diagnostics", "ir", "lang", "ops"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = ROOT.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip |= {id(n) for n in ast.walk(node)}
    return skip


def imports(path: Path) -> set[str]:
    """The specgraph modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("specgraph")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("specgraph"):
                continue
            modules = {f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")}
            found |= modules  # `from . import scan` imports the module specgraph.x.scan
            if len(modules) < len(node.names):
                found.add(target)
    return found - {here}


def part(module: str) -> str:
    pieces = module.split(".")
    return "__init__" if len(pieces) == 1 else pieces[1]


def import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for path in ROOT.rglob("*.py"):
        name = module_name(path)
        g.add_node(name)
        for target in imports(path):
            g.add_edge(name, target)
    return g


def test_each_stage_imports_only_the_stages_before_it():
    wrong = sorted(f"{a} imports {b}" for a, b in import_graph().edges
                   if part(b) != part(a) and part(b) not in ALLOWED[part(a)])
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    g = import_graph()
    # A package's __init__ re-exporting its modules is not a cycle of the design.
    g.remove_edges_from([(a, b) for a, b in list(g.edges) if b.startswith(a + ".")])
    cycles = [c for c in nx.simple_cycles(g)]
    assert not cycles, "\n".join(" -> ".join(c + [c[0]]) for c in cycles[:10])


def test_checking_a_spec_imports_no_torch():
    # lang, ir, ops, expand and analysis never import torch at module level
    for stage in ("lang", "ir", "ops", "expand", "analysis"):
        for path in (ROOT / stage).rglob("*.py"):
            if path.name in ("torch_modules.py", "lstm_kernel_op.py", "gather_dot_function.py"):
                # imported by the ops' build() only (lstm_kernel_op by torch_modules), gather_dot_function
                # by the torch stage (the call a fused gather-dot's fx node makes)
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
            names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module for n in top if isinstance(n, ast.ImportFrom) and n.module and not n.level}
            assert not {n for n in names if n.split(".")[0] == "torch"}, path


# Dispatch on an op's name: comparing a spec node's op name with a string, looking an op up by
# a literal name, or recognising a class by its name.  Ops are asked for their traits instead.
# (A spec Node's ``op`` is the Op object; fx nodes' ``op`` strings — "call_module" — are fx's.)
NAME_DISPATCH = [
    re.compile(r"\.op_name\s*(?:==|!=|in\b|not\s+in\b)"),
    re.compile(r"\bop\.name\s*(?:==|!=|in\b|not\s+in\b)"),
    re.compile(r"get_op\(\s*[\"']"),
    re.compile(r"__name__\s*(?:==|!=)\s*[\"'](?!__main__)"),
    re.compile(r"\.op\s*(?:==|!=)\s*[\"'](?!call_function|call_module|call_method|placeholder|output|get_attr)"),
]


def test_no_dispatch_on_op_names_outside_ops():
    hits = []
    for path in ROOT.rglob("*.py"):
        if path.relative_to(ROOT).parts[0] == "ops":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(p.search(code) for p in NAME_DISPATCH):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, long
