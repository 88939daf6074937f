"""Render benchmarks: `specgraph render` of googlenet and of synthetic 2,000-node specs.

For each spec, in interleaved rounds: ``specgraph.check`` (the reference: load + expand +
shape inference, which render also does), ``render(...).source`` (the DOT text, pure Python)
and the DOT text laid out to SVG by Graphviz's ``dot``.  Targets (issue 4): googlenet
DOT + SVG ≤ 2 s, a 2,000-node spec ≤ 10 s.

Run alone with ``.venv/bin/python benchmarks/bench_render.py [--quick]`` (prints the
sections), or through ``make bench`` (all modules, rewrites BENCHMARKS.md).
"""

from __future__ import annotations

import resource
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import Config, Section, fmt_time, interleaved, markdown_table  # noqa: E402

GOOGLENET = ROOT / "specs" / "googlenet.yaml"
TARGETS_S = {"googlenet": 2.0, "synthetic": 10.0}


def residual_blocks_spec(blocks: int) -> str:
    """``blocks`` residual blocks of 4 ops (linear, layernorm, relu, add): a cluster and a skip each."""
    return f"""specgraph: 1
name: residual_{blocks * 4}
inputs: {{x: [N, 64]}}
blocks:
  unit:
    nodes:
      fc:   {{op: linear, out: 64}}
      norm: {{op: layernorm}}
      act:  {{op: relu}}
      add:  {{op: add, from: [act, x]}}
graph:
  body: {{block: unit, repeat: {blocks}}}
"""


def chain_spec(nodes: int) -> str:
    """A flat chain of ``nodes`` ops (linear and relu alternating): no clusters."""
    body = "\n".join(f"  n{i}: {{op: {'linear, out: 64' if i % 2 == 0 else 'relu'}}}" for i in range(nodes))
    return f"specgraph: 1\nname: chain_{nodes}\ninputs: {{x: [N, 64]}}\ngraph:\n{body}\n"


def _cases():
    return [
        ("googlenet", "googlenet", str(GOOGLENET)),
        ("synthetic: 500 residual blocks (2,000 ops, 500 clusters, 500 skips)", "synthetic", residual_blocks_spec(500)),
        ("synthetic: chain of 2,000 ops", "synthetic", chain_spec(2000)),
    ]


def bench_render(cfg: Config) -> Section:
    import specgraph
    from specgraph import render
    from specgraph.render.files import layout

    have_dot = shutil.which("dot") is not None
    rows, verdicts = [], []
    for title, kind, spec in _cases():
        graph = specgraph.check(spec)
        n_nodes = sum(1 for _ in graph.op_nodes())
        candidates = {
            "check": lambda: specgraph.check(spec),
            "DOT": lambda: render(spec).source,
        }
        if have_dot:
            candidates["DOT + SVG"] = lambda: layout(render(spec), "svg")
        heavy = kind == "synthetic"
        samples = interleaved(candidates, repeats=cfg.repeats(3 if heavy else 7, minimum=3, quick=1),
                              warmup=0 if heavy else 1, progress=cfg.progress, label=title)
        dot_cpu = _dot_cpu(render(spec)) if have_dot else None
        check = samples["check"]
        for name in candidates:
            if name == "check":
                continue
            s = samples[name]
            target = TARGETS_S[kind] if name == "DOT + SVG" else None
            met = target is None or s.median <= target
            if target is not None:
                verdicts.append((title, s.median, target, met))
            rows.append([title if name == "DOT" else "", n_nodes if name == "DOT" else "", name,
                         fmt_time(s.median), f"{s.median / check.median:.1f}×",
                         fmt_time(dot_cpu) if name == "DOT + SVG" and dot_cpu is not None else "",
                         s.n, f"≤ {target:g} s " + ("met" if met else "**missed**") if target else ""])
        rows.append(["", "", "check (reference)", fmt_time(check.median), "1.0×", "", check.n, ""])
    table = markdown_table(["spec", "ops", "what", "median", "÷ check", "`dot` CPU time", "repeats", "target"],
                           rows, align="lrlrrrrl")
    notes = [
        "**DOT** = `specgraph.render(spec).source`: load, expand, shape inference, the view (collapse, "
        "roles of edges) and the DOT text, all in Python. **DOT + SVG** adds Graphviz's `dot -Tsvg` "
        "(`render_files.layout`, a subprocess). **check** = `specgraph.check(spec)` is the reference timed "
        "in the same interleaved rounds (÷ check: how many checks one render costs). `dot` CPU time is "
        "the user+system time of the `dot` subprocess for one layout (from `getrusage(RUSAGE_CHILDREN)`): "
        "unlike wall time it does not grow when other processes share the machine.",
        "The synthetic specs are generated YAML: 500 instances of a 4-op residual block through "
        "`repeat: 500` (each drawn as a cluster with a dashed skip edge), and a flat chain of 2,000 ops.",
        _verdict(verdicts, have_dot),
    ]
    return Section("Render: googlenet and 2,000-node specs", table, notes)


def _dot_cpu(dot) -> float:
    from specgraph.render.files import layout

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    layout(dot, "svg")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _verdict(verdicts, have_dot: bool) -> str:
    if not have_dot:
        return "**Targets not measured**: Graphviz's `dot` is not installed (`apt-get install graphviz`)."
    missed = [v for v in verdicts if not v[3]]
    listed = "; ".join(f"{t}: {fmt_time(m)} (≤ {g:g} s)" for t, m, g, _ in verdicts)
    if not missed:
        return f"**Targets met**: {listed}."
    return (f"**Target missed** for {', '.join(t for t, *_ in missed)}: {listed}. Compare the `dot` CPU time: "
            f"when it is well below the wall time, the machine was shared and the layout waited for a core.")


def run(cfg: Config) -> list[Section]:
    return [bench_render(cfg)]


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for section in run(Config(quick=quick)):
        print(section.markdown())
