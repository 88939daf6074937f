"""Soundness over every op's whole parameter space: what ``check`` accepts runs, with exactly the
inferred shapes, or is refused by the built model's input check — never a torch error.

Each example takes one registered op (every op but the compiler's own), starts from one of its
cases in tests/test_op_shapes.py, redraws some of its params from the op's own schema (every
enum value — padding modes, ``same``/``valid``, ``ceil_mode``, interpolation modes —, small ints
from each field's minimum: kernels, strides, dilations, groups, output_padding, chunks), and
resizes the inputs to tiny and odd sizes (equal sizes stay equal, so that merges still meet).
Concrete, or symbolic: sizes become symbols, the spec is checked once and the built model is
called at several sizes, where:

* if checking the spec at those sizes refuses it, the model refuses the call (``InputError``,
  at the same node); if it accepts, the model runs and gives the inferred shapes;
* nothing else: a torch exception from a model whose spec checked is a soundness bug.

``make fuzz`` runs it with the long profile (SPECGRAPH_SOUNDNESS_EXAMPLES, see tests/fuzzing.py).
"""

from __future__ import annotations

import pytest
import torch
import yaml
from hypothesis import assume, given, note
from hypothesis import strategies as st

import specgraph
from specgraph import InputError, SpecError
from specgraph.expand.expander import expand
from specgraph.ir.dims import evaluate
from specgraph.ir.tensor_type import TensorType
from specgraph.ir.traits import Trait
from specgraph.ops import get_op, op_names

from fuzzing import record, soundness_settings
from test_op_shapes import CASES

KEEP = object()  # a field the schema cannot draw (an equation, an expression): the seed's value
SIZES = [1, 2, 3, 4, 5, 7, 8, 9]  # tiny and odd
SEEDS: dict[str, list[tuple[dict, list[tuple], dict]]] = {}
for _case in CASES:
    _op, _params, _shapes, _kw = _case.values
    SEEDS.setdefault(_op, []).append((_params, _shapes, _kw))
OPS = sorted(n for n in op_names() if Trait.COMPILER_MADE not in get_op(n).traits)


def test_every_op_is_fuzzed():
    assert set(OPS) <= set(SEEDS), sorted(set(OPS) - set(SEEDS))


# ---- drawing params from an op's own schema ------------------------------------------------------

def draw_value(draw, schema: dict, defs: dict):
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    if "const" in schema:
        return schema["const"]
    if "anyOf" in schema:
        return draw_value(draw, draw(st.sampled_from(schema["anyOf"])), defs)
    kind = schema.get("type")
    if kind == "integer":
        low = schema["minimum"] if "minimum" in schema else schema["exclusiveMinimum"] + 1 \
            if "exclusiveMinimum" in schema else -3
        return draw(st.integers(low, min(schema.get("maximum", low + 5), low + 5)))
    if kind == "number":
        low, high = schema.get("minimum", schema.get("ge", -1.0)), schema.get("maximum", schema.get("le", 2.0))
        return draw(st.sampled_from([v for v in (0.0, 0.1, 0.5, 1.0, 2.0, -0.5) if low <= v <= high] or [low]))
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "null":
        return None
    if kind == "array":
        items = draw(st.integers(schema.get("minItems", 0), min(schema.get("maxItems", 4), 4)))
        values = [draw_value(draw, schema.get("items", {}), defs) for _ in range(items)]
        return KEEP if any(v is KEEP for v in values) else values
    return KEEP


def draw_params(draw, op, seed: dict) -> dict:
    """The seed's params, some redrawn from the schema (kept valid: an invalid draw keeps the seed)."""
    schema = op.Params.model_json_schema()
    fields, defs = schema.get("properties", {}), schema.get("$defs", {})
    params = dict(seed)
    if not fields or draw(st.booleans(), label="keep params"):
        return params
    for name in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3, unique=True), label="fields"):
        value = draw_value(draw, fields[name], defs)
        if value is not KEEP:
            params[name] = value
    try:
        op.Params.model_validate(params)
    except Exception:  # noqa: BLE001 - a combination the params refuse: the seed's, which they take
        return dict(seed)
    return params


# ---- one spec: the op on inputs of drawn sizes ----------------------------------------------------

def seed_shapes(shapes, kw) -> list[tuple[int, ...]]:
    sizes = kw.get("sizes", {})
    return [tuple(sizes[d] if isinstance(d, str) else d for d in s) for s in shapes]


def dtypes(kw, count: int) -> list[str]:
    dtype = kw.get("dtype", "float32")
    return list(dtype) if isinstance(dtype, (list, tuple)) else [dtype] * count


@st.composite
def op_case(draw):
    name = draw(st.sampled_from(OPS), label="op")
    op = get_op(name)
    params, shapes, kw = draw(st.sampled_from(SEEDS[name]), label="seed")
    params = draw_params(draw, op, params)
    shapes = seed_shapes(shapes, kw)
    # equal sizes stay equal: each distinct seed size maps to one new size (or itself)
    distinct = sorted({d for s in shapes for d in s})
    resized = {d: d if d == 1 or draw(st.booleans(), label=f"keep {d}") else draw(st.sampled_from(SIZES), label=f"{d}")
               for d in distinct}
    shapes = [tuple(resized[d] for d in s) for s in shapes]
    symbolic = kw.get("symbolic", True) and bool(shapes) and draw(st.booleans(), label="symbolic")
    symbols = {}
    if symbolic:  # some sizes become symbols; each is probed at several sizes
        for d in distinct:
            if resized[d] > 1 and draw(st.booleans(), label=f"symbol {d}"):
                symbols[resized[d]] = f"S{len(symbols)}"
    return name, params, shapes, dtypes(kw, len(shapes)), symbols, draw(st.booleans(), label="train mode")


def spec_text(name: str, params: dict, shapes, types, symbols: dict) -> tuple[str, list[str]]:
    op = get_op(name)
    ports = op.output_ports(op.Params.model_validate(params))
    inputs = {f"x{i}": {"shape": [symbols.get(d, d) for d in s], "dtype": t} for i, (s, t) in enumerate(zip(shapes, types))}
    node = {"op": name, **params}
    if shapes:
        node["from"] = list(inputs)
    else:
        inputs = {"unused": {"shape": [1]}}
    outputs = ["y" if p == "out" else f"y.{p}" for p in ports]
    doc = {"specgraph": 1, "name": "case", "inputs": inputs, "graph": {"y": node}, "outputs": outputs}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), outputs


def tensors(graph, sizes: dict[str, int]) -> list[torch.Tensor]:
    made = []
    for t in graph.inputs.values():
        shape = [evaluate(d, sizes) for d in t.shape]
        dtype = getattr(torch, t.dtype)
        made.append(torch.randn(shape, dtype=dtype) if dtype.is_floating_point
                    else torch.zeros(shape, dtype=dtype))  # ids and indices 0: valid for any table
    return made


def probes(symbols: dict, draw_sizes: list[dict]) -> list[dict[str, int]]:
    return [dict(zip(symbols.values(), values)) for values in draw_sizes]


def training_rule(graph, error: InputError, training: bool) -> bool:
    """Whether ``error`` is a rule torch holds in training mode only (batch statistics), which
    checking a spec cannot refuse (the model may serve in eval mode)."""
    d = error.diagnostics[0]
    return training and any(n.path == d.path and r.training_only and d.message.startswith(r.message)
                            for n, r in graph.requirements())


def run(model, args, training: bool):
    model.train(training)
    with torch.no_grad():
        out = model(*args)
    return list(out) if isinstance(out, tuple) else [out]


@soundness_settings(1.0)
@given(case=op_case(), data=st.data())
def test_what_checks_runs_with_the_inferred_shapes(case, data):
    name, params, shapes, types, symbols, training = case
    text, outputs = spec_text(name, params, shapes, types, symbols)
    note(text)
    try:
        graph = specgraph.check(text)
    except SpecError as e:
        assert all(d.location is not None for d in e.diagnostics), e.format()
        record(f"refused at check: {e.diagnostics[0].code}")
        return
    model = specgraph.build(graph)
    if not symbols:
        try:
            got = [tuple(o.shape) for o in run(model, tensors(graph, {}), training)]
        except InputError as e:
            assert training_rule(graph, e, training), e.format()
            record(f"{name}: refused in training")
            return
        assert got == [tuple(o.value.type.shape) for o in graph.outputs], (got, graph.outputs)
        record(f"{name}: ran")
        return
    spec = specgraph.load(text)
    values = data.draw(st.lists(st.lists(st.sampled_from(SIZES), min_size=len(symbols), max_size=len(symbols)),
                                min_size=1, max_size=4), label="probe sizes")
    for sizes in [dict(zip(symbols.values(), symbols))] + probes(symbols, values):
        concrete = {n: TensorType(tuple(evaluate(d, sizes) for d in t.shape), t.dtype) for n, t in graph.inputs.items()}
        try:
            checked = expand(spec, input_shapes=concrete, suggest_sizes=False)
        except SpecError as e:
            checked, refusal = None, e
        args = tensors(graph, sizes)
        try:
            got = [tuple(o.shape) for o in run(model, args, training)]
        except InputError as e:
            if training_rule(graph, e, training):
                record(f"{name}: refused in training")
                continue
            assert checked is None, f"{sizes}: the model refused what checks at these sizes:\n{e.format()}"
            assert e.diagnostics[0].path in {d.path for d in refusal.diagnostics}, f"{e.format()}\n{refusal.format()}"
            record(f"{name}: refused at run time ({e.diagnostics[0].code})")
            continue
        if checked is None:
            pytest.fail(f"{sizes}: the model ran what checking at these sizes refuses:\n{refusal.format()}")
        want = [tuple(evaluate(d, sizes) for d in o.value.type.shape) for o in graph.outputs]
        assert got == want, f"{sizes}: real {got}, inferred {want}"
        assert want == [tuple(o.value.type.shape) for o in checked.outputs]
        record(f"{name}: ran symbolic")
    assume(True)
