"""Layout rules of the static diagrams, read back from where Graphviz puts things.

Each diagram is laid out by Graphviz (``dot -Tjson0``) and every edge is checked against its
role: a bridge lies level (encoder end on the left), the rising side of a U points up, a
recurrent edge goes back to its cell's input, and every other edge points down.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from specgraph.api import render, render_partial
from specgraph.cli.app import app
from specgraph.render.style import round_numbers

from conftest import SPECS, spec_files

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def laid_out(source: str) -> tuple[dict[str, tuple[float, float]], list[tuple[str, str, dict]]]:
    """Node centres (Graphviz's y grows upward) and edges (tail, head, attrs) of a DOT text."""
    data = json.loads(subprocess.run(["dot", "-Tjson0"], input=source.encode(), capture_output=True,
                                     check=True).stdout)
    names = {o["_gvid"]: o["name"] for o in data["objects"]}
    pos = {o["name"]: tuple(map(float, o["pos"].split(","))) for o in data["objects"] if "pos" in o}
    edges = [(names[e["tail"]], names[e["head"]], e) for e in data.get("edges", [])]
    return pos, edges  # type: ignore[return-value]


def misdirected(source: str) -> list[str]:
    """Every edge that does not point the way its role says, as 'role tail -> head'."""
    pos, edges = laid_out(source)
    wrong = []
    for tail, head, attrs in edges:
        if attrs.get("dir") == "back":  # written head first for ranking; the arrow points at `tail`
            tail, head = head, tail
        (tx, ty), (hx, hy) = pos[tail], pos[head]
        if attrs.get("minlen") == "0":
            role, ok = "bridge", ty == hy and tx < hx
        elif attrs.get("dir") == "back":
            role, ok = "rising", hy > ty
        elif "next step" in attrs.get("label", ""):
            role, ok = "recurrent", hy > ty
        else:
            role, ok = "down", hy < ty
        if not ok:
            wrong.append(f"{role} {tail} -> {head}")
    return wrong


@needs_dot
@pytest.mark.parametrize("path", spec_files(), ids=lambda p: str(p.relative_to(SPECS)))
def test_every_edge_of_every_spec_points_down_but_bridges_and_the_rising_side(path):
    assert misdirected(render(path).source) == []


def se_in_residual(width: int, expand: int, nested: bool, repeat: int, pool: str) -> str:
    """A MobileNet-like spec: squeeze-excitation (pooled to 1×1, gate multiplied back) inside an
    inverted residual, optionally inside a second residual, repeated."""
    se = f"""
  se:
    inputs: [x]
    nodes:
      pool: {{op: {pool}, size: 1, from: x}}
      fc1: {{op: conv2d, out: {max(width // 4, 1)}, kernel: 1}}
      relu: {{op: relu}}
      fc2: {{op: conv2d, out: {width * expand}, kernel: 1}}
      gate: {{op: hardsigmoid}}
      scale: {{op: mul, from: [gate, x]}}"""
    inner = f"""
  inverted:
    inputs: [x]
    nodes:
      expand: {{op: conv2d, out: {width * expand}, kernel: 1, from: x}}
      dw: {{op: conv2d, out: {width * expand}, kernel: 3, padding: 1, groups: {width * expand}}}
      act: {{op: relu}}
      excite: {{block: se}}
      project: {{op: conv2d, out: {width}, kernel: 1}}
      add: {{op: add, from: [project, x]}}"""
    outer = f"""
  twice:
    inputs: [x]
    nodes:
      a: {{block: inverted}}
      b: {{block: inverted}}
      add: {{op: add, from: [b, x]}}""" if nested else ""
    unit = "twice" if nested else "inverted"
    return f"""specgraph: 1
name: se_residual
inputs: {{image: [N, 3, H, W]}}
blocks:{se}{inner}{outer}
graph:
  stem: {{op: conv2d, out: {width}, kernel: 3, stride: 2, padding: 1}}
  body: {{block: {unit}, repeat: {repeat}}}
  head: {{op: adaptive_avgpool2d, size: 1}}
"""


SE_SPECS = [(8, 1, False, 1, "adaptive_avgpool2d"), (8, 6, False, 3, "adaptive_avgpool2d"),
            (16, 4, True, 2, "adaptive_avgpool2d"), (4, 2, True, 1, "adaptive_maxpool2d")]


@needs_dot
@pytest.mark.parametrize("width,expand,nested,repeat,pool", SE_SPECS)
def test_squeeze_excitation_inside_residuals_lays_out_top_down(width, expand, nested, repeat, pool):
    source = render(se_in_residual(width, expand, nested, repeat, pool)).source
    assert "minlen" not in source and "dir=back" not in source  # no bridge, no rising side
    assert misdirected(source) == []
    assert misdirected(render(se_in_residual(width, expand, nested, repeat, pool), depth=1).source) == []


@needs_dot
def test_the_papers_unet_has_its_encoder_left_and_level_bridges():
    pos, edges = laid_out(render(SPECS / "unet.yaml").source)
    for level in "1234":
        (ex, ey), (dx, dy) = pos[f"enc{level}.relu2"], pos[f"up{level}.crop"]
        assert ey == dy and ex < dx, level  # the bridge is horizontal, encoder end on the left
    assert pos["enc1.conv1"][1] > pos["enc4.conv1"][1] > pos["bottom.conv1"][1]  # the encoder goes down ...
    assert pos["up4.conv.conv1"][1] < pos["up1.conv.conv1"][1]  # ... and the decoder back up
    pos0, _ = laid_out(render(SPECS / "unet.yaml", depth=0).source)
    for level in "1234":
        assert pos0[f"enc{level}"][1] == pos0[f"up{level}"][1] and pos0[f"enc{level}"][0] < pos0[f"up{level}"][0]


@needs_dot
def test_a_scan_drawn_alone_opens_into_its_cell_with_recurrent_edges():
    dot, _ = render_partial(SPECS / "seq2seq_luong.yaml", only="decoder")
    source = dot.source
    for state in ("h", "c", "att"):  # the cell's output at step t feeds its input at step t+1
        assert re.search(rf'"@out/{state}" -> {state} \[.*label="{state} → next step"', source), state
    assert "the cell, one time step" in source and '"x2h"' not in source and "x2h" in source
    assert misdirected(source) == []


def test_rolled_runs_ignore_eval_mode_identities_and_show_the_range():
    source = render(SPECS / "convnext_tiny.yaml", rolled=True).source
    # 3 + 3 + 9 + 3 blocks whose drop-path rates all differ: one run per stage
    for stage, count in (("1", 3), ("3", 3), ("5", 9), ("7", 3)):
        assert f'"cluster_features.{stage}.0"' in source and f'"cluster_features.{stage}.1"' not in source
        assert f"features.{stage}.0 … features.{stage}.{count - 1}, drawn once" in source, stage
        assert re.search(rf"<B>{stage}\.0</B> ×{count} : cn_block", source), stage
    assert "sd_prob 0 … 0.0117647" in source and "sd_prob 0.0882353 … 0.1" in source
    structural = render(SPECS / "resnet50.yaml", rolled=True).source  # a different stride is a new run
    assert '"cluster_layer2.0"' in structural and '"cluster_layer2.1"' in structural


def test_edges_out_of_multi_output_nodes_carry_their_port():
    source = render(SPECS / "cells" / "lstm_cell.yaml").source
    for gate, head in (("i", "input_gate"), ("f", "forget_gate"), ("g", "candidate"), ("o", "output_gate")):
        assert re.search(rf'"step\.split" -> "step\.{head}" \[label="{gate}: N×64"', source), gate


def test_numbers_in_labels_are_rounded():
    assert round_numbers("p=0.17500000000000002") == "p=0.175"
    assert round_numbers("dim 1 [3:7]") == "dim 1 [3:7]" and round_numbers("p=0.1") == "p=0.1"
    spec = """specgraph: 1
inputs: {x: [N, 8]}
params: {rate: 0.35}
graph:
  drop: {op: dropout, p: "${rate / 2}"}
  seqdrop: {op: alpha_dropout, p: "${rate / 2}"}
"""
    source = render(spec).source
    assert "0.17500000000000002" not in source and "p=0.175" in source


def test_the_legend_lists_only_what_is_drawn():
    def legend(source: str) -> list[str]:
        line = next(line for line in source.splitlines() if line.strip().startswith("\"@legend\""))
        return re.findall(r'<TD BGCOLOR="[^"]+" BORDER="1" COLOR="#9a9a9a">([^<]+)</TD>', line)

    source = render(SPECS / "lenet5.yaml").source
    drawn = set(re.findall(r'fillcolor="(#[0-9a-f]{6})" tooltip', source))
    from specgraph.render.style import category_colour
    assert {category_colour(c) for c in legend(source)} == drawn
    assert "skip edge" not in source and "collapsed block" not in source and "size only" not in source
    assert set(legend(render(SPECS / "resnet18.yaml", depth=0).source)) == {"conv", "norm", "activation", "pool",
                                                                            "reshape", "linear"}


def _chain_of_blocks(blocks: int) -> str:
    return f"""specgraph: 1
name: tall
inputs: {{x: [N, 16]}}
blocks:
  unit:
    nodes:
      a: {{op: linear, out: 16}}
      b: {{op: relu}}
      c: {{op: linear, out: 16}}
      d: {{op: tanh}}
graph:
  body: {{block: unit, repeat: {blocks}}}
"""


@needs_dot
def test_a_png_too_tall_for_cairo_is_drawn_at_a_depth_that_fits(tmp_path):
    from PIL import Image

    spec = tmp_path / "tall.yaml"
    spec.write_text(_chain_of_blocks(150))
    result = CliRunner().invoke(app, ["render", str(spec), "-o", str(tmp_path / "tall.png")])
    assert result.exit_code == 0, result.output
    assert "over the 32767 px a PNG can hold; drawn at --depth 0" in result.output
    with Image.open(tmp_path / "tall.png") as image:
        assert max(image.size) <= 32767
    chosen = CliRunner().invoke(app, ["render", str(spec), "--depth", "1", "-o", str(tmp_path / "asked.svg")])
    assert chosen.exit_code == 0 and "note:" not in chosen.output  # an SVG, and a depth asked: as asked
