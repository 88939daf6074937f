"""In a notebook: Graph, Summary and SpecError show short reprs and HTML (Jupyter's _repr_html_),
and specgraph.summary takes the batch size and dims the command line does."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

import specgraph
from conftest import SPECS
from specgraph.cli.app import app


class Cells(HTMLParser):
    """The text of every table cell of an HTML fragment (and whether its tags balance)."""

    def __init__(self):
        super().__init__()
        self.cells, self.open, self.depth = [], None, 0

    def handle_starttag(self, tag, attrs):
        self.depth += tag not in ("br",)
        if tag in ("td", "th"):
            self.open = ""

    def handle_endtag(self, tag):
        self.depth -= 1
        if tag in ("td", "th"):
            self.cells.append(self.open)
            self.open = None

    def handle_data(self, data):
        if self.open is not None:
            self.open += data


def cells(html: str) -> list[str]:
    parser = Cells()
    parser.feed(html)
    assert parser.depth == 0, "unbalanced tags"
    return parser.cells


def test_graph():
    graph = specgraph.check(SPECS / "resnet18.yaml")
    assert repr(graph) == "<Graph resnet18: 69 nodes; in: image [N, 3, 224, 224]; out: fc [N, 1000]>"
    shown = cells(graph._repr_html_())
    assert "layer4.1.conv2" in shown and "[N, 512, ⌈H/32⌉, ⌈W/32⌉]" not in shown  # declared 224: concrete
    assert "[N, 512, 7, 7]" in shown and "num_classes" in shown


def test_summary_at_a_batch_size_is_the_command_lines():
    s = specgraph.summary(SPECS / "char_lstm.yaml", batch_size=4, dims={"T": 32})
    assert s.memory is not None and s.memory.batch_size == 4
    r = CliRunner().invoke(app, ["summary", str(SPECS / "char_lstm.yaml"), "-b", "4", "--dim", "T=32", "--format", "json"])
    assert json.loads(r.stdout) == s.to_json()
    assert repr(s).startswith("<Summary char_lstm: ") and "params" in repr(s)
    html = s._repr_html_()
    assert cells(html)[: len(s.columns())] == list(s.columns())
    assert s.memory_lines()[0] in html
    with pytest.raises(Exception, match="T"):  # a dim left without a size, when sizes are asked for
        specgraph.summary(SPECS / "char_lstm.yaml", batch_size=4)


def test_spec_error():
    spec = "specgraph: 1\ninputs: {x: [N, 4]}\ngraph:\n  a: {op: reluu}\n  b: {op: linear, out: 3, from: x, <b>: 1}\n"
    with pytest.raises(specgraph.SpecError) as e:
        specgraph.check(spec)
    assert repr(e.value) == "SpecError(2 errors: E302 at <string>:4:11, E201 at <string>:5:36)"
    html = e.value._repr_html_()
    assert html.startswith("<pre>") and "&lt;b&gt;" in html and "<b>" not in html
