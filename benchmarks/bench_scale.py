"""Scale: check, build and render of synthetic specs of 1k, 10k and 100k nodes.

Three shapes: a long chain (linear/relu), a wide DAG (many parallel branches into concats),
and one block repeated (a residual unit, 4 nodes per copy). For each: seconds for check
(load + expand + infer), build (fx GraphModule), render (DOT text; SVG layout by Graphviz
up to 1k nodes only — `dot` itself is superlinear), peak traced memory of check, and the
growth exponent fitted on log(time) vs log(nodes). Targets: check of 10k nodes <= 1 s,
100k <= 15 s, growth ≈ linear.
"""

from __future__ import annotations

import math
import sys
import time
import resource

import specgraph
from timing import Config, Section, fmt_time, markdown_table


def chain(n: int) -> str:
    lines = ["specgraph: 1", "name: chain", "inputs: {x: [N, 16]}", "graph:"]
    lines += [f"  l{i}: {{op: {'linear, out: 16' if i % 2 == 0 else 'relu'}}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def wide(n: int) -> str:
    """n/9 stages of 4 parallel branches (2 nodes each) joined by a concat: 9 nodes a stage."""
    lines = ["specgraph: 1", "name: wide", "inputs: {x: [N, 8]}", "graph:"]
    prev = "x"
    for s in range(max(1, n // 9)):
        for b in range(4):
            lines.append(f"  s{s}b{b}: {{op: linear, out: 2, from: {prev}}}")
            lines.append(f"  s{s}r{b}: {{op: relu, from: s{s}b{b}}}")
        lines.append(f"  s{s}cat: {{op: concat, dim: 1, from: [s{s}r0, s{s}r1, s{s}r2, s{s}r3]}}")
        prev = f"s{s}cat"
    return "\n".join(lines) + "\n"


def repeated(n: int) -> str:
    return f"""specgraph: 1
name: repeated
inputs: {{x: [N, 8, 4, 4]}}
blocks:
  unit:
    nodes:
      conv: {{op: conv2d, out: 8, kernel: 3, padding: 1}}
      bn:   {{op: batchnorm2d}}
      relu: {{op: relu}}
      add:  {{op: add, from: [relu, x]}}
graph:
  body: {{block: unit, repeat: {max(1, n // 4)}}}
"""


SHAPES = {"chain": chain, "wide DAG": wide, "repeated block": repeated}
# 100k nodes are more YAML values than the default limit allows (a guard against alias bombs)
LIMITS = specgraph.Limits(max_yaml_nodes=10_000_000, max_file_bytes=256 * 2**20, max_graph_nodes=1_000_000)


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def exponent(points: list[tuple[int, float]]) -> float:
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(max(t, 1e-6)) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def run(cfg: Config | None = None) -> list[Section]:
    from specgraph.render import render

    cfg = cfg or Config()
    sizes = [1_000, 10_000] if cfg.quick else [1_000, 10_000, 100_000]
    rows, fits, notes = [], [], []
    for shape, make in SHAPES.items():
        series = {"check": [], "build": [], "render (DOT)": []}
        for n in sizes:
            text = make(n)
            cfg.progress(f"scale {shape} {n}")
            # Timed without tracemalloc (it slows Python several-fold); memory is the growth of the
            # process's peak RSS, sizes ascending so that each run sets a new peak.
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            graph, t_check = timed(lambda: specgraph.check(specgraph.load(text, limits=LIMITS)))
            peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
            nodes = len(graph) - len(graph.inputs)
            _, t_build = timed(lambda: specgraph.build(graph))
            dot, t_dot = timed(lambda: render(graph).source)
            svg = ""
            if n <= 1_000:
                _, t_svg = timed(lambda: render(graph).pipe(format="svg"))
                svg = fmt_time(t_svg)
            for key, t in (("check", t_check), ("build", t_build), ("render (DOT)", t_dot)):
                series[key].append((nodes, t))
            target = ""
            if n == 10_000:
                target = "≤ 1 s " + ("met" if t_check <= 1 else "**missed**")
            if n == 100_000:
                target = "≤ 15 s " + ("met" if t_check <= 15 else "**missed**")
            rows.append([shape, f"{nodes:,}", fmt_time(t_check), f"{peak:.0f} MiB", fmt_time(t_build),
                         fmt_time(t_dot), svg or "—", target])
        fits.append([shape] + [f"{exponent(series[k]):.2f}" for k in series])
    table = markdown_table(["spec", "nodes", "check", "check peak RSS growth", "build", "render DOT", "render SVG",
                            "check target"], rows, align="lrrrrrrl")
    notes.append("Growth exponents (slope of log time against log nodes; 1.00 is linear):\n\n"
                 + markdown_table(["spec", "check", "build", "render (DOT)"], fits, align="lrrr"))
    notes.append("Check peak memory is how much the process's peak resident set grew during check (the largest "
                 "sizes run last, so each sets a new peak; 0 means it stayed within an earlier peak). "
                 "SVG layout is timed up to 1k nodes only: Graphviz's `dot` grows faster than linearly with "
                 "graph size, and a 100k-node picture is not readable anyway (use --depth / --collapse).")
    return [Section("Scale: 1k, 10k and 100k nodes", table, notes)]


if __name__ == "__main__":
    for section in run(Config(quick="--quick" in sys.argv[1:])):
        print(section.markdown())
