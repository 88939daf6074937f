"""Shape soundness: for random valid networks, the shape specgraph infers for every node is the
shape the built module really produces, node by node.

A network is grown one node at a time from conv2d (every padding mode, `same` and `valid`),
conv_transpose2d (with output_padding), pad (every mode), maxpool2d, avgpool2d, adaptive_avgpool2d,
batchnorm2d, relu, concat, add (with broadcasting), flatten and linear, wired into a DAG with
branches and merges, sometimes grouped into a `seq`, a block instance, a repeated block or a
node switched off by `when: false`.  While growing it, the real shape of each tensor is
computed by torch itself on the "meta" device (shapes without data), independently of
specgraph, at every probe size; a node is only added when torch accepts it at all of them,
and merges only join tensors that fit at all of them.  So every generated spec is valid, and:

* it must check (specgraph accepts what torch runs), concretely at each probe size;
* with symbolic H and W it checks too, unless a merge of two branches cannot be proved equal
  for every H and W (then the error is E402 and the concrete checks still cover the spec);
* the module built from it, run on real tensors at each probe size through an fx Interpreter
  that records every node, shows every node's inferred shape (the symbolic one evaluated at
  that size, and the concrete one) — and the shape torch gave while growing it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

import specgraph
from specgraph.ir import dims
from specgraph.ir.tensor_type import TensorType
from specgraph.expand.expander import expand

from fuzzing import build_naming, live_nodes, observed_shapes, record, soundness_settings

N = 2
SYMBOLIC_PROBES = [(32, 32), (37, 29), (45, 52)]  # (H, W): even and odd, several residues mod 4 and 8


# ---- evaluating a symbolic dim, opaque ones included -------------------------------------------------

_TOKEN = re.compile(r"\s*(\d+|[A-Za-z_][A-Za-z0-9_]*|[-+*/()⌊⌋⌈⌉])")


def eval_dim(d: dims.Dim, sizes: dict[str, int]) -> int:
    """The value of a dim at ``sizes``.  An opaque dim is its text, where ``a/k`` is floor
    division, ``⌊x/k⌋`` and ``⌈x/k⌉`` floor and ceiling (see specgraph.ir.dims)."""
    if isinstance(d, int) or d.opaque is None:
        return dims.evaluate(d, sizes)
    tokens = _TOKEN.findall(d.opaque)
    assert "".join(tokens) == d.opaque.replace(" ", ""), d.opaque
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr(exact: bool) -> Fraction:  # exact: directly inside ⌊⌋ or ⌈⌉, which round themselves
        value = term(exact)
        while peek() in ("+", "-"):
            value = value + term(exact) if take() == "+" else value - term(exact)
        return value

    def term(exact: bool) -> Fraction:
        value = factor()
        while peek() in ("*", "/"):
            if take() == "*":
                value *= factor()
            else:
                value = value / factor() if exact else Fraction(math.floor(value / factor()))
        return value

    def factor() -> Fraction:
        tok = take()
        if tok == "-":
            return -factor()
        if tok == "(":
            value = expr(False)
            assert take() == ")"
            return value
        if tok in ("⌊", "⌈"):
            value = expr(True)
            assert take() == ("⌋" if tok == "⌊" else "⌉")
            return Fraction(math.floor(value) if tok == "⌊" else math.ceil(value))
        return Fraction(int(tok)) if tok.isdigit() else Fraction(sizes[tok])

    value = expr(False)
    assert pos == len(tokens) and value.denominator == 1, d.opaque
    return int(value)


def test_eval_dim_reads_every_form():
    H = dims.symbol("H")
    sizes = {"H": 37, "W": 29}
    for d, want in [(dims.floordiv(dims.add(H, 1), 2), 19), (dims.ceildiv(H, 4), 10),
                    (dims.mul(dims.floordiv(H, 2), 3), 54), (dims.floordiv(dims.mul(dims.floordiv(H, 2), 3), 4), 13),
                    (dims.mul(H, dims.symbol("W")), 37 * 29), (dims.add(dims.floordiv(H, 2), dims.floordiv(H, 3)), 30),
                    (dims.floordiv(dims.add(dims.mul(dims.floordiv(H, 2), 3), 5), 4), 14)]:
        assert eval_dim(d, sizes) == want, (d, want)


# ---- growing a random valid network -------------------------------------------------------------------

@dataclass
class Tensor:
    ref: str  # how a node names it in `from`
    shapes: list[tuple[int, ...]]  # its real shape at each probe


@dataclass
class Net:
    symbolic: bool
    probes: list[tuple[int, int]]
    channels: int
    nodes: dict[str, Any] = field(default_factory=dict)  # the spec's graph
    blocks: dict[str, Any] = field(default_factory=dict)
    tensors: list[Tensor] = field(default_factory=list)
    consumed: set[str] = field(default_factory=set)
    expected: dict[str, list[tuple[int, ...]]] = field(default_factory=dict)  # node path -> shape per probe

    def spec(self) -> dict:
        shape = ["N", self.channels, "H", "W"] if self.symbolic else ["N", self.channels, *self.probes[0]]
        outputs = [t.ref for t in self.tensors if t.ref not in self.consumed and t.ref != "x"]
        doc = {"specgraph": 1, "name": "random_net", "inputs": {"x": shape}}
        if self.blocks:
            doc["blocks"] = self.blocks
        doc["graph"] = self.nodes
        doc["outputs"] = outputs
        return doc


def meta(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.empty(shape, device="meta")


def torch_conv(p: dict, x: torch.Tensor) -> torch.Tensor:
    k, s, d = _pair(p["kernel"]), _pair(p.get("stride", 1)), _pair(p.get("dilation", 1))
    pad = p.get("padding", 0)
    mode = p.get("padding_mode", "zeros")
    conv = torch.nn.Conv2d(x.shape[1], p["out"], k, s, pad if isinstance(pad, str) else _pair(pad), d,
                           p.get("groups", 1), p.get("bias", True), padding_mode=mode, device="meta")
    return conv(x)


def torch_pool(kind: str, p: dict, x: torch.Tensor) -> torch.Tensor:
    k = _pair(p["kernel"])
    s = _pair(p["stride"]) if p.get("stride") is not None else k
    pad = _pair(p.get("padding", 0))
    if kind == "maxpool2d":
        return F.max_pool2d(x, k, s, pad, _pair(p.get("dilation", 1)), ceil_mode=p.get("ceil_mode", False))
    return F.avg_pool2d(x, k, s, pad, ceil_mode=p.get("ceil_mode", False),
                        count_include_pad=p.get("count_include_pad", True))


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def window(draw, big: int = 5) -> int | list[int]:
    a = draw(st.integers(1, big))
    return a if draw(st.booleans()) else [a, draw(st.integers(1, big))]


def draw_conv(draw, c_in: int) -> dict:
    groups = draw(st.sampled_from([g for g in (1, 2, 3, 4) if c_in % g == 0]))
    p: dict[str, Any] = {"op": "conv2d", "out": groups * draw(st.integers(1, 4)), "kernel": window(draw)}
    if draw(st.booleans()):
        p["stride"] = window(draw, 3)
    if draw(st.booleans()):
        p["padding"] = draw(st.sampled_from(["same", "valid"])) if draw(st.integers(0, 3)) == 0 else window(draw, 3)
    if draw(st.integers(0, 3)) == 0:
        p["dilation"] = window(draw, 2)
    if groups > 1:
        p["groups"] = groups
    if draw(st.integers(0, 3)) == 0:
        p["bias"] = False
    if draw(st.integers(0, 5)) == 0:
        p["padding_mode"] = draw(st.sampled_from(["reflect", "replicate", "circular"]))
    return p


def draw_pool(draw, kind: str) -> dict:
    p: dict[str, Any] = {"op": kind, "kernel": window(draw, 4)}
    if draw(st.booleans()):
        p["stride"] = window(draw, 3)
    if draw(st.booleans()):
        k = _pair(p["kernel"])
        p["padding"] = [draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2))]
    if kind == "maxpool2d" and draw(st.integers(0, 3)) == 0:
        p["dilation"] = window(draw, 2)
    if draw(st.booleans()):
        p["ceil_mode"] = True
    if kind == "avgpool2d" and draw(st.integers(0, 3)) == 0:
        p["count_include_pad"] = False
    return p


def draw_pad(draw) -> dict:
    pairs = draw(st.sampled_from([1, 2]), label="pad pairs")
    return {"op": "pad", "pads": [draw(st.integers(0, 3), label="pad") for _ in range(2 * pairs)],
            "mode": draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]), label="pad mode")}


def draw_conv_transpose(draw, c_in: int) -> dict:
    groups = draw(st.sampled_from([g for g in (1, 2) if c_in % g == 0]), label="groups")
    stride = draw(st.integers(1, 3), label="stride")
    dilation = draw(st.integers(1, 2), label="dilation")
    p: dict[str, Any] = {"op": "conv_transpose2d", "out": groups * draw(st.integers(1, 3), label="out"),
                         "kernel": window(draw, 4), "stride": stride, "dilation": dilation}
    if draw(st.booleans(), label="padding?"):
        p["padding"] = draw(st.integers(0, 2), label="padding")
    if max(stride, dilation) > 1 and draw(st.booleans(), label="output_padding?"):
        p["output_padding"] = draw(st.integers(0, max(stride, dilation) - 1), label="output_padding")
    if groups > 1:
        p["groups"] = groups
    return p


def torch_conv_transpose(p: dict, x: torch.Tensor) -> torch.Tensor:
    conv = torch.nn.ConvTranspose2d(x.shape[1], p["out"], _pair(p["kernel"]), p["stride"], p.get("padding", 0),
                                    p.get("output_padding", 0), p.get("groups", 1), dilation=p["dilation"],
                                    device="meta")
    return conv(x)


def apply(node: dict, inputs: list[list[torch.Tensor]], blocks: dict) -> list[torch.Tensor]:
    """torch's result for a node (op, block or seq), per probe; raises when torch refuses it."""
    per_probe = list(zip(*inputs))
    if node.get("when") is False:  # switched off: the input passes through
        return list(inputs[0])
    if "seq" in node:
        current = list(inputs[0])
        for item in node["seq"]:
            current = apply(item, [current], blocks)
        return current
    if "block" in node:  # the `unit` block: conv (out, kernel k, same size) -> batchnorm -> relu
        out, k = node.get("out"), node.get("k", 3)
        conv = {"op": "conv2d", "out": out, "kernel": k, "padding": k // 2}
        for _ in range(node.get("repeat", 1)):
            per_probe = [(torch.relu(torch_conv(conv, xs[0])),) for xs in per_probe]
        return [xs[0] for xs in per_probe]
    op = node["op"]
    results = []
    for xs in per_probe:
        x = xs[0]
        if op == "conv2d":
            y = torch_conv(node, x)
        elif op in ("maxpool2d", "avgpool2d"):
            y = torch_pool(op, node, x)
        elif op == "adaptive_avgpool2d":
            y = F.adaptive_avg_pool2d(x, _pair(node["size"]))
        elif op == "pad":
            # Real tensors, not meta: the meta kernels of reflect/circular padding check less than
            # the CPU ones (an amount as large as the dim passes on meta).
            y = F.pad(torch.zeros(x.shape), node["pads"], mode=node["mode"]).to("meta")
        elif op == "conv_transpose2d":
            y = torch_conv_transpose(node, x)
        elif op in ("batchnorm2d", "relu"):
            y = x
        elif op == "concat":
            y = torch.cat(xs, node.get("dim", 1))
        elif op == "add":
            y = xs[0]
            for other in xs[1:]:
                y = y + other
        elif op == "flatten":
            y = torch.flatten(x, 1)
        elif op == "linear":
            y = torch.nn.Linear(x.shape[-1], node["out"], device="meta")(x)
        else:
            raise AssertionError(op)
        results.append(y)
    return results


@st.composite
def random_net(draw) -> Net:
    symbolic = draw(st.booleans(), label="symbolic H, W")
    probes = SYMBOLIC_PROBES if symbolic else [(draw(st.integers(8, 48), label="H"), draw(st.integers(8, 48), label="W"))]
    net = Net(symbolic, probes, draw(st.integers(1, 6), label="channels"))
    net.tensors.append(Tensor("x", [(N, net.channels, h, w) for h, w in probes]))
    if draw(st.booleans(), label="unit block"):
        net.blocks["unit"] = {"params": {"out": "int", "k": 3}, "nodes": {
            "conv": {"op": "conv2d", "out": "$out", "kernel": "$k", "padding": "${k // 2}"},
            "bn": {"op": "batchnorm2d"}, "relu": {"op": "relu"}}}
    size = draw(st.integers(1, 10), label="nodes")
    attempts = 0
    while len(net.nodes) < size and attempts < 2 * size:
        attempts += 1
        grow(draw, net)
    return net


def grow(draw, net: Net) -> None:
    """Adds one node (or gives up quietly when torch refuses what was drawn)."""
    rank4 = [t for t in net.tensors if len(t.shapes[0]) == 4]
    rank2 = [t for t in net.tensors if len(t.shapes[0]) == 2]
    kinds = ["conv2d"] * 3 + ["maxpool2d", "avgpool2d", "batchnorm2d", "relu", "seq", "branch_merge", "flatten",
                              "adaptive_avgpool2d", "when_false", "pad", "conv_transpose2d"] \
        + (["block"] * 2 if net.blocks else [])
    kinds = [k for k in kinds if rank4] + (["linear", "relu2", "merge2"] if rank2 else [])
    if not kinds:
        return
    kind = draw(st.sampled_from(kinds), label="kind")
    last = net.tensors[-1]
    pool = rank2 if kind in ("linear", "relu2", "merge2") else rank4
    src = last if last in pool and draw(st.booleans(), label="previous?") else draw(st.sampled_from(pool), label="src")
    c = src.shapes[0][1]
    name = f"n{len(net.nodes)}"
    if kind in ("conv2d", "maxpool2d", "avgpool2d"):
        node = draw_conv(draw, c) if kind == "conv2d" else draw_pool(draw, kind)
    elif kind == "pad":
        node = draw_pad(draw)
    elif kind == "conv_transpose2d":
        node = draw_conv_transpose(draw, c)
    elif kind in ("batchnorm2d", "relu", "relu2"):
        node = {"op": kind.rstrip("2")}
    elif kind == "adaptive_avgpool2d":
        node = {"op": kind, "size": window(draw, 4)}
    elif kind == "flatten":  # often followed by a linear (a classifier head)
        if add_node(net, name, {"op": "flatten"}, [src], draw) and draw(st.booleans(), label="head"):
            flat = net.tensors[-1]
            if len({s[-1] for s in flat.shapes}) == 1:
                add_node(net, f"n{len(net.nodes)}", {"op": "linear", "out": draw(st.integers(1, 12), label="out")},
                         [flat], draw)
        return
    elif kind == "linear":
        if len({s[-1] for s in src.shapes}) > 1:
            return  # its weights would depend on H and W
        node = {"op": "linear", "out": draw(st.integers(1, 12), label="out")}
    elif kind == "when_false":  # a node switched off: its input passes through
        node = {**draw_conv(draw, c), "when": False}
    elif kind == "block":
        out = c if draw(st.booleans(), label="keep channels") else draw(st.integers(1, 6), label="out")
        node = {"block": "unit", "out": out}
        if draw(st.booleans(), label="k"):
            node["k"] = draw(st.sampled_from([1, 3, 5]), label="k value")
        if out == c and draw(st.booleans(), label="repeat?"):
            node["repeat"] = draw(st.integers(0, 3), label="repeat")
    elif kind == "seq":
        items = [draw_conv(draw, c)]
        for _ in range(draw(st.integers(0, 2), label="seq length")):
            items.append(draw(st.sampled_from([{"op": "relu"}, {"op": "batchnorm2d"}]), label="item")
                         if draw(st.booleans(), label="simple item?") else draw_pool(draw, "maxpool2d"))
        node = {"seq": items}
    else:  # merges: join tensors that fit at every probe, making a sibling branch when none does
        merge(draw, net, src, name, kind)
        return
    add_node(net, name, node, [src], draw)


def add_node(net: Net, name: str, node: dict, inputs: list[Tensor], draw) -> bool:
    try:
        outs = apply(node, [[meta(s) for s in t.shapes] for t in inputs], net.blocks)
    except (RuntimeError, ValueError):  # torch refuses it at some probe: draw something else
        return False
    shapes = [tuple(o.shape) for o in outs]
    if any(d <= 0 for s in shapes for d in s):
        return False
    if not (len(inputs) == 1 and inputs[0] is net.tensors[-1] and draw(st.booleans(), label="implicit from")):
        node["from"] = [t.ref for t in inputs] if len(inputs) > 1 else inputs[0].ref
    net.nodes[name] = node
    net.consumed |= {t.ref for t in inputs}
    net.tensors.append(Tensor(name, shapes))
    record_expected(net, name, node, [t.shapes for t in inputs], shapes)
    return True


def record_expected(net: Net, name: str, node: dict, in_shapes, out_shapes) -> None:
    """The node paths this node creates and torch's shape for each, where it is easy to know:
    the node itself (a seq's or block's last item has the node's output shape)."""
    if node.get("when") is False or node.get("repeat") == 0:
        return  # no node at all
    if "seq" in node:
        net.expected[f"{name}.{len(node['seq']) - 1}"] = out_shapes
    elif "block" in node:
        net.expected[f"{name}.{node['repeat'] - 1}.relu" if "repeat" in node else f"{name}.relu"] = out_shapes
    else:
        net.expected[name] = out_shapes


def merge(draw, net: Net, src: Tensor, name: str, kind: str) -> None:
    rank = len(src.shapes[0])
    op = draw(st.sampled_from(["concat", "add"]), label="merge op")

    def fits(t: Tensor) -> bool:
        if t is src or len(t.shapes[0]) != rank:
            return False
        if op == "add":
            return t.shapes == src.shapes
        return all(a[:1] + a[2:] == b[:1] + b[2:] for a, b in zip(t.shapes, src.shapes))

    partners = [t for t in net.tensors if fits(t)]
    if not partners or draw(st.booleans(), label="new sibling"):
        if rank != 4:
            return
        k = draw(st.sampled_from([1, 3, 5]), label="sibling kernel")
        out = src.shapes[0][1] if op == "add" else draw(st.integers(1, 6), label="sibling out")
        sibling = {"op": "conv2d", "out": out, "kernel": k, "padding": k // 2}
        if not add_node(net, f"n{len(net.nodes)}", sibling, [src], draw):
            return
        partners = [net.tensors[-1]]
        name = f"n{len(net.nodes)}"
    chosen = [src] + draw(st.lists(st.sampled_from(partners), min_size=1, max_size=2, unique_by=lambda t: t.ref),
                          label="partners")
    if op == "add" and rank == 4 and draw(st.integers(0, 3), label="broadcast?") == 0:
        squeeze = {"op": "adaptive_avgpool2d", "size": 1}  # [N, C, 1, 1] broadcasts over H, W
        if add_node(net, name, squeeze, [chosen[-1]], draw):
            chosen[-1] = net.tensors[-1]
            name = f"n{len(net.nodes)}"
    node: dict[str, Any] = {"op": op}
    if op == "concat" and rank == 4 and draw(st.integers(0, 3), label="negative dim?") == 0:
        node["dim"] = -3
    add_node(net, name, node, chosen, draw)


# ---- the property ---------------------------------------------------------------------------------------

def compare(graph, built, net: Net, h: int, w: int, probe: int, symbolic: bool) -> None:
    """Run the model ``built`` (by build_naming) at (h, w): every live node's inferred shape is its real one."""
    seen = observed_shapes(graph, built[0], [torch.randn(N, net.channels, h, w)], built[1])
    sizes = {"N": N, "H": h, "W": w}
    for path in live_nodes(graph):
        for port, t in graph.node(path).outputs.items():
            assert (path, port) in seen, f"{path} was not observed in the built module"
            inferred = tuple(eval_dim(d, sizes) for d in t.shape)
            assert inferred == seen[path, port], (
                f"{path} at H={h}, W={w}: inferred {t} = {list(inferred)}, real {list(seen[path, port])}")
    for path, shapes in net.expected.items():
        if path in graph:
            assert seen[path, "out"] == shapes[probe], f"{path}: torch gave {shapes[probe]} while growing the net"
    if symbolic:
        record("symbolic shapes evaluated and compared")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest, and immune to other processes on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@soundness_settings(1.0)
@given(net=random_net())
def test_inferred_shapes_are_the_real_shapes(net):
    # Every node drawn can be refused by torch; a net left empty is no spec (E202), not a test.
    assume(net.nodes)
    text = yaml.safe_dump(net.spec(), sort_keys=False)
    note(text)
    spec = specgraph.load(text)
    model = None
    for probe, (h, w) in enumerate(net.probes):
        shapes = {"x": TensorType((N, net.channels, h, w))}
        graph = expand(spec, input_shapes=shapes, suggest_sizes=False)  # torch ran it: it must check
        if model is None:  # weights do not depend on H and W (the model built at the first size runs
            model = build_naming(graph, check_inputs=False)  # at the others: its input check would refuse them)
            model[0].eval()
        with torch.no_grad():
            compare(graph, model, net, h, w, probe, symbolic=False)
    assert model is not None
    if net.symbolic:
        try:
            graph = specgraph.check(spec)
        except specgraph.SpecError as e:
            # Branches equal at the probes but not provably equal for every H, W (E402), or a
            # linear whose in-features were the same at every probe but are not a constant
            # for every H, W (E406; found by `make fuzz`: floor((W+8)/32) is 1 at all three).
            assert set(e.codes) <= {"E402", "E406"} and e.codes, e.format()
            record(f"symbolic check refused: {', '.join(sorted(set(e.codes)))}")
            return
        sym_model = build_naming(graph)
        sym_model[0].eval()
        for probe, (h, w) in enumerate(net.probes):
            with torch.no_grad():
                compare(graph, sym_model, net, h, w, probe, symbolic=True)
    record(f"{len(net.nodes)} nodes")


COVERED: set[str] = set()


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(net=random_net())
def test_generated_nets_cover_the_ops(net):
    """The generator reaches every op it is meant to, and blocks, seqs, repeats and `when`
    (checked on the last example, once all of them have been seen)."""
    text = yaml.safe_dump(net.spec())
    COVERED.update(re.findall(r"op: (\w+)", text))
    COVERED.update(k for k in ("block: unit", "seq:", "repeat:", "when: false", "dim: -3", "mode: reflect",
                               "mode: circular", "padding_mode: reflect", "output_padding") if k in text)


def test_coverage_of_the_generator():
    if not COVERED:
        pytest.skip("run with test_generated_nets_cover_the_ops")
    want = {"conv2d", "maxpool2d", "avgpool2d", "adaptive_avgpool2d", "batchnorm2d", "relu", "concat", "add",
            "flatten", "linear", "pad", "conv_transpose2d", "block: unit", "seq:", "repeat:", "when: false", "dim: -3",
            "mode: reflect", "mode: circular", "padding_mode: reflect", "output_padding"}
    assert want <= COVERED, want - COVERED
