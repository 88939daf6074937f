"""Diagrams (specgraph.render): topology, labels and colours read back from the DOT source.

No pixels are compared: the DOT text is parsed into nodes (with their clusters), edges and
clusters, and the tests assert what a reader of the picture relies on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import specgraph
from specgraph.cli.app import app
from specgraph.api import render, render_partial
from specgraph.render.dot import RenderOptionError
from specgraph.render.files import DOT_MISSING, layout, render_all, stale, stamp_of
from specgraph.render.style import CATEGORY_COLOURS, ERROR_COLOUR, ERROR_FILL, SKIP_COLOUR, count_text
from specgraph.analysis.summary import summarize

from conftest import ROOT, SPECS, spec_files

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's dot is not installed")


# ---- a small DOT reader ---------------------------------------------------------------------------

_ID = r'"(?:[^"\\]|\\.)*"|[^\s\[\]{};=]+'
EDGE_RE = re.compile(rf"^({_ID}) -> ({_ID})(?: \[(.*)\])?$")
NODE_RE = re.compile(rf"^({_ID}) \[(.*)\]$")
CLUSTER_RE = re.compile(rf"^subgraph ({_ID}) \{{$")


def unquote(s: str) -> str:
    return s[1:-1].replace('\\"', '"') if s.startswith('"') else s


def attrs_of(text: str | None) -> dict[str, str]:
    """`a=1 label=<<B>x</B>> b="q r"` -> {'a': '1', 'label': '<B>x</B>', 'b': 'q r'}."""
    out: dict[str, str] = {}
    i, text = 0, text or ""
    while i < len(text):
        eq = text.index("=", i)
        key = text[i:eq].strip()
        j = eq + 1
        if text[j] == '"':
            k = j + 1
            while text[k] != '"':
                k += 2 if text[k] == "\\" else 1
            out[key], i = text[j + 1:k], k + 1
        elif text[j] == "<":
            depth, k = 0, j
            while True:
                depth += {"<": 1, ">": -1}.get(text[k], 0)
                k += 1
                if depth == 0:
                    break
            out[key], i = text[j + 1:k - 1], k
        else:
            k = text.find(" ", j)
            k = len(text) if k < 0 else k
            out[key], i = text[j:k], k
        while i < len(text) and text[i] == " ":
            i += 1
    return out


class Dot:
    """Nodes (id -> attrs, clusters), edges (tail, head, attrs; `dir=back` turned round), clusters."""

    def __init__(self, source: str):
        self.source = source
        self.nodes: dict[str, dict[str, str]] = {}
        self.node_clusters: dict[str, tuple[str, ...]] = {}
        self.edges: list[tuple[str, str, dict[str, str]]] = []
        self.clusters: dict[str, str | None] = {}
        stack: list[str | None] = []
        for raw in source.splitlines()[1:]:
            line = raw.strip()
            if m := CLUSTER_RE.match(line):
                name = unquote(m.group(1))
                self.clusters[name] = next((c for c in reversed(stack) if c), None)
                stack.append(name)
            elif line == "{":
                stack.append(None)
            elif line == "}":
                if stack:
                    stack.pop()
            elif m := EDGE_RE.match(line):
                a, b, attrs = unquote(m.group(1)), unquote(m.group(2)), attrs_of(m.group(3))
                self.edges.append((b, a, attrs) if attrs.get("dir") == "back" else (a, b, attrs))
            elif (m := NODE_RE.match(line)) and m.group(1) not in ("graph", "node", "edge"):
                nid = unquote(m.group(1))
                self.nodes.setdefault(nid, attrs_of(m.group(2)))
                self.node_clusters.setdefault(nid, tuple(c for c in stack if c))

    @property
    def drawn(self) -> set[str]:
        """Ids of the diagram's own nodes (not captions or the legend)."""
        return {n for n in self.nodes if not n.startswith(("@caption/", "@legend"))}

    def edge(self, tail: str, head: str) -> dict[str, str]:
        found = [a for t, h, a in self.edges if (t, h) == (tail, head)]
        assert found, f"no edge {tail} -> {head}"
        return found[0]

    def has_edge(self, tail: str, head: str) -> bool:
        return any((t, h) == (tail, head) for t, h, _ in self.edges)

    def label(self, node: str) -> str:
        return self.nodes[node].get("label", "")

    def text(self, node: str) -> str:
        """A node's label without markup."""
        return re.sub(r"<[^>]*>", " ", self.label(node)).replace("&gt;", ">").replace("&lt;", "<")


def dot_of(spec, **options) -> Dot:
    return Dot(render(spec, **options).source)


# ---- every node, edge and shape -------------------------------------------------------------------

def test_inception_naive_topology_labels_and_colours():
    d = dot_of(SPECS / "inception_naive.yaml")
    assert d.drawn == {"x", "conv1x1", "conv3x3", "conv5x5", "pool", "concat", "relu", "@out/relu"}
    for branch in ("conv1x1", "conv3x3", "conv5x5", "pool"):
        assert d.edge("x", branch)["label"] == "N×192×28×28"
        assert d.has_edge(branch, "concat")
    assert d.edge("conv3x3", "concat")["label"] == "N×128×28×28"
    assert d.edge("concat", "relu")["label"] == "N×416×28×28"
    assert d.text("conv3x3").split()[:4] == ["conv2d", "3×3,", "128", "conv3x3"]
    assert "221K params" in d.text("conv3x3")  # 192·128·9 + 128
    assert "params" not in d.text("pool")  # no count where there are no params
    assert d.nodes["conv5x5"]["fillcolor"] == CATEGORY_COLOURS["conv"]
    assert d.nodes["pool"]["fillcolor"] == CATEGORY_COLOURS["pool"]
    assert d.nodes["concat"]["fillcolor"] == CATEGORY_COLOURS["merge"]
    legend = d.label("@legend")
    assert [c for c in CATEGORY_COLOURS if f">{c}<" in legend] == ["conv", "pool", "activation", "merge"]
    assert not d.clusters


def test_every_edge_carries_its_shape_and_no_shapes_drops_them():
    d = dot_of(SPECS / "googlenet.yaml")
    assert len(d.edges) > 150
    assert all(re.fullmatch(r"N(×\d+)+", a["label"]) for _, _, a in d.edges), "an edge without a shape"
    bare = dot_of(SPECS / "googlenet.yaml", shapes=False)
    assert [(t, h) for t, h, _ in bare.edges] == [(t, h) for t, h, _ in d.edges]
    assert not any("label" in a for _, _, a in bare.edges)


def test_symbolic_dims_print_as_symbols():
    spec = """
specgraph: 1
name: sym
inputs: {x: [N, 3, H, W]}
graph:
  conv: {op: conv2d, out: 8, kernel: 3, stride: 2, padding: 1}
  pool: {op: maxpool2d, kernel: 2}
"""
    d = dot_of(spec)
    assert d.edge("x", "conv")["label"] == "N×3×H×W"
    assert d.edge("conv", "pool")["label"] == "N×8×⌈H/2⌉×⌈W/2⌉"
    assert d.edge("pool", "@out/pool")["label"] == "N×8×⌊(H + 1)/4⌋×⌊(W + 1)/4⌋"  # floor(ceil(H/2)/2)


def test_block_instances_are_clusters_with_name_params_and_count():
    d = dot_of(SPECS / "googlenet.yaml")
    assert d.clusters["cluster_inception3a"] is None
    assert d.clusters["cluster_inception3a.branch2"] == "cluster_inception3a"
    assert d.clusters["cluster_inception3a.branch2.1"] == "cluster_inception3a.branch2"
    assert d.node_clusters["inception3a.branch2.1.conv"] == (
        "cluster_inception3a", "cluster_inception3a.branch2", "cluster_inception3a.branch2.1")
    caption = d.text("@caption/inception3a")
    expected = sum(r.params for r in summarize(specgraph.check(SPECS / "googlenet.yaml")).rows
                   if r.path.startswith("inception3a."))
    assert "inception3a" in caption and ": inception" in caption
    assert "ch1x1 64" in caption and "pool_proj 32" in caption
    assert f"{count_text(expected)} params" in caption
    # defaults left out, given params shown: conv_bn's stride 1 / padding 0 are defaults
    assert "stride" not in d.text("@caption/conv2") and "kernel 1" in d.text("@caption/conv2")
    assert "stride 2" in d.text("@caption/conv1")


def test_node_ids_are_spec_paths_and_the_dot_text_is_deterministic():
    a = render(SPECS / "resnet50.yaml").source
    b = render(str(SPECS / "resnet50.yaml")).source
    assert a == b
    assert '"layer3.5.conv2"' in a and '"cluster_layer4.0.downsample"' in a
    graph = specgraph.check(SPECS / "resnet50.yaml")
    assert {n.path for n in graph.op_nodes()} <= Dot(a).drawn


def test_dot_text_does_not_depend_on_hash_seeds():
    code = "import sys; from specgraph import render; sys.stdout.write(render(sys.argv[1], rolled=True).source)"
    runs = [subprocess.run([sys.executable, "-c", code, str(SPECS / "unet.yaml")], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}, check=True).stdout for seed in ("1", "2")]
    assert runs[0] == runs[1] and runs[0].startswith("digraph")


@pytest.mark.parametrize("depth", [None, 0, 1])
@pytest.mark.parametrize("path", spec_files(), ids=lambda p: p.stem)
def test_every_node_is_drawn_or_inside_a_drawn_block(path, depth):
    graph = specgraph.check(path)
    d = dot_of(graph, depth=depth)
    for node in graph.op_nodes():
        assert node.path in d.drawn or any(s in d.drawn for s in node.scope), node.path
    for name in graph.inputs:
        assert name in d.drawn
    assert {f"@out/{o.name}" for o in graph.outputs} <= d.drawn


def test_a_checked_graph_renders_too():
    from_graph = dot_of(specgraph.check(SPECS / "lenet5.yaml"))
    from_spec = dot_of(SPECS / "lenet5.yaml")
    assert from_graph.nodes.keys() == from_spec.nodes.keys() and from_graph.edges == from_spec.edges
    # without the spec, the block's defaults are unknown: every param is listed
    assert "activation relu" in from_graph.text("@caption/c1") and "activation" not in from_spec.text("@caption/c1")


def test_rankdir():
    assert "rankdir=LR" in render(SPECS / "lenet5.yaml", rankdir="LR").source
    with pytest.raises(RenderOptionError):
        render(SPECS / "lenet5.yaml", rankdir="XY")


# ---- collapse, depth, only, rolled ---------------------------------------------------------------

def test_depth_zero_draws_each_top_level_block_as_one_node_with_shapes():
    d = dot_of(SPECS / "googlenet.yaml", depth=0)
    assert not d.clusters
    assert {"inception3a", "conv1", "maxpool2"} <= d.drawn
    assert not any(n.startswith("inception3a.") for n in d.drawn)
    assert "N×192×28×28 → N×256×28×28" in d.text("inception3a")
    assert d.edge("maxpool2", "inception3a")["label"] == "N×192×28×28"
    assert d.edge("inception3a", "inception3b")["label"] == "N×256×28×28"
    assert len([e for e in d.edges if e[1] == "inception3a"]) == 1  # 4 branch inputs, one tensor
    assert "▣ collapsed block" in d.label("@legend")


def test_depth_one_opens_the_top_level_blocks_only():
    d = dot_of(SPECS / "googlenet.yaml", depth=1)
    assert "cluster_inception3a" in d.clusters and "cluster_inception3a.branch2" in d.clusters
    assert {"inception3a.branch1", "inception3a.branch2.0", "inception3a.out"} <= d.drawn
    assert d.node_clusters["inception3a.branch2.0"] == ("cluster_inception3a", "cluster_inception3a.branch2")
    assert d.has_edge("inception3a.branch2.0", "inception3a.branch2.1")


def test_collapse_one_block():
    d = dot_of(SPECS / "googlenet.yaml", collapse=["inception4b", "inception3a.branch2"])
    assert "inception4b" in d.drawn and "cluster_inception4b" not in d.clusters
    assert not any(n.startswith("inception4b.") for n in d.drawn)
    assert "inception3a.branch2" in d.drawn and "inception3a.branch1.conv" in d.drawn
    assert d.node_clusters["inception3a.branch2"] == ("cluster_inception3a",)
    assert d.has_edge("inception4a.out", "inception4b") and d.has_edge("inception4b", "inception4c.branch1.conv")


def test_only_draws_a_subtree_with_stubs_for_its_neighbours():
    d = dot_of(SPECS / "googlenet.yaml", only="inception3a")
    inside = {n for n in d.drawn if not n.startswith("@ext/")}
    assert inside and all(n.startswith("inception3a.") for n in inside)
    assert {n for n in d.drawn if n.startswith("@ext/")} == {
        "@ext/maxpool2", "@ext/inception3b.branch1.conv", "@ext/inception3b.branch2.0.conv",
        "@ext/inception3b.branch3.0.conv", "@ext/inception3b.branch4.0"}
    assert d.edge("@ext/maxpool2", "inception3a.branch4.0")["label"] == "N×192×28×28"
    assert "inception3a" in d.source.split("\n", 2)[1]  # the title names the subtree
    one = dot_of(SPECS / "googlenet.yaml", only="fc")
    assert one.drawn == {"fc", "@ext/dropout", "@out/logits"}


def test_bad_option_paths_are_usage_errors_with_suggestions():
    with pytest.raises(RenderOptionError, match="did you mean 'inception3b'"):
        render(SPECS / "googlenet.yaml", collapse=["inception3x"])
    with pytest.raises(RenderOptionError, match="a node, not a block"):
        render(SPECS / "googlenet.yaml", collapse=["fc"])
    with pytest.raises(RenderOptionError):
        render(SPECS / "googlenet.yaml", only="nowhere")


def test_rolled_draws_identical_chained_blocks_once():
    d = dot_of(SPECS / "resnet50.yaml", rolled=True)
    assert "cluster_layer1.1" in d.clusters and "cluster_layer1.2" not in d.clusters
    assert not any(n.startswith("layer1.2.") for n in d.drawn)
    caption = d.text("@caption/layer1.1")
    assert "×2" in caption and "layer1.1 … layer1.2" in caption and "each" in caption
    assert "×5" in d.text("@caption/layer3.1")
    assert d.has_edge("layer1.1.relu", "layer2.0.conv1")  # the run's last copy feeds on
    assert not d.has_edge("layer1.1.relu", "layer1.1.conv1")  # no edge between copies
    assert d.edge("layer1.0.relu", "layer1.1.add")["style"] == "dashed"
    collapsed = dot_of(SPECS / "resnet50.yaml", rolled=True, depth=1)
    assert "×5" in collapsed.text("layer3.1") and "layer3.2" not in collapsed.drawn


# ---- layout by role ----------------------------------------------------------------------------------

def test_skip_edges_are_dashed_and_free_while_the_main_path_is_heavy():
    d = dot_of(SPECS / "resnet18.yaml")
    skip = d.edge("maxpool", "layer1.0.add")  # identity shortcut: no downsample in layer1.0
    assert skip["style"] == "dashed" and skip["constraint"] == "false" and skip["color"] == SKIP_COLOUR
    assert d.edge("layer1.0.bn2", "layer1.0.add")["weight"] == "8"
    assert d.edge("layer1.0.conv1", "layer1.0.bn1")["weight"] == "8"
    projected = d.edge("layer2.0.downsample.1", "layer2.0.add")  # a lane, not a shortcut
    assert "style" not in projected


def test_inception_branches_are_lanes_into_the_concat():
    d = dot_of(SPECS / "googlenet.yaml")
    lanes = {t: a for t, h, a in d.edges if h == "inception3a.out"}
    assert set(lanes) == {"inception3a.branch1.relu", "inception3a.branch2.1.relu",
                          "inception3a.branch3.1.relu", "inception3a.branch4.1.relu"}
    assert not any(a.get("style") == "dashed" for a in lanes.values())
    assert {a["weight"] for a in lanes.values()} == {"2"}  # equal lanes: the concat sits centred below them
    aux = dot_of(SPECS / "googlenet.yaml", depth=0, aux_logits=True)
    assert aux.edge("inception4a", "inception4b")["weight"] == "8"  # the trunk stays straight ...
    assert aux.edge("inception4a", "aux1")["weight"] == "2"  # ... where a side head leaves it


MINI_UNET = """
specgraph: 1
name: mini_unet
inputs: {x: [N, 8, 32, 32]}
graph:
  e1: {op: conv2d, out: 8, kernel: 3, padding: 1}
  p1: {op: maxpool2d, kernel: 2}
  e2: {op: conv2d, out: 8, kernel: 3, padding: 1}
  p2: {op: maxpool2d, kernel: 2}
  mid: {op: conv2d, out: 8, kernel: 3, padding: 1}
  u2: {op: interpolate, scale: 2}
  d2: {op: concat, from: [u2, e2]}
  c2: {op: conv2d, out: 8, kernel: 1}
  u1: {op: interpolate, scale: 2}
  d1: {op: concat, from: [u1, e1]}
  head: {op: conv2d, out: 2, kernel: 1}
"""


def test_unet_bridges_lay_out_a_u():
    d = dot_of(MINI_UNET)
    for level in ("1", "2"):
        bridge = d.edge(f"e{level}", f"d{level}")
        assert bridge["style"] == "dashed" and bridge["minlen"] == "0" and "constraint" not in bridge
        assert f'{{\n\t\trank=same\n\t\te{level}\n\t\td{level}\n\t}}' in d.source  # level, on one rank
    rising = [a for t, h, a in d.edges if (t, h) in {("u2", "d2"), ("d2", "c2"), ("c2", "u1"), ("head", "@out/head")}]
    assert len(rising) == 4 and all(a["dir"] == "back" for a in rising)
    assert "dir" not in d.edge("e1", "p1") and "dir" not in d.edge("p2", "mid")


def test_same_resolution_skips_are_no_bridges():
    """Nested skips without a loss and recovery of resolution are skips, drawn top-down."""
    flat = MINI_UNET.replace("{op: maxpool2d, kernel: 2}", "{op: relu}").replace("{op: interpolate, scale: 2}",
                                                                                 "{op: relu}")
    d = dot_of(flat)
    assert d.edge("e1", "d1")["constraint"] == "false" and "minlen" not in d.edge("e1", "d1")
    assert not any(a.get("dir") == "back" for _, _, a in d.edges) and "rank=same" not in d.source


# ---- failures drawn in red ---------------------------------------------------------------------------

BAD = """
specgraph: 1
name: bad
inputs: {x: [N, 3, 32, 32]}
blocks:
  mod:
    params: {c: int}
    nodes:
      a: {op: conv2d, out: $c, kernel: 3, padding: 1, from: x}
      b: {op: conv2d, out: $c, kernel: 3, from: x}
      out: {op: concat, dim: 1, from: [a, b]}
graph:
  stem: {op: conv2d, out: 16, kernel: 3, padding: 1}
  m1: {block: mod, c: 8}
  relu: {op: relu}
  head: {op: linear, out: 10, from: stem}
  pool: {op: maxpool2d, kernel: 2, from: stem}
  flat: {op: flatten}
  fc: {op: linear, out: 10}
  oops: {op: relu, from: nothing}
outputs: [fc, relu]
"""


def test_a_failing_spec_renders_up_to_the_failure_in_red():
    with pytest.raises(specgraph.SpecError):
        specgraph.check(BAD)
    dot, partial = render_partial(BAD)
    d = Dot(dot.source)
    assert not partial.ok and {"E402", "E410", "E301"} <= {x.code for x in partial.diagnostics}
    assert {"stem", "m1.a", "m1.b", "pool", "flat", "fc", "@out/fc"} <= d.drawn
    assert "relu" not in d.drawn and "@out/relu" not in d.drawn  # downstream of the failure
    failing = d.nodes["m1.out"]
    assert failing["color"] == ERROR_COLOUR and failing["fillcolor"] == ERROR_FILL
    assert "E402" in d.text("m1.out") and "inputs disagree on dim 2" in d.text("m1.out")
    assert d.node_clusters["m1.out"] == ("cluster_m1",)
    for branch, shape in (("m1.a", "N×8×32×32"), ("m1.b", "N×8×30×30")):
        edge = d.edge(branch, "m1.out")
        assert edge["color"] == ERROR_COLOUR and edge["label"] == shape and "E402" in edge["tooltip"]
    assert d.nodes["head"]["color"] == ERROR_COLOUR and d.edge("stem", "head")["color"] == ERROR_COLOUR
    assert "flatten" in d.text("head")  # the hint
    assert "E301" in d.text("@errors") and "nothing" in d.text("@errors")  # no node to hang it on
    assert "/tmp" not in dot.source and "<string>" not in d.text("m1.out")
    assert render(BAD).source == dot.source  # render() does not raise either


def test_failure_in_every_instance_of_a_block_is_drawn_in_each():
    spec = BAD.replace("  relu: {op: relu}\n", "  relu: {op: relu}\n  m2: {block: mod, c: 4, from: stem}\n")
    d = Dot(render(spec).source)
    assert d.nodes["m1.out"]["color"] == ERROR_COLOUR and d.nodes["m2.out"]["color"] == ERROR_COLOUR
    assert "@errors" not in d.nodes or "E402" not in d.text("@errors")


def test_the_partial_hook_matches_the_compiler():
    """render_partial watches the expander: for a good spec it must give check's graph."""
    dot, partial = render_partial(SPECS / "googlenet.yaml")
    graph = specgraph.check(SPECS / "googlenet.yaml")
    assert partial.ok and not partial.failures
    assert list(partial.graph.nx.nodes) == list(graph.nx.nodes) and list(partial.graph.scopes) == list(graph.scopes)


# ---- files, the CLI, Graphviz missing ----------------------------------------------------------------

runner = CliRunner()


def test_cli_writes_dot_to_stdout_and_files(tmp_path):
    result = runner.invoke(app, ["render", str(SPECS / "lenet5.yaml"), "--format", "dot", "-o", "-",
                                 "--depth", "0", "--rankdir", "LR", "--set", "num_classes=7"])
    assert result.exit_code == 0, result.output
    d = Dot(result.stdout)
    assert "c1" in d.drawn and d.edge("out", "@out/out")["label"] == "N×7"
    target = tmp_path / "lenet.dot"
    result = runner.invoke(app, ["render", str(SPECS / "lenet5.yaml"), "-o", str(target), "--rolled", "--no-shapes"])
    assert result.exit_code == 0 and target.read_text().startswith("digraph lenet5")


def test_cli_usage_errors_and_failing_specs(tmp_path):
    result = runner.invoke(app, ["render", str(SPECS / "googlenet.yaml"), "--collapse", "nope", "-f", "dot", "-o", "-"])
    assert result.exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    out = tmp_path / "bad.dot"
    result = runner.invoke(app, ["render", str(bad), "-o", str(out)])
    assert result.exit_code == 1 and out.exists() and "E402" in result.output
    assert runner.invoke(app, ["render", str(SPECS / "lenet5.yaml"), "-f", "gif"]).exit_code == 2


def test_without_graphviz_a_clear_message_and_dot_still_works(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    result = runner.invoke(app, ["render", str(SPECS / "lenet5.yaml"), "-o", str(tmp_path / "x.svg")])
    assert result.exit_code == 1
    assert "apt-get install graphviz" in result.output and "--format dot" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.svg").exists()
    result = runner.invoke(app, ["render", str(SPECS / "lenet5.yaml"), "-o", str(tmp_path / "x.dot")])
    assert result.exit_code == 0 and (tmp_path / "x.dot").exists()
    assert "apt-get install graphviz" in DOT_MISSING


@needs_dot
def test_svg_is_stamped_with_its_dot_hash():
    dot = render(SPECS / "inception_naive.yaml")
    svg = layout(dot, "svg").decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and stamp_of(svg)
    assert layout(dot, "png")[:4] == b"\x89PNG"


@needs_dot
def test_render_all_writes_checks_and_prunes(tmp_path):
    specs, out = tmp_path / "specs", tmp_path / "render"
    (specs / "lib").mkdir(parents=True)
    (specs / "more").mkdir()
    shutil.copy(SPECS / "inception_naive.yaml", specs / "a.yaml")
    shutil.copy(SPECS / "inception_naive.yaml", specs / "more" / "b.yaml")
    (specs / "lib" / "blocks.yaml").write_text("name: lib\nblocks: {}\n")
    assert stale(render_all(specs, out, check=True))  # nothing rendered yet
    assert {o.status for o in render_all(specs, out)} == {"written"}
    assert (out / "a.svg").exists() and (out / "more" / "b.svg").exists() and not (out / "lib").exists()
    assert '<meta name="generator" content="specgraph">' in (out / "more" / "b.html").read_text()  # the viewer too
    assert {o.status for o in render_all(specs, out) if o.kind == "html"} == {"unchanged"}
    assert not stale(render_all(specs, out, check=True))
    (specs / "a.yaml").write_text((specs / "a.yaml").read_text().replace("c3: 128", "c3: 96"))
    assert [o.target.svg.name for o in stale(render_all(specs, out, check=True))] == ["a.svg"]
    (specs / "more" / "b.yaml").unlink()
    result = runner.invoke(app, ["render-all", str(specs), str(out), "--check"])
    assert result.exit_code == 1 and "b.svg" in result.output
    assert runner.invoke(app, ["render-all", str(specs), str(out)]).exit_code == 0
    assert not (out / "more" / "b.svg").exists() and not (out / "more" / "b.html").exists()
    assert runner.invoke(app, ["render-all", str(specs), str(out), "--check"]).exit_code == 0


def test_render_folder_is_up_to_date():
    """render/ holds a diagram of every spec; regenerate it with `make render`."""
    outcomes = render_all(SPECS, ROOT / "render", check=True)
    out_of_date = [f"{o.target.svg.relative_to(ROOT)} ({o.status})" for o in stale(outcomes)]
    assert not out_of_date, "run `make render`"
    assert not [str(o.target.spec) for o in outcomes if o.status == "failed"]


# ---- large diagrams: one pass, the same DOT text ---------------------------------------------------

def _repeated_spec(copies: int) -> str:
    return f"""specgraph: 1
name: repeated
inputs: {{x: [N, 8]}}
blocks:
  unit:
    nodes:
      lin: {{op: linear, out: 8}}
      relu: {{op: relu}}
      add: {{op: add, from: [relu, x]}}
graph:
  body: {{block: unit, repeat: {copies}}}
"""


def test_many_clusters_are_drawn_without_copying_the_parent(monkeypatch):
    """Each cluster is written once: graphviz's `with dot.subgraph(name=...)` starts every
    subgraph as a copy of its parent's whole body, so N clusters in one parent cost O(N²)
    (25k block copies took two minutes).  No subgraph may start as such a copy, and the
    lines written into all bodies grow with the clusters' nesting depth, not with N²."""
    import graphviz

    copied, written = [], []
    real_copy = graphviz.Digraph._copy_kwargs

    def counting_copy(self, **kwargs):
        copied.append(len(self.body))
        return real_copy(self, **kwargs)

    monkeypatch.setattr(graphviz.Digraph, "_copy_kwargs", counting_copy)
    real_subgraph = graphviz.Digraph.subgraph

    def counting_subgraph(self, graph=None, **kwargs):
        if graph is not None:
            written.append(len(graph.body))
        return real_subgraph(self, graph, **kwargs)

    monkeypatch.setattr(graphviz.Digraph, "subgraph", counting_subgraph)
    lines = {}
    for copies in (50, 500):
        written.clear()
        source = render(_repeated_spec(copies)).source
        lines[copies] = (sum(written), source.count("\n"))
        assert f'"cluster_body.{copies - 1}"' in source
    assert not copied
    for copies, (moved, total) in lines.items():
        assert moved <= 3 * total  # body.K's lines move into body, body's into the graph: depth 2, plus rows
    assert lines[500][0] < 12 * lines[50][0]


def test_dot_statements_are_graphviz_own():
    """render.py writes node, edge and attribute lines itself (graphviz's methods re-quote
    every name and value through several wrappers); the lines must be graphviz's, quoting
    included, for every kind of name and value."""
    import graphviz

    from specgraph.render.dot import _Drawer

    names = ["x", "layer1.0.conv", "@caption/inception3a", "node", "Edge", "a b", 'say "hi"', "1.5", "-4", ".5",
             "é", "<b>bold</b>", "", "x:y", "p:q:ne", "back\\\\slash", "w" * 60]
    values = ["", "0", "rounded,filled", "#ffffff", "N×64×H/2×W/2", "<<B>html</B>>", None, 'q"uote', "a" * 50]
    ours, ref = graphviz.Digraph("g"), graphviz.Digraph("g")
    drawer = _Drawer(None, True, None)  # type: ignore[arg-type]
    for round_ in range(2):  # the second round reads the drawer's memo of quoted strings
        for i, name in enumerate(names):
            value = values[i % len(values)]
            label = values[(i + 3) % len(values)]
            drawer.node(ours, name, label, fillcolor=value, shape="box", tooltip=name)
            ref.node(name, label, fillcolor=value, shape="box", tooltip=name)
            drawer.node(ours, name)
            ref.node(name)
            head = names[(i + 1) % len(names)]
            drawer.edge(ours, name, head, weight="8", label=value, color=label)
            ref.edge(name, head, weight="8", label=value, color=label)
            drawer.edge(ours, name, head, dir="back")
            ref.edge(name, head, dir="back")
            drawer.graph_attrs(ours, label=label, style=value, rank="same")
            ref.attr(label=label, style=value, rank="same")
    assert ours.source == ref.source


def test_a_failing_scan_is_drawn_as_the_scan_of_its_cell():
    text = """
specgraph: 1
inputs: {x: [N, 5, 3]}
blocks:
  cell:
    params: {hidden: int}
    states: {h: $hidden}
    inputs: [x, h]
    outputs: {h: h_new}
    nodes:
      x2h:   {op: linear, out: $hidden, from: x}
      h_new: {op: add, from: [x2h, x]}
graph:
  rnn: {scan: cell, hidden: 4}
"""
    _, partial = render_partial(text)
    assert not partial.ok
    # the cell's failing node is no node of the outer graph: the scan is drawn failing, with its diagnostics
    assert [(f.path, f.what) for f in partial.failures] == [("rnn", "scan cell")]
    assert [d.code for d in partial.failures[0].diagnostics] == ["E402"] and not partial.unplaced


def test_importing_the_render_package_keeps_the_render_function():
    import importlib

    import specgraph as package

    importlib.import_module("specgraph.render.files")
    assert callable(package.render) and package.render is package.api.render
